"""Static summaries (text/plain and text/html) of a cell's record and of a session.

These are what terminal IPython, nbconvert, GitHub and a notebook reopened without a kernel show,
and the live widget shows the very same lines (``record_lines``) while the cell runs: every line
is made here, from the compact record, and the widget's JavaScript only writes them out as text.
Every value is escaped: labels and tags are user input.
"""

from __future__ import annotations

import html
import time
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from ..quantities import QUANTITIES
from ..records import Budget, MeterTotals, WindowRecord, compact_meter
from .format import (format_bytes, format_count, format_per_mtok, format_percent, format_seconds,
                     format_seconds_pm, format_usd, plural)

__all__ = ["RecordSummary", "SessionSummary", "SummaryRow", "Table", "budget_view",
           "format_bytes", "format_seconds", "format_usd", "meter_lines", "record_lines",
           "record_title", "session_rows", "window_budget"]

Line = tuple[str, str]
#: Two dollar amounts in one HTML output read as TeX to Lab's MathJax ("$0.001 of $0.002"):
#: these classes tell MathJax 3 (Lab) and MathJax 2 (classic, nbconvert) to leave it as text.
NO_MATH = "mathjax_ignore tex2jax_ignore"
ZERO = Decimal(0)

#: A busy time's error bar is worth showing once it is this share of the time held (short cells).
UNCERTAINTY_SHOWN_FROM = 0.1

#: The GPU's named waste (``records._compact_waste``): why each one costs.
_WASTE_WHY = {
    "idle_between": "held while no cell ran",
    "stall": "the GPU waited on the host",
    "underfill": "kernels too small to fill the GPU",
}


def _label(meter: str, key: str) -> str:
    """A figure's name for people, from the one list (``quantities.json``)."""
    return next((q.label for q in QUANTITIES.get(meter, ()) if q.key == key), key)


# -- the lines of one record ----------------------------------------------------------------------

def record_title(record: Mapping[str, Any], running: bool = False) -> str:
    """``nbcost · fine-tune`` (``· running`` while it runs, the status if not ok)."""
    name = record.get("label")
    if not name:
        count = record.get("execution_count")
        name = f"cell [{count}]" if count is not None else "cell"
    status = record.get("status")
    suffix = " · running" if running else ("" if status in (None, "ok") else f" ({status})")
    return f"nbcost · {name}{suffix}"


def record_lines(record: Mapping[str, Any], budget: Mapping[str, Any] | None = None,
                 spent_usd: Decimal | None = None, with_budget: bool = True) -> list[Line]:
    """The (label, value) lines of a compact record: time, GPU waste first, LLM, cost, budget.

    ``budget`` is the record's own ``budget`` unless given; ``spent_usd`` is what a session
    budget measures (the session's total) where the caller knows it. The live widget draws the
    budget under its bar instead (``with_budget=False``).
    """
    flags = list(record.get("flags") or ())
    lines: list[Line] = [("Wall time", format_seconds(record.get("wall_s") or 0.0))]
    if "gpu" in record:
        lines += meter_lines("gpu", record["gpu"])
    elif "no_gpu" in flags:
        lines.append(("GPU", "no GPU visible"))
    for name, figures in record.items():
        if isinstance(figures, Mapping) and name not in ("gpu", "budget"):
            lines += meter_lines(name, figures)
    lines.append(("Cost", format_usd(Decimal(record.get("cost_usd") or 0),
                                     bool(record.get("unpriced")))))
    budget = budget if budget is not None else record.get("budget")
    if budget and with_budget:
        lines.append(("Budget", budget_view(record, budget, spent_usd)["text"]))
    shown = [f for f in flags if f not in ("no_gpu", "unpriced")]
    if shown:
        lines.append(("Flags", ", ".join(shown)))
    return lines


def meter_lines(name: str, figures: Mapping[str, Any]) -> list[Line]:
    """One meter's lines, from its compact figures (``records.compact_meter``)."""
    if name == "gpu":
        return _gpu_lines(figures)
    if name == "llm":
        return _llm_lines(figures)
    if name == "local":
        return local_lines(figures)
    if name == "remote_gpu":  # Dask and Ray workers' GPUs: the GPU's figures, apart
        return [("Remote GPU" if label == "GPU" else label, text)
                for label, text in _gpu_lines(figures)]
    shown = ", ".join(f"{_label(name, k)} {v:g}" for k, v in figures.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool))
    cost = format_usd(Decimal(figures.get("cost_usd") or 0), bool(figures.get("unpriced")))
    return [(name, f"{shown}, {cost}" if shown else cost)]


