"""The child's side: a Python process started by a kernel with nbcost records its LLM calls to
a child log the kernel folds into the window that started it.

``start()`` runs from the ``nbcost_child.pth`` start-up hook in every Python process that finds
``NBCOST_PARENT_SESSION`` in its environment (``subprocess`` of ``python``, multiprocessing's
spawn and forkserver workers); a child made by ``fork`` inherits the kernel's patched SDKs and
is switched over by :func:`after_fork`. The child log is ``<folder>/<child id>.childlog``: the
spend log's events (``session_start`` with the parent's ids, ``llm_call``, ``session_end``),
in a file that spend-log readers do not pick up, since the kernel's own log holds each call
once it is folded. The GPU is not metered here: the kernel's GPU meter counts its descendants.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import uuid
from typing import Any

from ..ledger import iso_utc
from .environment import ParentContext
from .sink import RemoteSink

__all__ = ["ChildSink", "after_fork", "start"]

SUFFIX = ".childlog"

_sink: ChildSink | None = None
_meter: Any = None  # the LLM meter start() installed


class ChildSink(RemoteSink):
    """A :class:`nbcost.meters.MeterSink` that writes to the child log."""

    def __init__(self, parent: ParentContext, settings: Any = None) -> None:
        self.parent = parent
        self._settings = settings
        self.id = f"child-{uuid.uuid4().hex}"
        super().__init__()
        self.started_at = time.time()
        self._ledger: Any = None  # opened at the first call: most children make none
        self._beacon: Any = None
        self._lock = threading.Lock()

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from ..config import load_settings

            self._settings = load_settings()
        return self._settings

    def _log(self) -> Any:
        with self._lock:
            if self._ledger is None:
                from ..ledger import Ledger
                from .beacon import ChildBeacon

                self._beacon = ChildBeacon(self.parent.folder)  # it exists: the kernel is there
                ledger = Ledger(self.parent.folder / f"{self.id}{SUFFIX}",
                                {"session_id": self.id}, root=self.parent.folder)
                ledger.append("session_start", {
                    "pid": os.getpid(), "ppid": os.getppid(), "python": sys.version.split()[0],
                    "started_at": iso_utc(self.started_at),
                    "parent_session_id": self.parent.session_id,
                    "parent_window_id": self.parent.window_id,
                }, at=self.started_at)
                self._ledger = ledger
            return self._ledger

    def record(self, usage) -> None:
        from .wire import usage_fields

        fields = usage_fields(usage)
        at = fields.pop("at")
        event = fields.pop("event")
        window_ids = [self.parent.window_id] if self.parent.window_id else []
        self._log().append(event, {**fields, "window_ids": window_ids}, at=at)
        self._beacon.bump()  # after the line is written: the kernel reads the logs now


    def close(self) -> None:
        if self._ledger is None:
            return
        try:
            self._ledger.append("session_end", {"ended_at": iso_utc(time.time()),
                                                "wall_s": time.time() - self.started_at})
            self._ledger.close()
        except Exception:  # noqa: BLE001 - at exit, nothing to tell
            pass


def start() -> None:
    """Meter this process's LLM calls for the kernel named in the environment. Never raises:
    it runs at interpreter start-up, before the user's program."""
    global _sink, _meter
    try:
        parent = ParentContext.from_environ()
        if parent is None or _sink is not None:
            return
        from ..meters.llm import LlmMeter

        _sink = ChildSink(parent)
        _meter = LlmMeter(preload_tokenizer=False)
        _meter.start(_sink)
        atexit.register(_stop)
    except Exception as exc:  # noqa: BLE001 - never stop the user's program from starting
        print(f"nbcost: this child process's LLM calls are not metered ({type(exc).__name__}: "
              f"{exc}).", file=sys.stderr, flush=True)


def _stop() -> None:
    if _meter is not None:
        _meter.stop()
    if _sink is not None:
        _sink.close()


def after_fork(recorder: Any) -> None:
    """In a forked child of a kernel: its LLM patches (copied from the kernel) record to a
    child log of their own, for the window open at the fork."""
    global _sink
    _sink = None
    parent = ParentContext.from_environ()
    if parent is None:
        recorder.active = False
        return
    try:
        _sink = ChildSink(parent, settings=recorder.sink.settings)
        recorder.sink = _sink
        atexit.register(_sink.close)
    except Exception:  # noqa: BLE001 - the child goes on unmetered
        recorder.active = False


def yield_to_session() -> None:
    """A Session started in this process (a kernel started by a kernel, then ``%load_ext``)
    records its own LLM calls: stop recording them for the parent too."""
    global _sink
    sink, _sink = _sink, None
    if sink is not None and _meter is not None:
        _meter.stop()
        sink.close()
