"""Dask: LLM calls made inside tasks on a ``distributed`` cluster, billed to the cell that
submitted them.

Workers with a GPU also report each task's GPU figures (held, busy, SM-weighted seconds,
energy) over the task's span, as the ``remote_gpu`` meter of the window.

Example::

    from dask.distributed import Client
    import nbcost.dask

    client = Client("tcp://scheduler:8786")
    nbcost.dask.attach(client)          # once; returns the undo
    results = client.gather(client.map(ask_llm, prompts))   # this cell shows their cost

How: a worker plugin (``Client.register_plugin``) patches the LLM SDKs in every worker; tasks
submitted while a window is open carry its id as a Dask annotation; each call a task makes comes
back through distributed's event channel (``Worker.log_event``, ``Client.subscribe_topic``) and
is folded into that window; a task that submits tasks (``worker_client()``, ``get_client()``)
passes its annotation on to them. Usage that arrives after its window ended (futures gathered in a
later cell) amends the window it was submitted from (``window_amended`` in the spend log). A
worker that dies loses nothing already sent: each call is sent the moment it completes.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

__all__ = ["attach", "attach_hint"]

HINT = ("nbcost: a Dask client is connected; `import nbcost.dask; nbcost.dask.attach(client)` "
        "bills LLM calls made in its tasks to the cells that submit them.")


def attach_hint() -> str | None:
    """The one line ``%load_ext nbcost`` prints when a Dask client is already connected
    (None without one; never imports distributed)."""
    import sys

    if "distributed" not in sys.modules:
        return None
    try:
        sys.modules["distributed"].default_client()
    except (ValueError, AttributeError):  # no client in this process
        return None
    return HINT


def attach(client: Any, session: Any = None, *, gpu: bool = True, nvml: str | None = None,
           gpu_options: dict | None = None) -> Callable[[], None]:
    """Bill LLM calls (and, with ``gpu``, GPU time) of ``client``'s tasks to the windows (cells,
    ``track()`` blocks) that submit them, in ``session`` (default: ``nbcost.session()``).
    Returns ``detach()``.

    ``nvml``: ``"module:function"`` returning a pynvml-like module for the workers' GPU meters
    (tests inject a fake NVML this way); ``gpu_options``: the workers' ``GpuMeter`` options."""
    from .api import session as current_session
    from .remote.dask_worker import TOPIC, NbcostWorkerPlugin
    from .remote.wire import usage_from_fields

    session = session or current_session()
    token = uuid.uuid4().hex
    annotations = _WindowAnnotations(token)

    def on_event(event: Any) -> None:
        _, message = event
        if not isinstance(message, dict) or message.get("attach") != token:
            return  # another kernel's tasks on a shared cluster, or none of ours
        try:
            usage = usage_from_fields(message["usage"])
        except (KeyError, TypeError, ValueError) as exc:
            session.warn_once("dask:event", f"nbcost: a Dask worker sent usage nbcost cannot "
                              f"read ({exc}); it is left out.")
            return
        session.run_safely("folding a Dask task's usage", lambda: session.fold_remote(
            usage, message.get("window_id"), dict(message.get("origin") or {})))

    client.register_plugin(NbcostWorkerPlugin(session.settings, gpu, nvml, gpu_options),
                           name=f"nbcost-{token}")
    client.subscribe_topic(TOPIC, on_event)
    open_windows = session.open_windows()
    annotations.follow(open_windows[-1].id if open_windows else None)
    unwatch = session.watch_windows(annotations.follow)

    def detach() -> None:
        unwatch()
        annotations.close()
        try:
            client.unsubscribe_topic(TOPIC)
            client.unregister_worker_plugin(f"nbcost-{token}")
        except Exception:  # noqa: BLE001 - a cluster that is gone has nothing to undo
            pass

    return detach


class _WindowAnnotations:
    """The annotations tasks are submitted under: this attachment's token always, and the
    innermost open window's id. Entered with ``dask.annotate`` as windows open and left as they
    close, innermost first, so a user's own ``dask.annotate`` blocks inside a cell nest
    inside them as usual."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._entered: list[tuple[str | None, Any]] = []
        self._enter(None)  # between windows: the session's, with no window

    def _enter(self, window_id: str | None) -> None:
        import dask

        from .remote.dask_worker import ANNOTATION, annotation

        manager = dask.annotate(**{ANNOTATION: annotation(self.token, window_id)})
        manager.__enter__()
        self._entered.append((window_id, manager))

    def _leave_to(self, depth: int) -> None:
        while len(self._entered) > depth:
            _, manager = self._entered.pop()
            try:
                manager.__exit__(None, None, None)
            except ValueError:  # entered in another thread's context: nothing to undo here
                pass

    def follow(self, window_id: str | None) -> None:
        """The innermost open window is now ``window_id``."""
        ids = [w for w, _ in self._entered]
        if window_id in ids:
            self._leave_to(ids.index(window_id) + 1)
        elif window_id is None:
            self._leave_to(1)
        else:
            self._enter(window_id)

    def close(self) -> None:
        self._leave_to(0)
