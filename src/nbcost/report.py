"""``nbcost report``: spend logs grouped by notebook, day, tag, user, team or project."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping

from .display.summary import Table, format_seconds, format_usd
from .rows import parse_ts

__all__ = ["COLUMNS", "GROUPINGS", "Group", "Report", "build_report"]

COLUMNS = ("cells", "wall", "GPU held", "LLM calls", "tokens", "cost")
GROUPINGS = ("notebook", "day", "tag", "user", "team", "project", "session")
ZERO = Decimal(0)


@dataclass
class Group:
    key: str
    cost_usd: Decimal = ZERO
    unpriced: bool = False
    windows: int = 0
    wall_s: float = 0.0
    gpu_held_s: float = 0.0
    llm_calls: int = 0
    llm_tokens: int = 0
    has_gpu: bool = False  # any row measured a GPU / saw the LLM meter: else show "-"
    has_llm: bool = False

    def add(self, row: Mapping[str, Any]) -> None:
        self.has_gpu |= row.get("gpu_held_s") is not None
        self.has_llm |= row.get("llm_calls") is not None
        self.cost_usd += row.get("cost_usd") or ZERO
        self.unpriced |= bool(row.get("unpriced"))
        if row.get("kind") != "between_cells":
            self.windows += 1
            self.wall_s += row.get("wall_s") or 0.0
        self.gpu_held_s += row.get("gpu_held_s") or 0.0
        self.llm_calls += int(row.get("llm_calls") or 0)
        self.llm_tokens += int((row.get("llm_input_tokens") or 0) + (row.get("llm_output_tokens") or 0))

    def cells(self, count: bool = True) -> list[str]:
        """This group's line in a table under :data:`COLUMNS` (without "cells": ``count=False``)."""
        return [self.key, *([str(self.windows)] if count else []), format_seconds(self.wall_s),
                format_seconds(self.gpu_held_s) if self.has_gpu else "-",
                str(self.llm_calls) if self.has_llm else "-",
                f"{self.llm_tokens:,}" if self.has_llm else "-",
                format_usd(self.cost_usd, self.unpriced)]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "cost_usd": format(self.cost_usd, "f"), "unpriced": self.unpriced,
                "windows": self.windows, "wall_s": round(self.wall_s, 6),
                "gpu_held_s": round(self.gpu_held_s, 6), "llm_calls": self.llm_calls,
                "llm_tokens": self.llm_tokens}


@dataclass
class Report:
    by: str
    groups: list[Group]
    total: Group
    sessions: int
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why the rows do not add up to the total

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "total_usd": format(self.total.cost_usd, "f"),
                "unpriced": self.total.unpriced, "sessions": self.sessions,
                "total": self.total.to_json(), "groups": [g.to_json() for g in self.groups],
                "notes": self.notes, "warnings": self.warnings}

    def table(self) -> Table:
        return Table(f"nbcost report by {self.by} ({self.sessions} session"
                     f"{'s' * (self.sessions != 1)})", [self.by, *COLUMNS],
                     [g.cells() for g in self.groups], self.total.cells(), notes=self.notes)


def _keys(row: Mapping[str, Any], by: str) -> list[str]:
    if by == "notebook":
        return [row.get("notebook_path") or "(no notebook)"]
    if by == "day":
        start = row.get("start")
        return [start.date().isoformat() if start else "(unknown)"]
    if by == "tag":
        tags = json.loads(row.get("tags") or "{}")
        return [f"{k}={v}" for k, v in sorted(tags.items())] or ["(untagged)"]
    return [row.get(f"{by}_id" if by == "session" else by) or f"(no {by})"]


def parse_since(text: str) -> dt.datetime:
    """``2026-11-01`` or an ISO timestamp; naive times are UTC."""
    try:
        moment = parse_ts(text) if "T" in text else dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since takes a date like 2026-11-01 or an ISO time; got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def build_report(rows: Iterable[Mapping[str, Any]], by: str = "notebook",
                 since: dt.datetime | None = None, warnings: list[str] | None = None) -> Report:
    """Group the top-level rows (cells, top-level track blocks and between-cells time): only
    they add up, nested windows are already inside their parents. A row with several tags
    counts in each tag's group and the total counts it once; the report's notes say so, with
    the amount counted more than once. Rows without a tag, and the time between cells, are
    the "(untagged)" group: spend no tag allocates."""
    if by not in GROUPINGS:
        raise ValueError(f"--by takes one of {', '.join(GROUPINGS)}; got {by!r}")
    groups: dict[str, Group] = defaultdict(lambda: Group(""))
    total = Group("total")
    sessions = set()
    repeated = Group("counted more than once")
    for row in rows:
        if row.get("parent_id"):
            continue
        if since and (row.get("start") is None or row["start"] < since):
            continue
        sessions.add(row.get("session_id"))
        total.add(row)
        keys = _keys(row, by)
        for key in keys:
            group = groups[key]
            group.key = key
            group.add(row)
        for _ in keys[1:]:
            repeated.add(row)
    ordered = sorted(groups.values(), key=lambda g: (-g.cost_usd, g.key))
    notes = []
    if repeated.windows:
        notes.append(
            f"The rows add up to more than the total: {repeated.windows} window"
            f"{'s carry' if repeated.windows != 1 else ' carries'} more than one tag and "
            f"count{'s' * (repeated.windows == 1)} in the row of each "
            f"({format_usd(repeated.cost_usd, repeated.unpriced)} counted more than once); "
            f"the total counts every window once.")
    return Report(by, ordered, total, len(sessions), list(warnings or []), notes)