def local_lines(local: Mapping[str, Any]) -> list[Line]:
    """Self-hosted generation: tokens, then what they cost per million at the measured GPU
    price, the GPU's busy share and the throughput."""
    calls = int(local.get("calls") or 0)
    head = (f"{calls:,} generation{'s' * (calls != 1)}, {format_count(local.get('input_tokens') or 0)}"
            f" input and {format_count(local.get('output_tokens') or 0)} output tokens")
    parts = []
    for key, what in (("output_usd_per_mtok", "out"), ("input_usd_per_mtok", "in")):
        if local.get(key) is not None:
            parts.append(f"{format_per_mtok(local[key])} {what}")
    if local.get("gpu_cost_usd") is not None:
        parts.append(f"GPU {format_usd(local['gpu_cost_usd'])}")
    if local.get("gpu_busy_share") is not None:
        parts.append(f"{format_percent(local['gpu_busy_share'], 1)} busy")
    if local.get("output_tokens_per_s"):
        parts.append(f"{format_count(round(local['output_tokens_per_s']))} tokens/s")
    if local.get("scope") == "session":
        parts.append("priced per cell: `%cost compare --local`")
    elif local.get("gpu_cost_usd") is None:
        parts.append("no GPU cost measured")
    return [("Local model", head), ("", " · ".join(parts))]


def _gpu_lines(gpu: Mapping[str, Any]) -> list[Line]:
    """Lead with what the waste cost, then the measured figures, then the largest waste."""
    held, busy = gpu.get("held_s") or 0.0, gpu.get("busy_s")
    cost, unpriced = Decimal(gpu.get("cost_usd") or 0), bool(gpu.get("unpriced"))
    waste = gpu.get("waste") or {}
    priced = gpu.get("waste_usd") is not None and not unpriced
    lead = [f"{format_percent(busy, held)} busy" if busy is not None else
            f"held {format_seconds(held)}"]
    idle = [waste[k] for k in ("idle_between", "stall") if k in waste]
    if idle and priced and all(w.get("usd") is not None for w in idle):
        idle_usd = sum((Decimal(w["usd"]) for w in idle), ZERO)
        lead.append(f"{format_usd(idle_usd)} of {format_usd(cost)} idle or stalled")
    elif idle:  # a GPU without a rate: the waste in seconds, the priced part's cost
        idle_s = sum(w.get("s") or 0.0 for w in idle)
        lead += [f"{format_seconds(idle_s)} of {format_seconds(held)} idle or stalled",
                 format_usd(cost, unpriced)]
    else:
        lead.append(format_usd(cost, unpriced))
    lines: list[Line] = [("GPU", " · ".join(lead))]

    uncertainty = gpu.get("uncertainty_s") or 0.0
    show_pm = uncertainty > 0 and uncertainty >= UNCERTAINTY_SHOWN_FROM * max(held, 1e-9)
    measured = []
    for q in QUANTITIES["gpu"]:
        value = gpu.get(q.key)
        if not q.compact or value is None:
            continue
        if q.key in ("busy_s", "sm_s"):
            shown = format_seconds_pm(value, uncertainty) if show_pm else format_seconds(value)
        elif q.unit == "s":
            shown = format_seconds(value)
        elif q.unit == "J":
            shown = f"{format_count(value)} J"
        elif q.unit == "bytes":
            shown = format_bytes(value)
        else:
            shown = f"{value:g} {q.unit}"
        measured.append(f"{q.label} {shown}")
    if measured:
        lines.append(("", ", ".join(measured)))
    wasted = {k: w for k, w in waste.items() if w.get("s")}
    if wasted:
        def size(item):
            kind, w = item
            return (Decimal(w["usd"]) if priced and w.get("usd") is not None else ZERO, w["s"])

        kind, worst = max(wasted.items(), key=size)
        text = f"{_label('gpu', kind + '_s')} {format_seconds(worst['s'])}"
        if priced and worst.get("usd") is not None:
            text += f", {format_usd(Decimal(worst['usd']))}"
        lines.append(("Largest waste", f"{text} ({_WASTE_WHY.get(kind, kind)})"))
    return lines


def _tokens(figures: Mapping[str, Any]) -> str:
    """``3 calls, 6,450 tokens (5,000 input, 1,000 cached, 1,450 output)``."""
    total = (figures.get("input_tokens") or 0) + (figures.get("output_tokens") or 0)
    parts = [f"{format_count(figures[q.key])} {q.label}" for q in QUANTITIES["llm"]
             if q.unit == "tokens" and figures.get(q.key)]
    text = f"{plural(figures.get('calls') or 0, 'call')}, {plural(total, 'token')}"
    return f"{text} ({', '.join(parts)})" if parts else text


