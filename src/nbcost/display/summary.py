"""Static summaries (text/plain and text/html) of a cell's record and of a session.

These are what terminal IPython, nbconvert, GitHub and a notebook reopened without a kernel show.
Every value is escaped: labels and tags are user input.
"""

from __future__ import annotations

import html
import time
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from ..records import MeterTotals, WindowRecord

__all__ = ["RecordSummary", "SessionSummary", "Table", "format_bytes", "format_seconds",
           "format_usd", "record_lines"]


def format_usd(amount: Decimal, unpriced: bool = False) -> str:
    """``$0.0123``; ``$0.0123 + unpriced`` when part had no price; ``unpriced`` when none had."""
    if unpriced and not amount:
        return "unpriced"
    if amount and abs(amount) < Decimal("0.0001"):
        text = f"${amount:.6f}"
    elif abs(amount) < 100:
        text = f"${amount:.4f}"
    else:
        text = f"${amount:,.2f}"
    return f"{text} + unpriced" if unpriced else text


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes:.0f} min {secs:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:.0f} h {minutes:.0f} min"


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _tokens(q: Mapping[str, float]) -> str:
    parts = [f"{int(q.get('input_tokens', 0)):,} in"]
    if q.get("cache_read_tokens"):
        parts.append(f"{int(q['cache_read_tokens']):,} cached")
    parts.append(f"{int(q.get('output_tokens', 0)):,} out")
    if q.get("reasoning_tokens"):
        parts.append(f"{int(q['reasoning_tokens']):,} reasoning")
    return ", ".join(parts)


def gpu_line(gpu: MeterTotals) -> str:
    q = gpu.quantities
    text = (f"held {format_seconds(q.get('held_s', 0))}, busy {format_seconds(q.get('busy_s', 0))}"
            f", SM {format_seconds(q.get('sm_s', 0))}")
    if q.get("energy_j"):
        text += f", {q['energy_j']:,.0f} J"
    if q.get("mem_peak_bytes"):
        text += f", peak {format_bytes(q['mem_peak_bytes'])}"
    return text


def record_lines(wall_s: float, meters: Mapping[str, MeterTotals]) -> list[tuple[str, str]]:
    """The (label, value) lines of a cost summary: time, GPU, LLM by model, other meters, cost."""
    lines = [("Wall time", format_seconds(wall_s))]
    for name, totals in meters.items():
        if not totals.quantities and not totals.cost_usd:  # e.g. no GPU visible: say why
            reason = ("no GPU visible" if "no_gpu" in totals.flags
                      else ", ".join(totals.flags) or "no figures")
            lines.append((name.upper() if name in ("gpu", "llm") else name, reason))
            continue
        if name == "gpu":
            lines.append(("GPU", gpu_line(totals)))
        elif name == "llm":
            calls = int(totals.quantities.get("calls", 0))
            lines.append(("LLM", f"{calls} call{'s' * (calls != 1)}: {_tokens(totals.quantities)}"))
            for model, figures in totals.by_key.items():
                cost = format_usd(figures.get("cost_usd") or Decimal(0), bool(figures.get("unpriced")))
                calls = int(figures.get("calls", 0))
                lines.append((f"  {model}",
                              f"{calls} call{'s' * (calls != 1)}: {_tokens(figures)}, {cost}"))
        else:
            shown = ", ".join(f"{k} {v:g}" for k, v in totals.quantities.items())
            lines.append((name, shown))
        if totals.flags:
            lines.append(("", f"({name}: {', '.join(totals.flags)})"))
    cost = sum((t.cost_usd for t in meters.values()), Decimal(0))
    lines.append(("Cost", format_usd(cost, any(t.unpriced for t in meters.values()))))
    return lines


class RecordSummary:
    """A finished ``%%cost`` cell's summary; renders as text and as an HTML table."""

    def __init__(self, record: WindowRecord) -> None:
        self.record = record

    def _title(self) -> str:
        info = self.record.info
        name = info.label or (f"cell [{info.execution_count}]" if info.execution_count else info.kind)
        status = "" if self.record.status == "ok" else f" ({self.record.status})"
        return f"nbcost · {name}{status}"

    def __repr__(self) -> str:
        lines = record_lines(self.record.wall_s, self.record.meters)
        width = max(len(label) for label, _ in lines)
        return "\n".join([self._title()] + [f"  {label:<{width}}  {value}" for label, value in lines])

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(label)}</th>"
            f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
            for label, value in record_lines(self.record.wall_s, self.record.meters)
        )
        return (f"<div class='nbcost-summary'><b>{html.escape(self._title())}</b>"
                f"<table>{rows}</table></div>")


class Table:
    """A plain table that renders as aligned text and as escaped HTML."""

    def __init__(self, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]],
                 footer: Sequence[Any] | None = None) -> None:
        self.title = title
        self.header = list(header)
        self.rows = [[str(cell) for cell in row] for row in rows]
        self.footer = [str(cell) for cell in footer] if footer else None

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
        return "\n".join(out)

    def _repr_html_(self) -> str:
        def cells(row: Sequence[str], tag: str) -> str:
            return "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)

        rows = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in self.rows)
        foot = f"<tfoot><tr>{cells(self.footer, 'th')}</tr></tfoot>" if self.footer else ""
        return (f"<div class='nbcost-table'><b>{html.escape(self.title)}</b><table>"
                f"<thead><tr>{cells(self.header, 'th')}</tr></thead><tbody>{rows}</tbody>{foot}"
                f"</table></div>")


def _held(gpu: MeterTotals | None) -> str:
    """GPU held time, or "-" where no GPU was measured (none visible)."""
    if gpu is None or "held_s" not in gpu.quantities:
        return "-"
    return format_seconds(gpu.quantities["held_s"])


def _cell_name(record: WindowRecord) -> str:
    info = record.info
    if info.label:
        return info.label
    if info.kind == "cell":
        return f"[{info.execution_count}]" if info.execution_count is not None else "cell"
    return info.kind


def SessionSummary(session) -> Table:  # noqa: N802 - reads as a type at call sites
    """``%cost``: every top-level window of the session, then the session's total."""
    rows = []
    for record in session.records:
        if record.info.parent_id is not None:
            continue
        gpu, llm = record.gpu, record.llm
        rows.append([
            _cell_name(record),
            format_seconds(record.wall_s),
            _held(gpu),
            f"{int(llm.quantities.get('calls', 0))}" if llm else "-",
            f"{int(llm.quantities.get('input_tokens', 0) + llm.quantities.get('output_tokens', 0)):,}"
            if llm else "-",
            format_usd(record.cost_usd, record.unpriced),
        ])
    totals = session.totals()
    gpu, llm = totals.get("gpu"), totals.get("llm")
    cost = sum((t.cost_usd for t in totals.values()), Decimal(0))
    footer = [
        "session total",
        format_seconds(max(0.0, (session.ended_at or time.time()) - session.started_at)),
        _held(gpu),
        f"{int(llm.quantities.get('calls', 0))}" if llm else "-",
        f"{int(llm.quantities.get('input_tokens', 0) + llm.quantities.get('output_tokens', 0)):,}"
        if llm else "-",
        format_usd(cost, any(t.unpriced for t in totals.values())),
    ]
    return Table(f"nbcost · session {session.id[:8]}",
                 ["cell", "wall", "GPU held", "LLM calls", "tokens", "cost"], rows, footer)
