"""The worker's side of ``nbcost.ray``: the runtime environment's worker set-up hook meters LLM
calls in every Ray worker process of the job and hands each, with the id of the task (or actor
task) that made it, to the job's named collector actor. The hand-over is awaited (a few ms per
LLM call), so a call is with the collector before its task returns."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from .sink import RemoteSink

__all__ = ["COLLECTOR_ENV", "Collector", "setup"]

#: The environment variable (set in the job's runtime_env) naming the collector actor.
COLLECTOR_ENV = "NBCOST_RAY_COLLECTOR"

_meter: Any = None


class Collector:
    """The named actor usage waits in until the kernel fetches it (``ray.remote`` applied by
    ``nbcost.ray.attach``)."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def record(self, item: dict) -> None:
        self.items.append(item)

    def drain(self) -> list[dict]:
        items, self.items = self.items, []
        return items


class RaySink(RemoteSink):
    """A :class:`nbcost.meters.MeterSink` in a Ray worker: each usage goes to the collector."""

    def __init__(self, collector_name: str, settings: Any = None) -> None:
        self.collector_name = collector_name
        self._settings = settings
        self._collector: Any = None
        super().__init__()

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from ..config import load_settings

            self._settings = load_settings()
        return self._settings

    def record(self, usage) -> None:
        import ray

        from .wire import usage_fields

        if self._collector is None:
            self._collector = ray.get_actor(self.collector_name)
        context = ray.get_runtime_context()
        ray.get(self._collector.record.remote({
            "task_id": context.get_task_id(),
            "usage": usage_fields(usage),
            "origin": {"kind": "ray", "node": context.get_node_id(), "pid": os.getpid(),
                       "host": socket.gethostname(), "actor": context.get_actor_id()},
        }))



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
        _meter = LlmMeter(preload_tokenizer=False)
        _meter.start(RaySink(name))
    except Exception as exc:  # noqa: BLE001 - never stop a worker from starting
        print(f"nbcost: this Ray worker's LLM calls are not metered ({type(exc).__name__}: "
              f"{exc}).", file=sys.stderr, flush=True)