def _llm_lines(llm: Mapping[str, Any]) -> list[Line]:
    lines: list[Line] = [("LLM", _tokens(llm))]
    for model, figures in (llm.get("by_model") or {}).items():
        cost = format_usd(Decimal(figures.get("cost_usd") or 0), bool(figures.get("unpriced")))
        lines.append((f"  {model}", f"{_tokens(figures)}, {cost}"))
    return lines


# -- budgets --------------------------------------------------------------------------------------

def budget_view(record: Mapping[str, Any], budget: Mapping[str, Any],
                spent_usd: Decimal | None = None) -> dict[str, Any]:
    """The true share of a budget and the overshoot: text, bar fill (0–1) and level.

    A cell budget measures the cell's cost; a session budget measures ``spent_usd`` (the
    session's total) where known, else says what this cell took of it.
    """
    limit = Decimal(budget["usd"])
    scope = budget.get("scope") or "cell"
    cell_cost = Decimal(record.get("cost_usd") or 0)
    whose = "" if scope == "cell" or spent_usd is not None else "this cell: "
    spent = spent_usd if scope == "session" and spent_usd is not None else cell_cost
    hard = "hard " if budget.get("hard") else ""
    text = f"{whose}{format_percent(spent, limit)} of the {format_usd(limit)} {hard}{scope} budget"
    if spent > limit:
        text += f", {format_usd(spent - limit)} over"
    share = spent / limit if limit > 0 else Decimal(1)
    level = "over" if share >= 1 else "near" if share >= Decimal("0.8") else "ok"
    return {"text": text, "fill": float(min(share, Decimal(1))), "level": level}


def window_budget(session: Any, window: Any) -> dict[str, Any] | None:
    """The budget an open window runs under (``Budget.to_json()`` shape): its own if ``%%cost
    --budget`` set one, else the session's; None without one."""
    budget = session.budgets.of_window(window.id)
    return None if budget is None else budget.to_json()


def as_budget(value: Budget | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return value.to_json() if isinstance(value, Budget) else dict(value)


# -- renderers ------------------------------------------------------------------------------------

def _text(title: str, lines: list[Line]) -> str:
    width = max(len(label) for label, _ in lines)
    return "\n".join([title] + [f"  {label:<{width}}  {value}".rstrip() for label, value in lines])


def _html(title: str, lines: list[Line]) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(label)}</th>"
        f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
        for label, value in lines
    )
    return (f"<div class='nbcost-summary {NO_MATH}'><b>{html.escape(title)}</b>"
            f"<table>{rows}</table></div>")


class RecordSummary:
    """A finished ``%%cost`` cell's summary; renders as text and as an HTML table.

    ``budget`` is the budget the cell ran under where the record does not carry one.
    """

    def __init__(self, record: WindowRecord, budget: Budget | Mapping[str, Any] | None = None
                 ) -> None:
        self.record = record
        self.compact = record.compact()
        self.budget = self.compact.get("budget") or as_budget(budget)

    def lines(self) -> list[Line]:
        return record_lines(self.compact, self.budget)

    def __repr__(self) -> str:
        return _text(record_title(self.compact), self.lines())

    def _repr_html_(self) -> str:
        return _html(record_title(self.compact), self.lines())


def meter_summary(totals: MeterTotals) -> tuple[str, list[Line]]:
    """``t.gpu`` / ``t.llm`` for people: the meter's name (guessed from its figures) and lines."""
    keys = set(totals.quantities)
    name = next((meter for meter in ("gpu", "llm")
                 if keys & {q.key for q in QUANTITIES[meter] if q.compact} - {"calls"}),
                "gpu" if "no_gpu" in totals.flags else "meter")
    if not keys and not totals.cost_usd and not totals.unpriced:
        reason = "no GPU visible" if "no_gpu" in totals.flags else ", ".join(totals.flags)
        return name, [(name.upper(), reason or "no figures")]
    lines = meter_lines(name, compact_meter(name, totals))
    flags = [f for f in totals.flags if f != "unpriced"]  # the cost says so
    if flags:
        lines.append(("Flags", ", ".join(flags)))
    if name != "meter":
        lines.append(("Cost", format_usd(totals.cost_usd, totals.unpriced)))
    return name, lines


