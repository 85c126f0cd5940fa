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

import importlib
import os
import queue
import socket
import threading
import time
from decimal import Decimal
from typing import Any, Mapping

from distributed.diagnostics.plugin import WorkerPlugin

from .sink import RemoteSink

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



#: The GPU figures a task reports: those that add up over tasks.
TASK_GPU_QUANTITIES = ("held_s", "busy_s", "sm_s", "energy_j")


class TaskGpu:
    """Each task's GPU figures on this worker: the worker's GPU meter over the task's span.

    The span's edges ask the sampler thread for a read; a reporter thread waits for it (not
    the worker's event loop) and sends what the task used, if it held a GPU at all.
    """

    def __init__(self, sink: WorkerSink, nvml: Any = None, options: Mapping[str, Any] = ()):
        from ..meters.gpu import GpuMeter

        self.sink = sink
        self.meter = GpuMeter(nvml=nvml, notice=lambda line: None, **dict(options))
        self.meter.start(sink)
        self._spans: dict[Any, float] = {}
        self._finished: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._report, name="nbcost-dask-gpu", daemon=True)
        self._thread.start()

    @property
    def on(self) -> bool:
        return self.meter.sampler is not None

    def started(self, key: Any) -> None:
        self._spans[key] = time.time()
        self.meter.sampler.request_edge()

    def ended(self, key: Any) -> None:
        begin = self._spans.pop(key, None)
        if begin is None:
            return
        self.meter.sampler.request_edge()
        self._finished.put((key, begin, time.time(), self.sink.annotation_of(key)))

    def _report(self) -> None:
        while (item := self._finished.get()) is not None:
            key, begin, end, annotation = item
            try:
                self.meter.sampler.edge_done.wait(0.5)
                measured = self.meter.measure(begin, end)
                if measured is None or not measured.quantities.get("held_s"):
                    continue  # the task never held a GPU
                self.sink.send(self._usage(measured), key, annotation)
            except Exception as exc:  # noqa: BLE001 - never break the worker
                self.sink.warn_once("dask-gpu", f"nbcost: a task's GPU figures could not be "
                                    f"sent ({type(exc).__name__}: {exc}).")

    def _usage(self, measured) -> Any:
        from ..meters.base import Usage

        devices = list(measured.detail.get("devices") or [])
        return Usage(
            meter="remote_gpu", event="gpu_usage",
            key=f"{self.sink.worker.address} ({', '.join(devices) or 'GPU'})",
            quantities={q: round(measured.quantities[q], 6) for q in TASK_GPU_QUANTITIES
                        if q in measured.quantities},
            cost_usd=None if measured.cost_usd is None else Decimal(measured.cost_usd),
            attributes={"devices": devices, "rates": measured.detail.get("rates") or {}},
            flags=tuple(measured.flags),
        )

    def stop(self) -> None:
        self._finished.put(None)
        self._thread.join(2)
        self.meter.stop()


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
        sink = WorkerSink(worker, self.settings)
        self._meter = LlmMeter(preload_tokenizer=False)
        self._meter.start(sink)
        if self.gpu:
            nvml = None
            if self.nvml:
                module, _, function = self.nvml.partition(":")
                nvml = getattr(importlib.import_module(module), function)()
            gpu = TaskGpu(sink, nvml, self.gpu_options)
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
            gpu.ended(key)

    def teardown(self, worker: Any) -> None:
        if self._meter is not None:
            self._meter.stop()
            self._meter = None
        if self._gpu is not None:
            self._gpu.stop()
            self._gpu = None
