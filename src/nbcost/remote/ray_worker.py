"""The worker's side of ``nbcost.ray``: the runtime environment's worker set-up hook meters every
Ray worker process of the job and hands what it measured, with the id of the task (or actor
task) it belongs to, to the job's named collector actor.

* LLM calls: the hand-over is awaited (a few ms per LLM call), so a call is with the collector
  before its task returns.
* GPU: a worker process that holds a GPU reports each task's GPU figures over the task's span
  (:class:`nbcost.remote.task_gpu.TaskGpu`, the worker's own NVML), as Dask workers do. Ray has
  no public per-task hook in the worker; the span's edges are the worker's
  ``record_task_log_start``/``record_task_log_end``, which Ray calls in the executing thread
  around every task and actor method. A worker without a GPU (or NVML) skips this silently.
* Tasks submitted by a task: the worker tells the collector "these tasks were submitted by
  that one", so they bill the window of the outermost task the kernel submitted.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from .sink import RemoteSink

__all__ = ["COLLECTOR_ENV", "Collector", "GPU_ENV", "NVML_ENV", "setup"]

#: The environment variable (set in the job's runtime_env) naming the collector actor.
COLLECTOR_ENV = "NBCOST_RAY_COLLECTOR"
#: ``"0"``: workers do not meter GPUs.
GPU_ENV = "NBCOST_RAY_GPU"
#: ``"module:function"`` returning a pynvml-like module for the workers' GPU meters (tests).
NVML_ENV = "NBCOST_RAY_NVML"

_meter: Any = None
_gpu: Any = None  # the TaskGpu of this worker process, when it holds a GPU
_undo: list = []  # what setup() patched, to put back
_quiet = threading.local()  # set while nbcost itself submits (its collector calls)


@contextmanager
def _own_calls() -> Iterator[None]:
    """nbcost's own actor calls are not tasks submitted by the task that makes them."""
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = False


class Collector:
    """The named actor usage waits in until the kernel fetches it (``ray.remote`` applied by
    ``nbcost.ray.attach``). Its items are usage (``task_id``, ``usage``, ``origin``) and links
    (``task_ids`` submitted by the task ``parent``), in the order they came."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._settings: Any = None  # the attached kernel's (its prices and GPU rates)
        self._generation = 0  # one more at each attach: workers then fetch the settings again
        stand_down()  # the collector's own calls would report to it for ever

    def record(self, item: dict) -> int:
        self.items.append(item)
        return self._generation

    def configure(self, settings: Any) -> None:
        self._settings = settings
        self._generation += 1

    def settings(self) -> tuple[int, Any]:
        return self._generation, self._settings

    def generation(self) -> int:
        return self._generation

    def link(self, task_ids: list[str], parent: str) -> None:
        self.items.append({"task_ids": task_ids, "parent": parent})

    def drain(self) -> list[dict]:
        items, self.items = self.items, []
        return items


class RaySink(RemoteSink):
    """A :class:`nbcost.meters.MeterSink` in a Ray worker: each usage goes to the collector."""

    def __init__(self, collector_name: str) -> None:
        self.collector_name = collector_name
        self._settings: Any = None
        self._generation = -1  # of the collector's settings this worker holds
        self._collector: Any = None
        super().__init__()

    def collector(self) -> Any:
        if self._collector is None:
            import ray

            self._collector = ray.get_actor(self.collector_name)
        return self._collector

    @property
    def settings(self) -> Any:
        """The attached kernel's settings (its prices and GPU rates, as Dask's plugin carries
        them); this machine's own while no kernel gave any."""
        if self._settings is None:
            settings = None
            try:
                import ray

                with _own_calls():
                    self._generation, settings = ray.get(self.collector().settings.remote(),
                                                         timeout=60)
            except Exception:  # noqa: BLE001 - no collector (yet): this machine's settings
                self._generation = -1
            if settings is None:
                from ..config import load_settings

                settings = load_settings()
            self._settings = settings
        return self._settings

    def _heard(self, generation: int) -> None:
        if generation != self._generation:  # a kernel attached since: its settings next time
            self._settings = None

    def refresh(self) -> None:
        """Before pricing a task's GPU figures: the settings of the kernel attached now."""
        import ray

        with _own_calls():
            self._heard(ray.get(self.collector().generation.remote(), timeout=60))

    def record(self, usage) -> None:
        import ray

        context = ray.get_runtime_context()
        self.send(usage, context.get_task_id(), context.get_actor_id())

    def send(self, usage, task_id: str | None, actor_id: str | None) -> None:
        import ray

        from .wire import usage_fields

        item = {
            "task_id": task_id,
            "usage": usage_fields(usage),
            "origin": {"kind": "ray", "node": ray.get_runtime_context().get_node_id(),
                       "pid": os.getpid(), "host": socket.gethostname(), "actor": actor_id},
        }
        with _own_calls():
            self._heard(ray.get(self.collector().record.remote(item)))

    def link(self, task_ids: list[str], parent: str) -> None:
        # Not awaited: actor calls from one caller run in order, so the link is with the
        # collector before anything this task sends after it; the kernel waits for late ones.
        with _own_calls():
            self.collector().link.remote(task_ids, parent)