def meter_text(totals: MeterTotals) -> str:
    name, lines = meter_summary(totals)
    return _text(f"nbcost · {name if name == 'meter' else name.upper()}", lines)


def meter_html(totals: MeterTotals) -> str:
    name, lines = meter_summary(totals)
    return _html(f"nbcost · {name if name == 'meter' else name.upper()}", lines)


# -- tables ---------------------------------------------------------------------------------------

class Table:
    """A plain table that renders as aligned text and as escaped HTML; ``notes`` follow it."""

    def __init__(self, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]],
                 footer: Sequence[Any] | None = None, notes: Sequence[str] = ()) -> None:
        self.title = title
        self.header = list(header)
        self.rows = [[str(cell) for cell in row] for row in rows]
        self.footer = [str(cell) for cell in footer] if footer else None
        self.notes = list(notes)

    def __repr__(self) -> str:
        body = [self.header, *self.rows] + ([self.footer] if self.footer else [])
        widths = [max(len(row[i]) for row in body) for i in range(len(self.header))]

        def line(row: Sequence[str]) -> str:
            return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths))).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [self.title, line(self.header), rule, *map(line, self.rows)]
        if self.footer:
            out += [rule, line(self.footer)]
        return "\n".join(out + self.notes)

    def _repr_html_(self) -> str:
        def cells(row: Sequence[str], tag: str) -> str:
            return "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)

        rows = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in self.rows)
        foot = f"<tfoot><tr>{cells(self.footer, 'th')}</tr></tfoot>" if self.footer else ""
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        return (f"<div class='nbcost-table {NO_MATH}'><b>{html.escape(self.title)}</b><table>"
                f"<thead><tr>{cells(self.header, 'th')}</tr></thead><tbody>{rows}</tbody>{foot}"
                f"</table>{notes}</div>")


class SummaryRow:
    """One line of the ``%cost`` table, summed exactly (Decimal cost, whole counts)."""

    def __init__(self, name: str, wall_s: float = 0.0, held_s: float | None = None,
                 calls: int | None = None, tokens: int | None = None, cost_usd: Decimal = ZERO,
                 unpriced: bool = False, meter_costs: Mapping[str, Decimal] | None = None) -> None:
        self.name, self.wall_s, self.held_s = name, wall_s, held_s
        self.calls, self.tokens, self.cost_usd, self.unpriced = calls, tokens, cost_usd, unpriced
        self.meter_costs = dict(meter_costs or {})

    @classmethod
    def of(cls, name: str, compact: Mapping[str, Any]) -> SummaryRow:
        gpu, llm = compact.get("gpu"), compact.get("llm")
        meters = {k: v for k, v in compact.items() if isinstance(v, Mapping) and k != "budget"}
        return cls(name, compact.get("wall_s") or 0.0,
                   None if gpu is None else gpu.get("held_s") or 0.0,
                   None if llm is None else int(llm.get("calls") or 0),
                   None if llm is None else _token_count(llm),
                   Decimal(compact.get("cost_usd") or 0), bool(compact.get("unpriced")),
                   {k: Decimal(v.get("cost_usd") or 0) for k, v in meters.items()})

    def cells(self) -> list[str]:
        return [self.name, format_seconds(self.wall_s),
                "-" if self.held_s is None else format_seconds(self.held_s),
                "-" if self.calls is None else format_count(self.calls),
                "-" if self.tokens is None else format_count(self.tokens),
                format_usd(self.cost_usd, self.unpriced)]


def _token_count(figures: Mapping[str, Any]) -> int:
    return int((figures.get("input_tokens") or 0) + (figures.get("output_tokens") or 0))


def _add(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present[1:], present[0]) if present else None


def _cell_name(compact: Mapping[str, Any], kind: str) -> str:
    if compact.get("label"):
        return compact["label"]
    if kind == "cell":
        count = compact.get("execution_count")
        return f"[{count}]" if count is not None else "cell"
    return kind


#: ``%cost`` lists this many of the latest windows; older ones are summed in one row above them
#: (a session of 100,000 cells would otherwise print 100,000 lines, megabytes of HTML).
SHOWN_WINDOWS = 100


def session_rows(session) -> tuple[list[SummaryRow], SummaryRow, list[str]]:
    """The ``%cost`` table's rows, its total line (their sum, in every column) and notes.

    Rows are the top-level windows (the running one so far), then "between cells": what no
    window saw (the GPU held idle between cells, LLM calls outside any cell), per meter the
    session's total less its windows' rows. The session's elapsed time goes in the notes.
    """
    windows, between, total, notes = _session_parts(session)
    return windows + ([between] if between is not None else []), total, notes


