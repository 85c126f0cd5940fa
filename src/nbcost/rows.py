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

__all__ = ["SpendTable", "between_cells_row", "rows_from_events", "session_totals", "top_level_sum"]

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


def _tags_text(tags: Mapping[str, Any] | None) -> str:
    return json.dumps(tags, sort_keys=True) if tags else "{}"  # most windows have none


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
        "tags": _tags_text(source.get("tags")),
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


class _Totals:
    """One session's totals per meter, event by event (see :func:`session_totals`)."""

    def __init__(self) -> None:
        self.acc = _Accumulator()
        self.session_end: Mapping[str, Any] | None = None  # the last one

    def add(self, event: Mapping[str, Any]) -> None:
        if event["event"] == "session_end":
            self.session_end = event
        elif event.get("cumulative") and isinstance(event.get("meter"), str):
            self.acc.replace(event["meter"], event.get("quantities") or {},
                             event.get("cost_usd"), bool(event.get("unpriced")))
        elif "quantities" in event and "meter" in event:
            self.acc.add(event["meter"], event["quantities"], event.get("cost_usd"))

    def result(self) -> dict[str, dict[str, Any]]:
        if self.session_end is not None:
            return dict(self.session_end.get("meters") or {})
        return self.acc.as_meters()


def session_totals(events: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per meter, one session's totals: from ``session_end`` when it was written, otherwise
    rebuilt from what the log holds (usage events summed, the last checkpoint of each meter)."""
    totals = _Totals()
    for event in events:
        totals.add(event)
    return totals.result()


def between_cells_row(events: list[Mapping[str, Any]], rows: list[dict[str, Any]]) -> dict | None:
    """What no top-level window of ``rows`` saw of the session whose events are ``events``."""
    started = next((e for e in events if e["event"] == "session_start"), None)
    return _between_cells(session_totals(events), events[0], started, events[-1].get("ts"),
                          top_level_sum(rows))


def top_level_sum(rows: list[Mapping[str, Any]]):
    """``column_sum(column, zero)``: the column summed over the top-level rows, in order (each
    missing value counts as ``zero``, which the sum starts from)."""
    top = [r for r in rows if not r.get("parent_id")]

    def column_sum(column: str, zero: Any) -> Any:
        return sum((r.get(column) or zero for r in top), zero)

    return column_sum


def _between_cells(totals: Mapping[str, Mapping[str, Any]], first: Mapping[str, Any],
                   session_start: Mapping[str, Any] | None, last_ts: str | None,
                   column_sum) -> dict | None:
    """What no top-level window saw; ``column_sum`` sums their columns (:func:`top_level_sum`)."""
    row: dict[str, Any] = {**_base(first), "window_id": None, "parent_id": None,
                           "kind": "between_cells", "tags": "{}", "status": "ok", "flags": None}
    cost = ZERO
    unpriced = False
    # Never below zero: a killed session's last GPU checkpoint can predate its last cell's end
    # (the cell then holds all there is), and floats leave crumbs like -1e-12.
    for meter, figures in totals.items():
        meter_cost = max(Decimal(figures.get("cost_usd") or 0)
                         - column_sum(f"{meter}_cost_usd", ZERO), ZERO)
        for q, v in (figures.get("quantities") or {}).items():
            rest = max(v - column_sum(f"{meter}_{q}", 0), 0)
            if q not in _NOT_ADDITIVE:
                row[f"{meter}_{q}"] = rest
        row[f"{meter}_cost_usd"] = meter_cost
        cost += meter_cost
        unpriced |= bool(figures.get("unpriced"))
    if not cost and not any(isinstance(v, (int, float)) and v > 1e-9 for k, v in row.items()
                            if k.startswith(("gpu_", "llm_")) and not k.endswith("_cost_usd")):
        return None
    row.update(cost_usd=cost, unpriced=unpriced)
    row["start"] = (parse_ts(session_start.get("started_at")) if session_start is not None
                    else parse_ts(first.get("ts")))
    row["end"] = parse_ts(last_ts)
    return row


def rows_from_events(events: Iterable[Mapping[str, Any]],
                     running: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The flat table: one row per window, one ``between_cells`` row per session where needed.
    Events that break the spend log's rules (:func:`nbcost.logcheck.event_problem`) are left
    out: read them with :func:`nbcost.ledger.read_log`, which says which and why.

    ``running``: ids of windows still open in a live session; an unended window not among them
    was cut short by a dead kernel (``interrupted``).
    """
    table = SpendTable(running)
    for event in events:
        # The readers skip (and say) what breaks docs/schema.md's rules; an event given in
        # memory that breaks them is left out here too, never a crash halfway through a table.
        if event_problem(event) is None:
            table.add(event)
    return table.rows()


class SpendTable:
    """:func:`rows_from_events` built one event at a time, holding rows, not events: a window's
    row is made when its end is read, so a log of a million windows is read without keeping
    its millions of events (``session_rows`` streams a session's log through this).
    ``add`` takes events that passed :func:`nbcost.logcheck.event_problem`."""

    def __init__(self, running: Iterable[str] = ()) -> None:
        self.running = set(running)
        self._sessions: dict[str, _SessionTable] = {}

    def add(self, event: Mapping[str, Any]) -> None:
        table = self._sessions.get(event["session_id"])
        if table is None:
            table = self._sessions[event["session_id"]] = self._session_table(event)
        table.add(event)

    def _session_table(self, first: Mapping[str, Any]) -> _SessionTable:
        """The part of the table for the session whose first event is ``first``."""
        return _SessionTable(first)

    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for table in self._sessions.values():
            rows += table.rows(self.running)
        return rows


class _SessionTable:
    """One session's part of a :class:`SpendTable`."""

    def __init__(self, first: Mapping[str, Any]) -> None:
        self.first = first
        self.last_ts = first.get("ts")
        self.session_start: Mapping[str, Any] | None = None
        self.totals = _Totals()
        self.ended: dict[str, dict[str, Any]] = {}  # window id → its row, in order of ends
        self.unended: dict[str, Mapping[str, Any]] = {}  # window id → its start event
        # Usage seen inside a window that may turn out unended, in log order; dropped when
        # the window ends (its end event has its figures; nbcost never ends a window twice).
        self.usage_in: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        self.amendments: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)  # rare

    def add(self, event: Mapping[str, Any]) -> None:
        self.last_ts = event.get("ts")
        kind = event["event"]
        if kind == "session_start" and self.session_start is None:
            self.session_start = event
        self.totals.add(event)
        if kind.endswith("_start") and "window_id" in event:
            if not self._has_ended(event["window_id"]):
                self.unended[event["window_id"]] = event
        elif kind.endswith("_end") and "window_id" in event:
            window_id = event["window_id"]
            self.unended.pop(window_id, None)
            self._end(window_id, _window_row(event, event, None))
            self.usage_in.pop(window_id, None)
        elif kind == "window_amended":
            self._amend(event)
        if "quantities" in event and not event.get("cumulative"):
            for window_id in event.get("window_ids") or ():
                if self._may_take_usage(window_id):
                    self.usage_in[window_id].append(event)

    # What a subclass that does not keep its ended rows (nbcost.table_batches) replaces.

    def _has_ended(self, window_id: str) -> bool:
        return window_id in self.ended

    def _end(self, window_id: str, row: dict[str, Any]) -> None:
        self.ended[window_id] = row

    def _amend(self, event: Mapping[str, Any]) -> None:
        self.amendments[event.get("window_id")].append(event)

    def _may_take_usage(self, window_id: str) -> bool:
        """Usage inside ``window_id`` may yet be its row's: the window has not ended."""
        return not self._has_ended(window_id)

    def rows(self, running: set[str]) -> list[dict[str, Any]]:
        unended = [_window_row(start, None, self.last_ts, window_id in running)
                   for window_id, start in self.unended.items()]
        _attribute_unended(unended, self.usage_in)
        rows = list(self.ended.values()) + unended
        _apply_amendments(self.ended, self.amendments)
        rest = _between_cells(self.totals.result(), self.first, self.session_start,
                              self.last_ts, top_level_sum(rows))
        rows.sort(key=lambda r: r["start"] or _EPOCH)
        return rows + ([rest] if rest else [])


