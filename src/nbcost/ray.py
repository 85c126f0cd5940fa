"""Ray: LLM calls made inside tasks and actor methods, billed to the cell that submitted them.

Example::

    import ray, nbcost.ray

    ray.init(runtime_env=nbcost.ray.runtime_env())   # the worker set-up hook
    nbcost.ray.attach()                              # once; returns the undo
    results = ray.get([ask_llm.remote(p) for p in prompts])   # this cell shows their cost

How: the job's runtime environment runs a worker set-up hook that patches the LLM SDKs in each
worker process; each call is handed, with the id of the task that made it, to a named collector
actor before the task returns. The kernel notes the window each task was submitted from (by the
task id of the ``ObjectRef`` that ``.remote()`` returns) and fetches the collector's usage when a
window ends, on live updates and once a second in the background: a task gathered in a later
cell amends the window that submitted it. Tasks submitted by other tasks (nested) are billed to
the session, not to a window.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["attach", "attach_hint", "runtime_env"]

HINT = ("nbcost: Ray is running; `import nbcost.ray; nbcost.ray.attach()` bills LLM calls made in "
        "its tasks to the cells that submit them (start Ray with "
        "ray.init(runtime_env=nbcost.ray.runtime_env())).")


def attach_hint() -> str | None:
    """The line ``%load_ext nbcost`` prints when Ray is already running (None otherwise;
    never imports ray)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not getattr(ray, "is_initialized", lambda: False)():
        return None
    return HINT

#: How many submitted tasks' windows are remembered (the oldest are forgotten first).
MAX_TASKS = 200_000

_collector_name: str | None = None


def runtime_env(base: dict | None = None) -> dict:
    """The runtime environment to pass to ``ray.init`` (``base``: your own, kept)."""
    global _collector_name
    from .remote.ray_worker import COLLECTOR_ENV

    if _collector_name is None:
        _collector_name = f"nbcost-collector-{uuid.uuid4().hex}"
    env = dict(base or {})
    env["worker_process_setup_hook"] = "nbcost.remote.ray_worker.setup"
    env["env_vars"] = {**(env.get("env_vars") or {}), COLLECTOR_ENV: _collector_name}
    return env


def attach(session: Any = None, poll_s: float = 1.0) -> Callable[[], None]:
    """Bill LLM calls made in this job's Ray tasks to the windows that submit them, in
    ``session`` (default: ``nbcost.session()``). Returns ``detach()``."""
    import ray

    from .api import session as current_session
    from .remote.ray_worker import COLLECTOR_ENV

    session = session or current_session()
    if not ray.is_initialized():
        raise ConfigError("Ray is not started: ray.init(runtime_env=nbcost.ray.runtime_env()) "
                          "first, then nbcost.ray.attach().")
    env = ray.get_runtime_context().runtime_env
    name = (env.get("env_vars") or {}).get(COLLECTOR_ENV)
    if env.get("worker_process_setup_hook") != "nbcost.remote.ray_worker.setup" or not name:
        raise ConfigError("Ray was started without nbcost's worker hook: "
                          "ray.init(runtime_env=nbcost.ray.runtime_env()) (after ray.shutdown()).")
    attachment = _Attachment(session, name, poll_s)
    return attachment.detach


class _Attachment:
    def __init__(self, session: Any, name: str, poll_s: float) -> None:
        import ray

        from .remote.ray_worker import Collector

        self.session = session
        self.collector = ray.remote(num_cpus=0)(Collector).options(
            name=name, get_if_exists=True).remote()
        # Ready before any task can look it up (a worker that found no collector would lose
        # its calls): the first drain returns once the actor runs.
        self.pending = ray.get(self.collector.drain.remote(), timeout=120)
        self.windows: OrderedDict[str, str | None] = OrderedDict()  # task id -> window id
        self._windows_lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._detached = False
        open_windows = session.open_windows()
        self.current: str | None = open_windows[-1].id if open_windows else None
        self._undo = [session.watch_windows(self._follow), session.add_collector(self.fetch),
                      *_patch_submissions(self._submitted)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(poll_s,), daemon=True,
                                        name="nbcost-ray")
        self._thread.start()

    def _follow(self, window_id: str | None) -> None:
        self.current = window_id

    def _submitted(self, result: Any) -> None:
        """Note the window of each task a ``.remote()`` call submitted."""
        refs = result if isinstance(result, list) else [result]
        with self._windows_lock:
            for ref in refs:
                task_id = getattr(ref, "task_id", None)
                if task_id is not None:
                    self.windows[task_id().hex()] = self.current
            while len(self.windows) > MAX_TASKS:
                self.windows.popitem(last=False)

    def fetch(self) -> None:
        """Fold what the collector holds into the windows that submitted its tasks."""
        import ray

        from .remote.wire import usage_from_fields

        with self._fetch_lock:
            if self._detached:  # the collector's items are the next attachment's now
                return
            items, self.pending = self.pending + ray.get(self.collector.drain.remote()), []
        for item in items:
            with self._windows_lock:
                window_id = self.windows.get(item.get("task_id") or "")
            try:
                usage = usage_from_fields(item["usage"])
            except (KeyError, TypeError, ValueError):
                continue
            self.session.fold_remote(usage, window_id, dict(item.get("origin") or {}))

    def _poll(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.session.run_safely("fetching Ray usage", self.fetch)

    def detach(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.session.run_safely("fetching Ray usage", self.fetch)
        with self._fetch_lock:  # a poll still under way (a slow cluster) drains no more
            self._detached = True
        for undo in self._undo:
            undo()


def _patch_submissions(note: Callable[[Any], None]) -> list[Callable[[], None]]:
    """Wrap ``RemoteFunction._remote`` and ``ActorMethod._remote`` (what ``.remote()`` calls)
    so each submitted task's id is noted; returns the undos."""
    import wrapt
    from ray.actor import ActorMethod
    from ray.remote_function import RemoteFunction

    def wrapper(wrapped, instance, args, kwargs):
        result = wrapped(*args, **kwargs)
        try:
            note(result)
        except Exception:  # noqa: BLE001 - never break a submission
            pass
        return result

    undos = []
    for owner in (RemoteFunction, ActorMethod):
        original = owner.__dict__["_remote"]
        wrapt.wrap_function_wrapper(owner, "_remote", wrapper)
        undos.append(lambda owner=owner, original=original: setattr(owner, "_remote", original))
    return undos
