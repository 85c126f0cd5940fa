"""The worker's side of ``nbcost.dask.attach``: a distributed ``WorkerPlugin`` that meters LLM
calls made inside tasks and sends each, with the task's window annotation, back through
distributed's own event channel (``Worker.log_event`` on the topic :data:`TOPIC`).

A worker needs nothing installed beyond nbcost: the plugin is pickled to it, and so are the
kernel's prices (``%cost llm-price`` overrides made before ``attach``). Spans are measured on
the worker, so clocks of different machines are never compared.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any, Mapping

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["ANNOTATION", "TOPIC", "NbcostWorkerPlugin", "annotation"]

TOPIC = "nbcost"
#: The task annotation: ``"<attachment token> <window id>"`` (one string: every task carries it).
ANNOTATION = "nbcost"


def annotation(token: str, window_id: str | None) -> str:
    return f"{token} {window_id or ''}"


class WorkerSink:
    """A :class:`nbcost.meters.MeterSink` inside a Dask worker: each usage becomes an event."""

    def __init__(self, worker: Any, settings: Any) -> None:
        self.worker = worker
        self.settings = settings
        self._warned: set[str] = set()
        self._origin = {"kind": "dask", "worker": str(worker.address), "pid": os.getpid(),
                        "host": socket.gethostname()}

    def record(self, usage) -> None:
        from distributed.worker import thread_state

        from .wire import usage_fields

        key = getattr(thread_state, "key", None)  # the task this thread runs now
        task = self.worker.state.tasks.get(key) if key is not None else None
        annotations = (getattr(task, "annotations", None) or {}) if task is not None else {}
        token, _, window_id = str(annotations.get(ANNOTATION) or "").partition(" ")
        self.worker.log_event(TOPIC, {
            "attach": token or None,
            "window_id": window_id or None,
            "usage": usage_fields(usage),
            "origin": {**self._origin, "task": None if key is None else str(key)},
        })

    def log(self, event: str, fields: Mapping[str, Any]) -> None:
        """Meters' own events have no place on a worker."""

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(message, file=sys.stderr, flush=True)

    def check_budget(self, meter: str) -> None:
        """Budgets are the kernel's: a task is never refused (its spend still counts)."""

    def current_cell(self) -> Mapping[str, Any]:
        return {}


class NbcostWorkerPlugin(WorkerPlugin):
    """Installed on every worker (and on workers that join later) by ``Client.register_plugin``."""

    name = "nbcost"
    idempotent = True

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._meter: Any = None

    def setup(self, worker: Any) -> None:
        from ..meters.llm import LlmMeter
        from . import child

        child.yield_to_session()  # a worker the kernel's environment reached: this plugin meters
        self._meter = LlmMeter(preload_tokenizer=False)
        self._meter.start(WorkerSink(worker, self.settings))

    def teardown(self, worker: Any) -> None:
        if self._meter is not None:
            self._meter.stop()
            self._meter = None
