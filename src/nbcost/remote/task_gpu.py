"""Each task's GPU figures on a worker (Dask or Ray): the worker's own GPU meter over the task's
span, sent back as a ``remote_gpu`` usage (event ``gpu_usage``) for the window that submitted it.

The engine tells :class:`TaskGpu` where a task starts and ends (Dask: the worker's state machine
transitions; Ray: the worker's task-log edges). Each edge asks the sampler thread for a read; a
reporter thread (never the engine's own thread) waits for it and sends what the task used, if it
held a GPU at all. Spans are measured on the worker, so clocks of different machines are never
compared.
"""

from __future__ import annotations

import queue
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Mapping

__all__ = ["TASK_GPU_QUANTITIES", "TaskGpu", "load_nvml"]

#: The GPU figures a task reports as quantities: those that add up over tasks (a peak does not:
#: it travels as an attribute).
TASK_GPU_QUANTITIES = ("held_s", "busy_s", "sm_s", "energy_j")


def load_nvml(spec: str | None) -> Any:
    """``"module:function"`` returning a pynvml-like module (tests' fake NVML); None: pynvml."""
    if not spec:
        return None
    import importlib

    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)()


class TaskGpu:
    """One worker's GPU meter, measuring tasks' spans.

    Args:
        sink: the worker's sink (its ``settings`` price the GPUs; its ``warn_once`` tells faults).
        where: the worker, as the usage's key shows it (its GPUs' names follow).
        send: ``send(usage, key, context)``: hands one task's usage on, with what ``ended`` got.
        nvml: a pynvml-like module instead of ``pynvml``.
        options: the worker's ``GpuMeter`` options.
        before_measure: called (on the reporter thread) before each task is measured and priced.
    """

    def __init__(self, sink: Any, where: str, send: Callable[[Any, Any, Any], None],
                 nvml: Any = None, options: Mapping[str, Any] = (),
                 before_measure: Callable[[], None] | None = None) -> None:
        from ..meters.gpu import GpuMeter

        self.sink = sink
        self.where = where
        self._send = send
        self._before_measure = before_measure
        self.meter = GpuMeter(nvml=nvml, notice=lambda line: None, **dict(options))
        self.meter.start(sink)
        self._spans: dict[Any, float] = {}
        self._finished: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        if self.on:
            self._thread = threading.Thread(target=self._report, name="nbcost-task-gpu",
                                            daemon=True)
            self._thread.start()

    @property
    def on(self) -> bool:
        """A GPU (or NVML) is there to measure."""
        return self.meter.sampler is not None

    def started(self, key: Any) -> None:
        self._spans[key] = time.time()
        self.meter.sampler.request_edge()

    def ended(self, key: Any, context: Any = None) -> None:
        """The task ``key`` ended; ``context`` (what ``send`` needs, taken now: the engine may
        forget the task soon) goes with its usage."""
        begin = self._spans.pop(key, None)
        if begin is None:
            return
        self.meter.sampler.request_edge()
        self._finished.put((key, begin, time.time(), context))

    def _report(self) -> None:
        while (item := self._finished.get()) is not None:
            key, begin, end, context = item
            try:
                self.meter.sampler.edge_done.wait(0.5)
                if self._before_measure is not None:
                    self._before_measure()
                measured = self.meter.measure(begin, end)
                if measured is None or not measured.quantities.get("held_s"):
                    continue  # the task never held a GPU
                self._send(self._usage(measured), key, context)
            except Exception as exc:  # noqa: BLE001 - never break the worker
                self.sink.warn_once("task-gpu", f"nbcost: a task's GPU figures could not be "
                                    f"sent ({type(exc).__name__}: {exc}).")

    def _usage(self, measured) -> Any:
        from ..meters.base import Usage

        devices = list(measured.detail.get("devices") or [])
        attributes: dict[str, Any] = {"devices": devices,
                                      "rates": measured.detail.get("rates") or {}}
        if measured.quantities.get("mem_peak_bytes") is not None:
            attributes["mem_peak_bytes"] = int(measured.quantities["mem_peak_bytes"])
        return Usage(
            meter="remote_gpu", event="gpu_usage",
            key=f"{self.where} ({', '.join(devices) or 'GPU'})",
            quantities={q: round(measured.quantities[q], 6) for q in TASK_GPU_QUANTITIES
                        if q in measured.quantities},
            cost_usd=None if measured.cost_usd is None else Decimal(measured.cost_usd),
            attributes=attributes,
            flags=tuple(measured.flags),
        )

    def stop(self) -> None:
        if self._thread is not None:
            self._finished.put(None)
            self._thread.join(2)
        self.meter.stop()
