"""The JSON the live views show: session totals and the history of finished cells.

Money stays a decimal string (``records.money``); times are ``time.time()`` seconds.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from ..recent import CELLS_KEPT
from ..records import ZERO, Budget, compact_meter, money

__all__ = ["cell_history", "session_totals"]

MAX_HISTORY = CELLS_KEPT  # the session keeps this many finished cells in memory


def session_totals(session: Any, now: float | None = None,
                   memo: dict[str, tuple[Any, dict]] | None = None) -> dict[str, Any]:
    """What the status bar and the panel header show: the session's running totals.

    ``memo`` (a caller's own dict) keeps each meter's compact figures for the totals they came
    from: the status bar gets the totals at every cell's end, mostly unchanged (no GPU, no call)."""
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
        last = memo.get(name) if memo is not None else None
        if last is None or last[0] is not meter_totals:
            last = (meter_totals, _session_meter(name, meter_totals))
            if memo is not None:
                memo[name] = last
        out[name] = dict(last[1])
    return out


def _session_meter(name: str, totals: Any) -> dict[str, Any]:
    out = compact_meter(name, totals)
    if name == "gpu" and "idle_between_s" in totals.quantities:
        out["idle_between_s"] = round(totals.quantities["idle_between_s"], 6)
        idle_usd = (totals.detail.get("waste_usd") or {}).get("idle_between")
        if idle_usd is not None:
            out["idle_cost_usd"] = money(Decimal(idle_usd))
    return out


def cell_history(session: Any, limit: int = MAX_HISTORY) -> list[dict[str, Any]]:
    """Compact records of the session's finished cells, oldest first (for a reattached panel)."""
    records = list(session.records.cells)  # the last MAX_HISTORY top-level cells
    return [r.compact() for r in records[-limit:]]
