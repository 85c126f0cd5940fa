"""The kernel's end of the ``nbcost`` comm: live cost for the JupyterLab extension.

Messages (``data`` of comm messages, all with ``"v": 1`` and a ``"type"``):

kernel → front end
    ``hello``   (comm open) capabilities and the session id;
    ``tick``    a running cell's totals (≤ 4 a second): ``window_id``, ``elapsed_s``, ``record``
                (the compact shape, still running) and ``session`` (session totals);
    ``final``   a finished cell: ``window_id``, ``record`` (``WindowRecord.compact()``), ``session``;
    ``session`` session totals and the finished cells' records (after hello, reattach or reset).
front end → kernel
    ``hello``    the front end's answer (its capabilities); the kernel replies with ``session``;
    ``reattach`` (comm open, after a page reload) a comm the front end opens: ``hello`` and
                 ``session`` come back on it, then ticks and finals.

Every open comm gets ticks and finals, answered or not: a front end's answer can sit in the
kernel's queue behind the cells of a "run all" that it wants to watch. A JupyterLab without the
extension closes the comm at once, and the kernel sends it nothing more; nbclient and VS Code
ignore the messages. Either way the ``%%cost`` widget and summary show the cost.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from ..records import WindowInfo, WindowRecord
from .payload import cell_history, session_totals
from .ticker import Ticker

__all__ = ["CAPABILITIES", "PROTOCOL_VERSION", "TARGET", "CommChannel"]

TARGET = "nbcost"
PROTOCOL_VERSION = 1
CAPABILITIES = ("tick", "final", "session", "reattach")


class CommChannel:
    """Every ``nbcost`` comm of this kernel, and the session events that feed them."""

    def __init__(self, session: Any, ticker: Ticker) -> None:
        self.session = session
        self.ticker = ticker
        self._lock = threading.Lock()  # guards the comms and orders ticks before finals
        self._comms: dict[str, Any] = {}
        self._finished: deque[str] = deque(maxlen=64)
        self._meter_figures: dict = {}  # session_totals' memo: most cells change no total
        self._unwatch_cells = lambda: None
        self._registered = False

    # -- life cycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Offer the comm to the front end and accept the ones it opens after a reload."""
        import comm  # ipykernel installs its implementation here at import time

        comm.get_comm_manager().register_target(TARGET, self._on_frontend_open)
        self._registered = True
        self._unwatch_cells = self.session.watch_cells(self)
        channel = comm.create_comm(target_name=TARGET, data=self._hello())
        self._keep(channel)

    def close(self) -> None:
        """Close every comm and stop listening. Idempotent."""
        self._unwatch_cells()
        self._unwatch_cells = lambda: None
        if self._registered:
            import comm

            manager = comm.get_comm_manager()
            if manager.targets.get(TARGET) == self._on_frontend_open:
                manager.unregister_target(TARGET, self._on_frontend_open)
            self._registered = False
        with self._lock:
            channels = list(self._comms.values())
            self._comms.clear()
        for channel in channels:
            try:
                channel.close()
            except Exception:  # noqa: BLE001 - the kernel may be shutting down
                pass

    @property
    def listening(self) -> bool:
        """Whether any comm is open (a front end may be watching)."""
        with self._lock:
            return bool(self._comms)

    # -- comms --------------------------------------------------------------------------------

    def _keep(self, channel: Any) -> None:
        with self._lock:
            self._comms[channel.comm_id] = channel
        channel.on_msg(lambda msg, c=channel: self._on_msg(c, msg))
        channel.on_close(lambda msg, c=channel: self._forget(c))

    def _forget(self, channel: Any) -> None:
        with self._lock:
            self._comms.pop(channel.comm_id, None)

    def _on_frontend_open(self, channel: Any, msg: dict) -> None:
        """A front end opened a comm (after a page reload): greet it and send the state."""
        self._keep(channel)
        data = (msg.get("content") or {}).get("data") or {}
        if data.get("type") == "reattach":
            self._answer(channel, greet=True)

    def _on_msg(self, channel: Any, msg: dict) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if data.get("type") == "hello":  # the answer to the hello the comm was opened with
            self._answer(channel, greet=False)

    def _answer(self, channel: Any, greet: bool) -> None:
        state = self._session_message(with_history=True)
        with self._lock:
            if channel.comm_id not in self._comms:
                return
            if greet:
                channel.send(self._hello())
            channel.send(state)
        self._watch_running_cells()

    def _watch_running_cells(self) -> None:
        """Cells already running (the ``%load_ext`` of a "run all", a reload) tick too."""
        for window in self.session.open_windows():
            if window.is_top_cell:
                self.ticker.watch(window.id, self._tick)

    def _send(self, data: dict, window_id: str | None = None, final: bool = False) -> None:
        with self._lock:
            if window_id is not None and window_id in self._finished:
                return  # a tick computed before the final must not arrive after it
            if final and window_id is not None:
                self._finished.append(window_id)
            for channel in list(self._comms.values()):
                channel.send(data)

    # -- messages -----------------------------------------------------------------------------

    def _hello(self) -> dict:
        return {"v": PROTOCOL_VERSION, "type": "hello", "session_id": self.session.id,
                "capabilities": list(CAPABILITIES)}

    def _session_message(self, with_history: bool) -> dict:
        return {"v": PROTOCOL_VERSION, "type": "session",
                "session": self._totals(),
                "cells": cell_history(self.session) if with_history else []}

    def _tick(self, window_id: str, live: dict) -> None:
        if not self.listening:
            return
        self._send({"v": PROTOCOL_VERSION, "type": "tick", "window_id": window_id,
                    "elapsed_s": live.get("wall_s"), "record": live,
                    "session": self._totals()}, window_id=window_id)

    def _totals(self) -> dict:
        return session_totals(self.session, memo=self._meter_figures)

    # -- the session's cells (a CellWatcher: on the thread that opened or finished the cell) ----

    def cell_started(self, info: WindowInfo) -> None:
        if self.listening:
            self.ticker.watch(info.id, self._tick)

    def cell_ended(self, record: WindowRecord) -> None:
        window_id = record.info.id
        self.ticker.unwatch(window_id, self._tick)
        if self.listening:
            self._send({"v": PROTOCOL_VERSION, "type": "final", "window_id": window_id,
                        "record": record.compact(), "session": self._totals()},
                       window_id=window_id, final=True)

    def session_started(self) -> None:  # `%cost reset`
        if self.listening:
            self._send(self._session_message(with_history=True))
