"""A report as a terminal table, CSV, JSON, Parquet, Markdown or a standalone HTML page.

Machine formats (CSV, JSON, Parquet) carry every figure exactly: money as decimal strings (or
``decimal128(38,18)``), counts as integers, seconds as numbers, shares as fractions; the human
ones (table, Markdown, HTML) show the chosen columns, formatted, with the total and the notes.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

from ..display.format import format_seconds, format_usd
from ..display.summary import Table
from ..errors import NbcostError
from ..ledger import iso_utc

__all__ = ["FORMATS", "Sheet", "render", "sheet_of_report", "sheet_of_top", "top_cells"]

FORMATS = ("table", "csv", "json", "parquet", "markdown", "html")
LABELS = {
    "cells": "cells", "sessions": "sessions", "cost_usd": "total", "llm_cost_usd": "LLM",
    "gpu_cost_usd": "GPU", "other_cost_usd": "other", "wall_s": "wall", "gpu_held_s": "GPU held",
    "gpu_busy_s": "GPU busy", "gpu_idle_between_s": "idle between", "gpu_stall_s": "stall",
    "gpu_underfill_s": "underfill", "gpu_idle_between_usd": "idle between $",
    "gpu_stall_usd": "stall $", "gpu_underfill_usd": "underfill $", "gpu_waste_usd": "GPU waste",
    "llm_calls": "LLM calls", "llm_input_tokens": "input tok", "llm_cache_read_tokens": "cached tok",
    "llm_cache_write_tokens": "cache-write tok", "llm_output_tokens": "output tok",
    "llm_reasoning_tokens": "reasoning tok", "cache_saved_usd": "cache saved",
    "unpriced_cells": "unpriced cells", "unpriced_share": "unpriced", "estimated_calls":
    "estimated calls", "estimated_share": "estimated", "llm_errors": "LLM errors",
    "failed_cells": "failed cells", "start": "start", "status": "status", "session_id": "session",
    "user": "user", "notebook": "notebook", "cell": "cell",
}


@dataclass
class Sheet:
    """What every format renders: key columns, figure columns (name, kind), rows, a total."""

    title: str
    keys: list[str]
    figures: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    total: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-only fields


def _human(value: Any, kind: str, unpriced: bool = False) -> str:
    if value is None:
        return "unpriced" if unpriced and kind == "usd" else "-"
    if kind == "usd":
        return format_usd(value, unpriced)
    if kind == "seconds":
        return format_seconds(value)
    if kind == "count":
        return f"{int(value):,}"
    if kind == "share":
        return f"{value * 100:.1f} %"
    if kind == "time":
        return iso_utc(value)[:19].replace("T", " ")
    return str(value)


def _plain(value: Any, kind: str) -> Any:
    """A value as JSON and CSV write it: money and shares as exact decimal strings."""
    if value is None:
        return None
    if kind in ("usd", "share"):
        value = Decimal(value)
        if kind == "share":
            value = value.quantize(Decimal("1e-6"))
        return format(value.normalize(), "f") if value else "0"
    if kind == "seconds":
        return round(float(value), 6)
    if kind == "count":
        return int(value)
    if kind == "time":
        return iso_utc(value)
    return value


def _key_label(row: dict[str, Any], keys: list[str]) -> str:
    return " · ".join(str(row["keys"][k]) for k in keys)


def sheet_of_report(report, columns: Sequence[str]) -> Sheet:
    from .query import FIGURE_NAMES, KINDS

    def period() -> str:
        if report.since is None and report.until is None:
            return ""
        since = iso_utc(report.since)[:10] if report.since else "the start"
        until = f"before {iso_utc(report.until)[:10]}" if report.until else "now"
        return f" · {since} to {until}"

    title = (f"nbcost report by {', '.join(report.by)}{period()} · {report.sessions:,} session"
             f"{'s' * (report.sessions != 1)}")
    sheet = Sheet(title, list(report.by), [(c, KINDS[c]) for c in columns], report.rows,
                  report.total, list(report.notes))
    sheet.extra = {"all_figures": [(c, KINDS[c]) for c in FIGURE_NAMES]}
    return sheet


def top_cells(spend, n: int) -> list[dict[str, Any]]:
    """The ``n`` most expensive top-level cell executions."""
    cursor = spend.sql(
        "SELECT coalesce(notebook, '(no notebook)') AS notebook, "
        "coalesce(label, 'cell ' || cell_id, '[' || execution_count || ']', '(' || kind || ')') AS cell, "
        "\"user\", session_id, start, status, cost_usd, llm_cost_usd, gpu_cost_usd, wall_s "
        "FROM windows WHERE parent_id IS NULL AND kind <> 'between_cells' "
        "ORDER BY cost_usd DESC, start LIMIT ?", [n])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def sheet_of_top(spend, n: int) -> Sheet:
    rows = top_cells(spend, n)
    for row in rows:
        row["keys"] = {k: row[k] for k in ("notebook", "cell")}
    figures = [("user", "text"), ("start", "time"), ("status", "text"), ("cost_usd", "usd"),
               ("llm_cost_usd", "usd"), ("gpu_cost_usd", "usd"), ("wall_s", "seconds"),
               ("session_id", "text")]
    return Sheet(f"nbcost report · the {len(rows)} most expensive cells", ["notebook", "cell"],
                 figures, rows)


def _table(sheet: Sheet) -> Table:
    def figures(row: dict[str, Any]) -> list[str]:
        # A group with unpriced spend: its total is "$x + unpriced" (or "unpriced"), never a
        # bare dollar figure that reads as the whole cost.
        unpriced = bool(row.get("unpriced_cells"))
        return [_human(row.get(n), kind, unpriced and n == "cost_usd")
                for n, kind in sheet.figures]

    header = [*sheet.keys, *(LABELS.get(n, n) for n, _ in sheet.figures)]
    rows = [[str(r["keys"][k]) for k in sheet.keys] + figures(r) for r in sheet.rows]
    footer = None
    if sheet.total is not None:
        footer = ["total"] + [""] * (len(sheet.keys) - 1) + figures(sheet.total)
    return Table(sheet.title, header, rows, footer, notes=sheet.notes)


def _markdown(sheet: Sheet) -> str:
    def cells(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|").replace("\n", " ") for v in values) + " |"

    table = _table(sheet)
    align = ["---"] * len(sheet.keys) + ["---:"] * len(sheet.figures)
    lines = [f"**{sheet.title}**", "", cells(table.header), "| " + " | ".join(align) + " |"]
    lines += [cells(r) for r in table.rows]
    if table.footer:
        lines.append(cells([f"**{c}**" if c else "" for c in table.footer]))
    return "\n".join(lines + ["", *sheet.notes]).rstrip() + "\n"


def _html(sheet: Sheet) -> str:
    body = _table(sheet)._repr_html_()
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(sheet.title)}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
            "th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}"
            "th:first-child,td:first-child{text-align:left}tfoot th{border-top:2px solid #333}"
            f"</style></head><body>{body}</body></html>\n")


def _figures_for_machines(sheet: Sheet) -> list[tuple[str, str]]:
    return sheet.extra.get("all_figures") or sheet.figures


def _json(sheet: Sheet) -> str:
    figures = _figures_for_machines(sheet)

    def record(row: dict[str, Any]) -> dict[str, Any]:
        return {n: _plain(row.get(n), kind) for n, kind in figures}

    out: dict[str, Any] = {"title": sheet.title, "by": sheet.keys}
    if sheet.total is not None:
        out.update(total_usd=_plain(sheet.total.get("cost_usd"), "usd"),
                   unpriced=bool(sheet.total.get("unpriced_cells")),
                   sessions=sheet.total.get("sessions"), total=record(sheet.total))
    out["groups"] = [{"key": _key_label(r, sheet.keys),
                      "keys": {k: r["keys"][k] for k in sheet.keys}, **record(r)}
                     for r in sheet.rows]
    out["notes"] = sheet.notes
    out.update({k: v for k, v in sheet.extra.items() if k != "all_figures"})
    return json.dumps(out, indent=2, default=str) + "\n"


def _csv(sheet: Sheet) -> str:
    figures = _figures_for_machines(sheet)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*sheet.keys, *(n for n, _ in figures)])
    for row in sheet.rows:
        writer.writerow([*(row["keys"][k] for k in sheet.keys),
                         *("" if (v := _plain(row.get(n), kind)) is None else v
                           for n, kind in figures)])
    return out.getvalue()


def _parquet(sheet: Sheet, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"usd": pa.decimal128(38, 18), "count": pa.int64(), "seconds": pa.float64(),
             "share": pa.float64(), "time": pa.timestamp("us", tz="UTC"), "text": pa.string()}
    figures = _figures_for_machines(sheet)
    columns = {k: pa.array([str(r["keys"][k]) for r in sheet.rows], pa.string()) for k in sheet.keys}
    for name, kind in figures:
        values = [r.get(name) for r in sheet.rows]
        if kind == "usd":
            values = [None if v is None else Decimal(v).quantize(Decimal("1e-18")) for v in values]
        elif kind in ("seconds", "share"):
            values = [None if v is None else float(v) for v in values]
        columns[name] = pa.array(values, types[kind])
    pq.write_table(pa.table(columns), path)


def render(sheet: Sheet, fmt: str, output: Path | None = None) -> str | None:
    """The sheet in ``fmt``: returned as text, or written to ``output`` (Parquet must be)."""
    if fmt not in FORMATS:
        raise NbcostError(f"--format takes {'|'.join(FORMATS)}; got {fmt!r}")
    if fmt == "parquet":
        if output is None:
            raise NbcostError("--format parquet writes a file: add -o FILE.parquet")
        _parquet(sheet, output)
        return None
    text = {"table": lambda s: repr(_table(s)) + "\n", "csv": _csv, "json": _json,
            "markdown": _markdown, "html": _html}[fmt](sheet)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        return None
    return text

