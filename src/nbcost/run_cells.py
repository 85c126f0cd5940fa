"""The cost record ``nbcost run`` writes into each executed cell (``metadata.nbcost``), and the
mark on the cell a run stopped in (``timeout``) or lost with its kernel (``interrupted``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Mapping

from .ledger import iso_utc
from .meters.base import Usage
from .records import MeterTotals, Tally, WindowInfo, compact_record
from .rows import parse_ts

__all__ = ["compact_from_event", "mark_stopped_cell", "write_cell_metadata"]


def compact_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """The compact record of a ``cell_end`` event, built as the kernel builds it (so ``start``
    and ``end`` are ISO 8601 UTC strings, like the lab extension's)."""
    start, end = parse_ts(event.get("started_at")), parse_ts(event.get("ended_at"))
    info = WindowInfo(id=event["window_id"], kind=event["kind"],
                      start=start.timestamp() if start else 0.0,
                      end=end.timestamp() if end else None, label=event.get("label"),
                      cell_id=event.get("cell_id"), execution_count=event.get("execution_count"))
    meters = {name: MeterTotals.from_json(m) for name, m in (event.get("meters") or {}).items()}
    return compact_record(info, event.get("wall_s") or 0.0, event.get("status") or "ok", meters,
                          event["session_id"], tuple(event.get("flags") or ()))


def _compact_unended(start: Mapping[str, Any], row: Mapping[str, Any],
                     events: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """The compact record of a cell the kernel never ended (it died, or was stopped): its LLM
    calls as the log saw them, until the session's last event."""
    begun, until = parse_ts(start.get("started_at")), row.get("end")
    info = WindowInfo(id=start["window_id"], kind=start.get("kind") or "cell",
                      start=begun.timestamp() if begun else 0.0,
                      end=until.timestamp() if isinstance(until, dt.datetime) else None,
                      label=start.get("label"), cell_id=start.get("cell_id"),
                      execution_count=start.get("execution_count"))
    tallies: dict[str, Tally] = {}
    for event in events:
        if ("quantities" in event and not event.get("cumulative")
                and start["window_id"] in (event.get("window_ids") or ())):
            cost = event.get("cost_usd")
            tallies.setdefault(event["meter"], Tally()).add(Usage(
                meter=event["meter"], event=event["event"], key=str(event.get("key")),
                quantities=event["quantities"], cost_usd=None if cost is None else Decimal(cost),
                flags=tuple(event.get("flags") or ())))
    meters = {name: tally.freeze() for name, tally in tallies.items()}
    return compact_record(info, row.get("wall_s") or 0.0, status, meters, start["session_id"],
                          (status,))


def write_cell_metadata(nb, events: list[dict[str, Any]]) -> None:
    by_count = {e.get("execution_count"): e for e in events
                if e["event"] == "cell_end" and not e.get("parent_id")}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("execution_count") in by_count:
            cell.metadata["nbcost"] = compact_from_event(by_count[cell.execution_count])


def mark_stopped_cell(nb, index: int, status: str, rows: list[dict[str, Any]],
                       events: list[dict[str, Any]], *, session_id: str,
                       began: float | None = None, died: float | None = None) -> str | None:
    """Mark the cell the run stopped (``timeout``) or lost (``interrupted``: the kernel died,
    or Ctrl-C) in its metadata and its table row; return its window id (None: the log never
    saw it). ``began`` and ``died``: when the run sent the cell and saw its kernel dead; a cell
    the kernel never ended ran until then (the log's last event may be its start)."""
    cell = nb.cells[index]
    cells = [r for r in rows if r.get("kind") == "cell" and not r.get("parent_id")]
    unended = [r for r in cells if r["status"] in ("interrupted", "running")
               and r.get("window_id") not in _ended_windows(events)]
    row = None
    if cell.get("execution_count") is not None:
        row = next((r for r in reversed(cells)
                    if r.get("execution_count") == cell.execution_count), None)
    if row is None and unended:  # the cell the kernel was running when it stopped
        row = max(unended, key=lambda r: r["start"] or _EPOCH)
    if row is None:
        cell.metadata["nbcost"] = {"v": 1, "session_id": session_id,
                                   "execution_count": cell.get("execution_count"),
                                   "status": status, "flags": [status]}
        if began is not None and died is not None:
            cell.metadata["nbcost"].update(start=iso_utc(began), end=iso_utc(died),
                                           wall_s=round(max(died - began, 0.0), 6))
        return None
    if cell.get("execution_count") is None:
        cell.execution_count = row.get("execution_count")
    ended = not any(r is row for r in unended)
    row["status"] = status
    row["flags"] = _with_flag(row.get("flags"), status)
    if ended:  # the kernel ended it (a timeout interrupts the cell): keep its figures
        record = cell.metadata.get("nbcost") or {}
        cell.metadata["nbcost"] = {**record, "status": status,
                                   "flags": sorted({*record.get("flags", ()), status})}
    else:
        if died is not None and row.get("start") is not None:
            until = dt.datetime.fromtimestamp(died, dt.timezone.utc)
            if row.get("end") is None or until > row["end"]:
                row.update(end=until, wall_s=(until - row["start"]).total_seconds())
        start = next(e for e in events if e.get("window_id") == row["window_id"]
                     and e["event"].endswith("_start"))
        cell.metadata["nbcost"] = _compact_unended(start, row, events, status)
    return row["window_id"]


_EPOCH = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _ended_windows(events: list[dict[str, Any]]) -> set[str]:
    return {e["window_id"] for e in events
            if e["event"].endswith("_end") and e.get("window_id") is not None}


def _with_flag(flags: str | None, flag: str) -> str:
    names = [f for f in (flags or "").split(",") if f and f not in ("interrupted", flag)]
    return ",".join([*names, flag])
