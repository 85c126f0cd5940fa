"""The JSON the live views show: session totals and the history of finished cells.

Money stays a decimal string (``records.money``); times are ``time.time()`` seconds.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from ..recent import CELLS_KEPT
from ..records import ZERO, Budget, compact_meter, money

__all__ = ["cell_history", "is_top_cell", "session_totals"]

MAX_HISTORY = CELLS_KEPT  # the session keeps this many finished cells in memory


def is_top_cell(kind: str | None, parent_id: str | None) -> bool:
    """Cells (not ``track()`` blocks inside them) are what badges and panel rows show."""
    return kind == "cell" and parent_id is None


def session_totals(session: Any, now: float | None = None) -> dict[str, Any]:
    """What the status bar and the panel header show: the session's running totals."""
    now = now or time.time()
    totals = session.totals(now)
    settings = session.settings
    out: dict[str, Any] = {
        "session_id": session.id,
        "cost_usd": money(sum((t.cost_usd for t in totals.values()), ZERO)),
        "unpriced": any(t.unpriced for t in totals.values()),
        "cells": session.records.top_cells,  # a count kept as cells end, not a walk over them
        "at": now,
        "budget_usd": money(settings.budget_usd),
        "budget_hard": bool(settings.budget_hard),
    }
    if settings.budget_usd is not None:  # the shape records carry (``records.Budget``)
        out["budget"] = Budget(settings.budget_usd, bool(settings.budget_hard), "session").to_json()
    for name, meter_totals in totals.items():
        out[name] = compact_meter(name, meter_totals)
    gpu = totals.get("gpu")
    if gpu is not None and "idle_between_s" in gpu.quantities:
        out["gpu"]["idle_between_s"] = round(gpu.quantities["idle_between_s"], 6)
        idle_usd = (gpu.detail.get("waste_usd") or {}).get("idle_between")
        if idle_usd is not None:
            out["gpu"]["idle_cost_usd"] = money(Decimal(idle_usd))
    return out


def cell_history(session: Any, limit: int = MAX_HISTORY) -> list[dict[str, Any]]:
    """Compact records of the session's finished cells, oldest first (for a reattached panel)."""
    records = list(session.records.cells)  # the last MAX_HISTORY top-level cells
    return [r.compact() for r in records[-limit:]]
