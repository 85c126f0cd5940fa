"""Spend-log events → the flat table every export and report is built from.

One row per window (a cell execution or a ``track()`` block) plus, per session, one
``between_cells`` row for what no top-level window saw: the GPU held idle between cells and LLM
calls made outside any cell. So the top-level rows (``parent_id`` empty) of a session add up to the
session's total. The columns and their types are declared in :mod:`nbcost.schema` and documented in
``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from typing import Any, Iterable, Mapping

from .logcheck import event_problem, parse_ts

__all__ = ["between_cells_row", "rows_from_events", "session_totals"]

ZERO = Decimal(0)
# GPU figures that do not add up over windows: a between-cells row leaves them out.
_NOT_ADDITIVE = ("mem_peak_bytes", "power_avg_w", "gpus")


def _meter_fields(meters: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, figures in meters.items():
        for quantity, value in (figures.get("quantities") or {}).items():
            row[f"{name}_{quantity}"] = value
        row[f"{name}_cost_usd"] = Decimal(figures.get("cost_usd") or 0)
        if name == "llm" and figures.get("by_key"):
            row["llm_models"] = json.dumps(figures["by_key"], sort_keys=True)
    return row


def _base(event: Mapping[str, Any]) -> dict[str, Any]:
    return {key: event.get(key) for key in ("session_id", "notebook_path", "notebook_id", "user",
                                            "team", "project")}


def _window_row(start: Mapping[str, Any], end: Mapping[str, Any] | None,
                last_ts: str | None, running: bool = False) -> dict[str, Any]:
    source = end or start
    row = {
        **_base(source),
        "window_id": source.get("window_id"),
        "parent_id": source.get("parent_id"),
        "kind": source.get("kind"),
        "cell_id": source.get("cell_id"),
        "execution_count": source.get("execution_count"),
        "label": source.get("label"),
        "tags": json.dumps(source.get("tags") or {}, sort_keys=True),
        "start": parse_ts(source.get("started_at")),
    }
    if end is not None:
        row.update(end=parse_ts(end.get("ended_at")), wall_s=end.get("wall_s"),
                   status=end.get("status"), cost_usd=Decimal(end.get("cost_usd") or 0),
                   unpriced=bool(end.get("unpriced")),
                   flags=",".join(end.get("flags") or ()) or None)
        row.update(_meter_fields(end.get("meters") or {}))
        return row
    # Not ended: still running (the cell exporting its own session) or the kernel died inside
    # it. Either way what reached the log so far is all there is.
    status = "running" if running else "interrupted"
    row.update(end=None if running else parse_ts(last_ts), status=status, cost_usd=ZERO,
               unpriced=False, flags=status)
    until = parse_ts(last_ts)
    row["wall_s"] = (until - row["start"]).total_seconds() if until and row["start"] else None
    return row


class _Accumulator:
    """Sums meter figures: discrete usage adds up, checkpoints replace (they are cumulative)."""

    def __init__(self) -> None:
        self.quantities: dict[str, dict[str, float]] = defaultdict(dict)
        self.cost: dict[str, Decimal] = defaultdict(Decimal)
        self.unpriced: set[str] = set()

    def add(self, meter: str, quantities: Mapping[str, float], cost: str | None) -> None:
        mine = self.quantities[meter]
        for q, v in quantities.items():
            mine[q] = mine.get(q, 0) + v
        if cost is None:
            self.unpriced.add(meter)
        else:
            self.cost[meter] += Decimal(cost)

    def replace(self, meter: str, quantities: Mapping[str, float], cost: str | None,
                unpriced: bool = False) -> None:
        self.quantities[meter] = dict(quantities)
        self.cost[meter] = Decimal(cost or 0)
        if cost is None or unpriced:
            self.unpriced.add(meter)
        else:
            self.unpriced.discard(meter)

    def as_meters(self) -> dict[str, dict[str, Any]]:
        return {m: {"quantities": self.quantities[m], "cost_usd": str(self.cost[m]),
                    "unpriced": m in self.unpriced}
                for m in set(self.quantities) | set(self.cost)}


def session_totals(events: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per meter, one session's totals: from ``session_end`` when it was written, otherwise
    rebuilt from what the log holds (usage events summed, the last checkpoint of each meter)."""
    for event in reversed(events):
        if event["event"] == "session_end":
            return dict(event.get("meters") or {})
    acc = _Accumulator()
    for event in events:
        if event.get("cumulative") and isinstance(event.get("meter"), str):
            acc.replace(event["meter"], event.get("quantities") or {}, event.get("cost_usd"),
                        bool(event.get("unpriced")))
        elif "quantities" in event and "meter" in event:
            acc.add(event["meter"], event["quantities"], event.get("cost_usd"))
    return acc.as_meters()