_EPOCH = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _attribute_unended(rows: list[dict[str, Any]],
                       usage_in: Mapping[str, list[Mapping[str, Any]]]) -> None:
    """A window the log never saw end (still running, or the kernel died in it) gets the LLM
    calls the log saw inside it. (One that ended, even interrupted, has them in its end.)"""
    for row in rows:
        for event in usage_in.get(row["window_id"], ()):
            meter = event["meter"]
            for q, v in event["quantities"].items():
                row[f"{meter}_{q}"] = (row.get(f"{meter}_{q}") or 0) + v
            if event.get("cost_usd") is None:
                row["unpriced"] = True
            else:
                cost = Decimal(event["cost_usd"])
                row[f"{meter}_cost_usd"] = (row.get(f"{meter}_cost_usd") or ZERO) + cost
                row["cost_usd"] += cost


def _apply_amendments(ended: Mapping[str, dict[str, Any]],
                      amendments: Mapping[Any, list[Mapping[str, Any]]]) -> None:
    """``window_amended``: usage that reached the kernel after its window ended (a child
    process, a Dask task still running at the cell's end) is added to that window's row.
    Only ended windows: an unended one already counts its ``llm_call`` events."""
    for window_id, events in amendments.items():
        row = ended.get(window_id)
        if row is None:
            continue
        for event in events:
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
                        json.loads(row.get("llm_models") or "{}"), figures["by_key"]),
                        sort_keys=True)
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