def _session_parts(session) -> tuple[list[SummaryRow], SummaryRow | None, SummaryRow, list[str]]:
    now = session.ended_at or time.time()
    finished = session.finished_windows()  # older ones from the spend log: memory keeps few
    rows = [SummaryRow.of(_cell_name(w.compact, w.kind), w.compact) for w in finished.windows]
    for info in session.open_windows():  # the cell running `%cost` itself, so far
        if info.parent_id is None:
            try:
                compact = session.live_totals(info.id)
            except KeyError:  # it closed since we looked
                continue
            rows.append(SummaryRow.of(f"{_cell_name(compact, info.kind)} (running)", compact))
    elapsed = max(0.0, now - session.started_at)
    in_windows = sum(r.wall_s for r in rows)
    between, notes = _between_cells(session.totals(now), rows, max(elapsed - in_windows, 0.0))
    every = rows + ([between] if between is not None else [])
    total = _sum_of(every, "session total")
    notes.insert(0, f"Session elapsed {format_seconds(elapsed)}, "
                    f"{format_seconds(in_windows)} of it in cells.")
    if (missing := finished.note()) is not None:
        notes.append(missing)
    return rows, between, total, notes


def _sum_of(rows: list[SummaryRow], name: str) -> SummaryRow:
    return SummaryRow(name, sum(r.wall_s for r in rows), _add(r.held_s for r in rows),
                      _add(r.calls for r in rows), _add(r.tokens for r in rows),
                      sum((r.cost_usd for r in rows), ZERO), any(r.unpriced for r in rows))


def SessionSummary(session) -> Table:  # noqa: N802 - reads as a type at call sites
    """``%cost``: the session's top-level windows (the latest :data:`SHOWN_WINDOWS`, the
    older ones summed in one row), what ran between them, the total."""
    windows, between, total, notes = _session_parts(session)
    if len(windows) > SHOWN_WINDOWS:
        older = windows[:-SHOWN_WINDOWS]
        windows = [_sum_of(older, f"{len(older):,} earlier windows"), *windows[-SHOWN_WINDOWS:]]
        notes.append(f"The first {len(older):,} windows are summed in one row: "
                     "`%cost export PATH` or `nbcost.session().to_dataframe()` lists each.")
    rows = windows + ([between] if between is not None else [])
    return Table(f"nbcost · session {session.id[:8]}",
                 ["cell", "wall", "GPU held", "LLM calls", "tokens", "cost"],
                 [r.cells() for r in rows], total.cells(), notes)


def _between_cells(totals: Mapping[str, MeterTotals], rows: list[SummaryRow], wall_s: float
                   ) -> tuple[SummaryRow | None, list[str]]:
    """What the session's totals hold beyond its windows' rows, per meter, and why, in words."""
    costs = {name: t.cost_usd - sum((r.meter_costs.get(name, ZERO) for r in rows), ZERO)
             for name, t in totals.items()}
    gpu, llm = totals.get("gpu"), totals.get("llm")
    held = calls = tokens = None
    unpriced = False
    notes: list[str] = []
    if gpu is not None and "held_s" in gpu.quantities:
        held = max(gpu.quantities["held_s"] - sum(r.held_s or 0.0 for r in rows), 0.0)
        unpriced |= gpu.unpriced and held > 0
        if held > 0 or costs["gpu"]:
            notes.append(f"Between cells: the GPU was held {format_seconds(held)} with no cell "
                         f"running ({format_usd(costs['gpu'], gpu.unpriced)}).")
    if llm is not None:
        calls = int(llm.quantities.get("calls", 0)) - sum(r.calls or 0 for r in rows)
        tokens = _token_count(llm.quantities) - sum(r.tokens or 0 for r in rows)
        unpriced |= bool(calls) and llm.unpriced
        if calls or costs["llm"]:
            notes.append(f"Between cells: {plural(calls, 'LLM call')} outside any cell "
                         f"({format_usd(costs['llm'], llm.unpriced and bool(calls))}).")
    for name, cost in costs.items():
        if name not in ("gpu", "llm") and cost:
            notes.append(f"Between cells: {name} {format_usd(cost)} outside any cell.")
    cost = sum(costs.values(), ZERO)
    if not cost and not held and not calls and wall_s < 0.0005:
        return None, notes
    return SummaryRow("between cells", wall_s, held, calls, tokens, cost, unpriced), notes