def between_cells_row(events: list[Mapping[str, Any]], rows: list[dict[str, Any]]) -> dict | None:
    totals = session_totals(events)
    top = [r for r in rows if not r.get("parent_id")]
    row: dict[str, Any] = {**_base(events[0]), "window_id": None, "parent_id": None,
                           "kind": "between_cells", "tags": "{}", "status": "ok", "flags": None}
    cost = ZERO
    unpriced = False
    # Never below zero: a killed session's last GPU checkpoint can predate its last cell's end
    # (the cell then holds all there is), and floats leave crumbs like -1e-12.
    for meter, figures in totals.items():
        meter_cost = max(Decimal(figures.get("cost_usd") or 0) - sum(
            (r.get(f"{meter}_cost_usd") or ZERO for r in top), ZERO), ZERO)
        for q, v in (figures.get("quantities") or {}).items():
            rest = max(v - sum((r.get(f"{meter}_{q}") or 0 for r in top)), 0)
            if q not in _NOT_ADDITIVE:
                row[f"{meter}_{q}"] = rest
        row[f"{meter}_cost_usd"] = meter_cost
        cost += meter_cost
        unpriced |= bool(figures.get("unpriced"))
    if not cost and not any(isinstance(v, (int, float)) and v > 1e-9 for k, v in row.items()
                            if k.startswith(("gpu_", "llm_")) and not k.endswith("_cost_usd")):
        return None
    row.update(cost_usd=cost, unpriced=unpriced)
    starts = [parse_ts(e.get("started_at")) for e in events if e["event"] == "session_start"]
    row["start"] = starts[0] if starts else parse_ts(events[0].get("ts"))
    row["end"] = parse_ts(events[-1].get("ts"))
    return row


def rows_from_events(events: Iterable[Mapping[str, Any]],
                     running: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The flat table: one row per window, one ``between_cells`` row per session where needed.
    Events that break the spend log's rules (:func:`nbcost.logcheck.event_problem`) are left
    out: read them with :func:`nbcost.ledger.read_log`, which says which and why.

    ``running``: ids of windows still open in a live session; an unended window not among them
    was cut short by a dead kernel (``interrupted``).
    """
    running = set(running)
    by_session: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        # The readers skip (and say) what breaks docs/schema.md's rules; an event given in
        # memory that breaks them is left out here too, never a crash halfway through a table.
        if event_problem(event) is None:
            by_session[event["session_id"]].append(event)
    rows: list[dict[str, Any]] = []
    for session_events in by_session.values():
        starts: dict[str, Mapping[str, Any]] = {}
        ends: dict[str, Mapping[str, Any]] = {}
        for event in session_events:
            kind = event["event"]
            if kind.endswith("_start") and "window_id" in event:
                starts[event["window_id"]] = event
            elif kind.endswith("_end") and "window_id" in event:
                ends[event["window_id"]] = event
        last_ts = session_events[-1].get("ts")
        session_rows = [_window_row(starts.get(wid, end), end, last_ts) for wid, end in ends.items()]
        session_rows += [_window_row(start, None, last_ts, wid in running)
                         for wid, start in starts.items() if wid not in ends]
        _attribute_unended(session_rows, session_events)
        _apply_amendments(session_rows, session_events, ends)
        rest = between_cells_row(session_events, session_rows)
        session_rows.sort(key=lambda r: r["start"] or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
        rows += session_rows + ([rest] if rest else [])
    return rows


def _attribute_unended(rows: list[dict[str, Any]], events: list[Mapping[str, Any]]) -> None:
    """A window still running, or one the kernel died in, gets the LLM calls the log saw
    inside it."""
    open_rows = {r["window_id"]: r for r in rows if r["status"] in ("interrupted", "running")}
    if not open_rows:
        return
    for event in events:
        if "quantities" not in event or event.get("cumulative"):
            continue
        for window_id in event.get("window_ids") or ():
            row = open_rows.get(window_id)
            if row is None:
                continue
            meter = event["meter"]
            for q, v in event["quantities"].items():
                row[f"{meter}_{q}"] = (row.get(f"{meter}_{q}") or 0) + v
            if event.get("cost_usd") is None:
                row["unpriced"] = True
            else:
                cost = Decimal(event["cost_usd"])
                row[f"{meter}_cost_usd"] = (row.get(f"{meter}_cost_usd") or ZERO) + cost
                row["cost_usd"] += cost


def _apply_amendments(rows: list[dict[str, Any]], events: list[Mapping[str, Any]],
                      ends: Mapping[str, Mapping[str, Any]]) -> None:
    """``window_amended``: usage that reached the kernel after its window ended (a child
    process, a Dask task still running at the cell's end) is added to that window's row.
    Only ended windows: an unended one already counts its ``llm_call`` events."""
    rows_by_id = {r["window_id"]: r for r in rows if r["window_id"] in ends}
    for event in events:
        if event["event"] != "window_amended":
            continue
        row = rows_by_id.get(event.get("window_id"))
        if row is None:
            continue
        for meter, figures in (event.get("meters") or {}).items():
            for q, v in (figures.get("quantities") or {}).items():
                row[f"{meter}_{q}"] = (row.get(f"{meter}_{q}") or 0) + v
            cost = Decimal(figures.get("cost_usd") or 0)
            row[f"{meter}_cost_usd"] = (row.get(f"{meter}_cost_usd") or ZERO) + cost
            row["cost_usd"] += cost
            if figures.get("unpriced"):
                row["unpriced"] = True
            if meter == "llm" and figures.get("by_key"):
                row["llm_models"] = json.dumps(_merged_models(
                    json.loads(row.get("llm_models") or "{}"), figures["by_key"]), sort_keys=True)
        flags = set((row.get("flags") or "").split(",")) - {""}
        row["flags"] = ",".join(sorted(flags | {"amended"}))


def _merged_models(models: dict[str, Any], more: Mapping[str, Mapping[str, Any]]) -> dict:
    for model, figures in more.items():
        mine = models.setdefault(model, {"cost_usd": None})
        for q, v in figures.items():
            if q == "cost_usd":
                if v is not None:
                    mine["cost_usd"] = str(Decimal(mine["cost_usd"] or 0) + Decimal(v))
            elif q == "unpriced":
                mine["unpriced"] = mine.get("unpriced", False) or bool(v)
            elif isinstance(v, (int, float)):
                mine[q] = mine.get(q, 0) + v
    return models
