"""The kernel's side of child logs: read what children appended since the last look.

Each ``*.childlog`` in the session's children folder is read from where the last look stopped,
whole lines only (a line a child is writing now is read next time). Lines are checked by the
spend log's rules (:mod:`nbcost.logcheck`); a bad one is skipped, never fatal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..logcheck import event_problem, parse_line
from ..meters.base import Usage
from .child import SUFFIX
from .wire import usage_from_fields

__all__ = ["ChildUsage", "Inbox"]


@dataclass(frozen=True)
class ChildUsage:
    """One call a child made, and the window it is billed to (None: none was open)."""

    usage: Usage
    window_id: str | None
    origin: dict[str, Any]


class Inbox:
    """Offsets into every child log of one session; :meth:`take` yields what is new."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._offsets: dict[str, int] = {}
        self._children: dict[str, dict[str, Any]] = {}  # child id -> its session_start facts

    def take(self) -> Iterator[ChildUsage]:
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(SUFFIX))
        except OSError:
            return
        for name in names:
            yield from self._read(name)

    def _read(self, name: str) -> Iterator[ChildUsage]:
        offset = self._offsets.get(name, 0)
        try:
            with open(self.folder / name, "rb") as src:
                src.seek(offset)
                data = src.read()
        except OSError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self._offsets[name] = offset + end + 1
        for raw in data[:end].split(b"\n"):
            event, problem = parse_line(raw)
            if problem is None and (problem := event_problem(event)) is None:
                yield from self._event(event)

    def _event(self, event: dict[str, Any]) -> Iterator[ChildUsage]:
        child = event["session_id"]
        if event["event"] == "session_start":
            self._children[child] = {"kind": "process", "session_id": child,
                                     "pid": event.get("pid"), "ppid": event.get("ppid")}
            return
        if "quantities" not in event or event.get("cumulative"):
            return
        try:
            usage = usage_from_fields(event)
        except ValueError:
            return
        window_ids = event.get("window_ids") or []
        origin = self._children.get(child) or {"kind": "process", "session_id": child}
        yield ChildUsage(usage, window_ids[-1] if window_ids else None, dict(origin))
