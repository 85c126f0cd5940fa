"""Ray: LLM calls made inside tasks and actor methods, billed to the cell that submitted them.

Example::

    import ray, nbcost.ray

    ray.init(runtime_env=nbcost.ray.runtime_env())   # the worker set-up hook
    nbcost.ray.attach()                              # once; returns the undo
    results = ray.get([ask_llm.remote(p) for p in prompts])   # this cell shows their cost

How: the job's runtime environment runs a worker set-up hook that patches the LLM SDKs in each
worker process; each call is handed, with the id of the task that made it, to a named collector
actor before the task returns. A worker process that holds a GPU also reports each task's GPU
figures over its span (the ``remote_gpu`` meter, as Dask workers do). The kernel notes the
window each task was submitted from (by the task id of the ``ObjectRef`` that ``.remote()``
returns) and fetches the collector's usage when a window ends, on live updates and once a second
in the background: a task gathered in a later cell amends the window that submitted it. A task
submitted by a task (nested, any depth) bills the window of the outermost one: workers tell the
collector which task submitted which. An actor's ``__init__`` bills the window that created it.
Workers price with the kernel's settings as they were at ``attach``. What a thread that a task
started itself does (an LLM call, a ``.remote()``) has no task id: it bills the session.
"""

from __future__ import annotations

import threading
import time
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
#: How long usage of a task the kernel does not know waits for the link that names the task
#: which submitted it (links are not awaited by the workers) before it bills the session.
LINK_WAIT_S = 10.0

_collector_name: str | None = None


def runtime_env(base: dict | None = None, *, gpu: bool = True, nvml: str | None = None) -> dict:
    """The runtime environment to pass to ``ray.init`` (``base``: your own, kept).

    ``gpu``: workers that hold a GPU report each task's GPU figures; ``nvml``:
    ``"module:function"`` returning a pynvml-like module for the workers' GPU meters (tests
    inject a fake NVML this way)."""
    global _collector_name
    from .remote.ray_worker import COLLECTOR_ENV, GPU_ENV, NVML_ENV

    if _collector_name is None:
        _collector_name = f"nbcost-collector-{uuid.uuid4().hex}"
    env = dict(base or {})
    env["worker_process_setup_hook"] = "nbcost.remote.ray_worker.setup"
    env_vars = {**(env.get("env_vars") or {}), COLLECTOR_ENV: _collector_name}
    if not gpu:
        env_vars[GPU_ENV] = "0"
    if nvml:
        env_vars[NVML_ENV] = nvml
    env["env_vars"] = env_vars
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


#: The collector actor of each Ray job this process attached to, kept for the job's life: the
#: actor dies with its last handle, so a detach followed at once by an attach (the warm-up of a
#: benchmark, `%unload_ext` then `%load_ext`) would otherwise find it dying and lose its usage.
_collectors: dict[tuple[str, str], Any] = {}


def _collector(name: str) -> Any:
    import ray

    from .remote.ray_worker import Collector

    key = (ray.get_runtime_context().get_job_id(), name)
    handle = _collectors.get(key)
    if handle is None:
        for old in [k for k in _collectors if k[0] != key[0]]:  # jobs since shut down
            del _collectors[old]
        handle = _collectors[key] = ray.remote(num_cpus=0)(Collector).options(
            name=name, get_if_exists=True).remote()
    return handle