def setup() -> None:
    """``worker_process_setup_hook``: runs once in each worker process of the job."""
    global _meter
    name = os.environ.get(COLLECTOR_ENV)
    if not name or _meter is not None:
        return
    try:
        from ..meters.llm import LlmMeter
        from . import child

        child.yield_to_session()  # a worker the kernel's environment reached: this hook meters
        sink = RaySink(name)
        _meter = LlmMeter(preload_tokenizer=False)
        _meter.start(sink)
        _undo.extend(_watch_nested_submissions(sink))
        if os.environ.get(GPU_ENV, "1") != "0":
            _start_gpu(sink)
    except Exception as exc:  # noqa: BLE001 - never stop a worker from starting
        print(f"nbcost: this Ray worker's usage is not metered ({type(exc).__name__}: "
              f"{exc}).", file=sys.stderr, flush=True)


def stand_down() -> None:
    """Meter nothing more in this process (the collector's)."""
    global _gpu
    while _undo:
        _undo.pop()()
    if _meter is not None:
        _meter.stop()
    if _gpu is not None:
        _gpu.stop()
    _gpu = None


def _watch_nested_submissions(sink: RaySink) -> list:
    import ray

    from ..ray import patch_submissions

    def note(task_ids: list[str]) -> None:
        if getattr(_quiet, "on", False):
            return
        parent = ray.get_runtime_context().get_task_id()
        if parent:  # (none: not inside a task, e.g. a thread of the worker's own)
            sink.link(task_ids, parent)

    return patch_submissions(note)


def _start_gpu(sink: RaySink) -> None:
    """Measure each task's GPU span, if this process has a GPU to measure."""
    global _gpu
    import ray

    from .task_gpu import TaskGpu, load_nvml

    gpu = TaskGpu(sink, f"{socket.gethostname()}:{os.getpid()}", sink.send,
                  load_nvml(os.environ.get(NVML_ENV)), before_measure=sink.refresh)
    if not gpu.on:
        gpu.stop()
        return
    worker = ray._private.worker.global_worker
    start, end = worker.record_task_log_start, worker.record_task_log_end

    def task_started(task_id: Any, attempt_number: int) -> Any:
        try:
            gpu.started(task_id.hex())
        except Exception:  # noqa: BLE001 - never break a task
            pass
        return start(task_id, attempt_number)

    def task_ended(task_id: Any, attempt_number: int) -> Any:
        try:
            gpu.ended(task_id.hex(), ray.get_runtime_context().get_actor_id())
        except Exception:  # noqa: BLE001
            pass
        return end(task_id, attempt_number)

    worker.record_task_log_start, worker.record_task_log_end = task_started, task_ended

    def undo() -> None:
        worker.record_task_log_start, worker.record_task_log_end = start, end

    _undo.append(undo)
    _gpu = gpu
