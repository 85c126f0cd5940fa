"""The worker's side of ``nbcost.dask.attach``: a distributed ``WorkerPlugin`` that meters LLM
calls made inside tasks and sends each, with the task's window annotation, back through
distributed's own event channel (``Worker.log_event`` on the topic :data:`TOPIC`).

A worker with a GPU (dask-cuda style: one worker per GPU) also reports each task's GPU figures:
its own GPU meter (NVML, in the worker) measures the task's span, ``executing`` to its end as
the worker's state machine reports it; the figures go back as a ``remote_gpu`` usage, priced at
the kernel's GPU rates. A worker without a GPU (or NVML) skips this silently.

A worker needs nothing installed beyond nbcost: the plugin is pickled to it, and so are the
kernel's prices (``%cost llm-price`` overrides made before ``attach``). Spans are measured on
the worker, so clocks of different machines are never compared.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Mapping

from distributed.diagnostics.plugin import WorkerPlugin

from .sink import RemoteSink
from .task_gpu import TaskGpu, load_nvml

__all__ = ["ANNOTATION", "TOPIC", "NbcostWorkerPlugin", "annotation"]

TOPIC = "nbcost"
#: The task annotation: ``"<attachment token> <window id>"`` (one string: every task carries it).
ANNOTATION = "nbcost"


def annotation(token: str, window_id: str | None) -> str:
    return f"{token} {window_id or ''}"


class WorkerSink(RemoteSink):
    """A :class:`nbcost.meters.MeterSink` inside a Dask worker: each usage becomes an event."""

    def __init__(self, worker: Any, settings: Any) -> None:
        self.worker = worker
        self.settings = settings
        super().__init__()
        self._origin = {"kind": "dask", "worker": str(worker.address), "pid": os.getpid(),
                        "host": socket.gethostname()}

    def record(self, usage) -> None:
        from distributed.worker import thread_state

        self.send(usage, getattr(thread_state, "key", None))  # the task this thread runs

    def annotation_of(self, key: Any) -> tuple[str | None, str | None]:
        """``(attachment token, window id)`` the task ``key`` was submitted with."""
        task = self.worker.state.tasks.get(key) if key is not None else None
        annotations = (getattr(task, "annotations", None) or {}) if task is not None else {}
        token, _, window_id = str(annotations.get(ANNOTATION) or "").partition(" ")
        return token or None, window_id or None

    def send(self, usage, key: Any, annotation: tuple[str | None, str | None] | None = None
             ) -> None:
        from .wire import usage_fields

        token, window_id = annotation or self.annotation_of(key)
        self.worker.log_event(TOPIC, {
            "attach": token,
            "window_id": window_id,
            "usage": usage_fields(usage),
            "origin": {**self._origin, "task": None if key is None else str(key)},
        })



class NbcostWorkerPlugin(WorkerPlugin):
    """Installed on every worker (and on workers that join later) by ``Client.register_plugin``."""

    name = "nbcost"
    idempotent = True

    def __init__(self, settings: Any, gpu: bool = True, nvml: str | None = None,
                 gpu_options: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.gpu = gpu
        self.nvml = nvml  # "module:function" returning a pynvml-like module (tests' fake NVML)
        self.gpu_options = dict(gpu_options or {})
        self._meter: Any = None
        self._gpu: TaskGpu | None = None

    def setup(self, worker: Any) -> None:
        from ..meters.llm import LlmMeter
        from . import child

        child.yield_to_session()  # a worker the kernel's environment reached: this plugin meters
        _pass_windows_on(True)
        sink = WorkerSink(worker, self.settings)
        self._meter = LlmMeter(preload_tokenizer=False)
        self._meter.start(sink)
        if self.gpu:
            gpu = TaskGpu(sink, str(worker.address), sink.send, load_nvml(self.nvml),
                          self.gpu_options)
            self._gpu = gpu if gpu.on else None
            if self._gpu is None:
                gpu.stop()

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        gpu = self._gpu
        if gpu is None:
            return
        if finish == "executing":
            gpu.started(key)
        elif start == "executing":
            gpu.ended(key, gpu.sink.annotation_of(key))

    def teardown(self, worker: Any) -> None:
        _pass_windows_on(False)
        if self._meter is not None:
            self._meter.stop()
            self._meter = None
        if self._gpu is not None:
            self._gpu.stop()
            self._gpu = None


_passing = 0  # plugins in this process that pass windows on (the patch is process-wide)
_undo_passing: Any = None


def _pass_windows_on(on: bool) -> None:
    """Tasks submitted by a task (``worker_client()``, ``get_client()``) carry the submitting
    task's annotation, so they bill the window the outer task was submitted from.

    Every submission goes through ``Client._graph_to_futures``, which reads the annotations of
    the calling context (``dask.get_annotations()``) and the submitting task from
    ``thread_state.key``, as distributed itself does for its ``submitting_task``.
    """
    global _passing, _undo_passing
    import wrapt
    from distributed.client import Client

    _passing += 1 if on else -1
    if on and _undo_passing is None:
        original = Client.__dict__["_graph_to_futures"]
        wrapt.wrap_function_wrapper(Client, "_graph_to_futures", _with_submitter_annotation)
        _undo_passing = lambda: setattr(Client, "_graph_to_futures", original)  # noqa: E731
    elif _passing <= 0 and _undo_passing is not None:
        _undo_passing()
        _passing, _undo_passing = 0, None


def _with_submitter_annotation(wrapped, instance, args, kwargs):
    import dask
    from distributed.worker import thread_state

    key = getattr(thread_state, "key", None)
    value = None
    if key is not None and ANNOTATION not in dask.get_annotations():
        try:
            from distributed import get_worker

            task = get_worker().state.tasks.get(key)
            value = (getattr(task, "annotations", None) or {}).get(ANNOTATION)
        except Exception:  # noqa: BLE001 - not in a worker's task: nothing to pass on
            value = None
    if not value:
        return wrapped(*args, **kwargs)
    with dask.annotate(**{ANNOTATION: value}):
        return wrapped(*args, **kwargs)