class _Attachment:
    def __init__(self, session: Any, name: str, poll_s: float) -> None:
        import ray

        self.session = session
        self.collector = _collector(name)
        # Workers price with this kernel's prices and GPU rates (as set now), as Dask's do.
        self.collector.configure.remote(session.settings)
        # Ready before any task can look it up (a worker that found no collector would lose
        # its calls): the first drain returns once the actor runs.
        self.pending = ray.get(self.collector.drain.remote(), timeout=120)
        self.windows: OrderedDict[str, str | None] = OrderedDict()  # task id -> window id
        self.parents: OrderedDict[str, str] = OrderedDict()  # nested task id -> its submitter
        self.waiting: list[tuple[float, dict]] = []  # usage of tasks not known yet
        self._windows_lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._detached = False
        open_windows = session.open_windows()
        self.current: str | None = open_windows[-1].id if open_windows else None
        self._undo = [session.watch_windows(self._follow), session.add_collector(self.fetch),
                      *patch_submissions(self._submitted)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(poll_s,), daemon=True,
                                        name="nbcost-ray")
        self._thread.start()

    def _follow(self, window_id: str | None) -> None:
        self.current = window_id

    def _submitted(self, task_ids: list[str]) -> None:
        """Note the window of each task a ``.remote()`` call submitted."""
        with self._windows_lock:
            for task_id in task_ids:
                self.windows[task_id] = self.current
            while len(self.windows) > MAX_TASKS:
                self.windows.popitem(last=False)

    def fetch(self, final: bool = False) -> None:
        """Fold what the collector holds into the windows that submitted its tasks (``final``:
        usage still waiting for its link bills the session now)."""
        import ray

        from .remote.wire import usage_from_fields

        with self._fetch_lock:
            if self._detached:  # the collector's items are the next attachment's now
                return
            items, self.pending = self.pending + ray.get(self.collector.drain.remote()), []
            now = time.monotonic()
            usages = [(now, item) for item in items if "usage" in item]
            with self._windows_lock:
                for item in items:
                    if "parent" in item:
                        for task_id in item.get("task_ids") or ():
                            self.parents[str(task_id)] = str(item["parent"])
                while len(self.parents) > MAX_TASKS:
                    self.parents.popitem(last=False)
            usages, self.waiting = self.waiting + usages, []
            ready = []
            for seen, item in usages:
                known, window_id = self._window_of(item.get("task_id"))
                if not known and now - seen < LINK_WAIT_S and not final:
                    self.waiting.append((seen, item))
                else:
                    ready.append((item, window_id))
            while len(self.waiting) > MAX_TASKS:  # (oldest first) never held without bound
                ready.append((self.waiting.pop(0)[1], None))
        for item, window_id in ready:
            try:
                usage = usage_from_fields(item["usage"])
            except (KeyError, TypeError, ValueError):
                continue
            self.session.fold_remote(usage, window_id, dict(item.get("origin") or {}))

    def _window_of(self, task_id: str | None) -> tuple[bool, str | None]:
        """``(known, window id)`` of a task: its own, or that of the task that submitted it
        (nested tasks, any depth). Not known: none of its submitters is known yet."""
        if not task_id:
            return True, None  # not made by a task (a thread of the worker's own): the session
        with self._windows_lock:
            for _ in range(1000):  # a chain of submitters, never a cycle
                if task_id in self.windows:
                    return True, self.windows[task_id]
                task_id = self.parents.get(task_id)
                if task_id is None:
                    break
        return False, None

    def _poll(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.session.run_safely("fetching Ray usage", self.fetch)

    def detach(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.session.run_safely("fetching Ray usage", lambda: self.fetch(final=True))
        with self._fetch_lock:  # a poll still under way (a slow cluster) drains no more
            self._detached = True
        for undo in self._undo:
            undo()


def patch_submissions(note: Callable[[list[str]], None]) -> list[Callable[[], None]]:
    """Wrap what ``.remote()`` calls (``RemoteFunction._remote``, ``ActorMethod._remote``,
    ``ActorClass._remote``) so the ids of the tasks each submission made are noted (an actor's
    creation task too: its ``__init__`` is work of the window that created it); returns the
    undos."""
    import wrapt
    from ray.actor import ActorClass, ActorMethod
    from ray.remote_function import RemoteFunction

    def wrapper(wrapped, instance, args, kwargs):
        result = wrapped(*args, **kwargs)
        try:
            task_ids = submitted_task_ids(result)
            if task_ids:
                note(task_ids)
        except Exception:  # noqa: BLE001 - never break a submission
            pass
        return result

    undos = []
    for owner in (RemoteFunction, ActorMethod, ActorClass):
        original = owner.__dict__["_remote"]
        wrapt.wrap_function_wrapper(owner, "_remote", wrapper)
        undos.append(lambda owner=owner, original=original: setattr(owner, "_remote", original))
    return undos


def submitted_task_ids(result: Any) -> list[str]:
    """The ids (hex) of the tasks behind what a ``.remote()`` returned: object refs (one or a
    list), or an actor handle (its creation task)."""
    import ray

    if isinstance(result, ray.actor.ActorHandle):
        return [ray.TaskID.for_actor_creation_task(result._actor_id).hex()]
    refs = result if isinstance(result, list) else [result]
    return [ref.task_id().hex() for ref in refs if hasattr(ref, "task_id")]
