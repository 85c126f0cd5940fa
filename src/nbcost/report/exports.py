"""Exports written by :mod:`nbcost.export` (CSV, JSONL, Parquet) → staged rows.

An export is recognised by its columns (``session_id``, ``kind``, ``cost_usd`` at least); its
rows are already the export table, so they stage as they are. Parquet is typed and goes
straight through DuckDB; CSV and JSONL are text, so each row is checked like a log line and a
bad one is skipped with its line number.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..schema import COLUMNS, DECIMAL, TIMESTAMP, from_text
from .checks import Skipped, money_or_none, ts_problem
from .columns import STAGED, sql_type
from .sources import EXPORT_CSV, EXPORT_PARQUET, Input, read_bytes
from .stage import stage_rows

__all__ = ["load_exports"]

REQUIRED = ("session_id", "kind", "cost_usd")
_TYPES = {c.name: c.type for c in COLUMNS}


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    row = {}
    for name, type_ in _TYPES.items():
        value = raw.get(name)
        if value == "" or value is None:
            continue
        if type_ == DECIMAL:
            row[name] = money_or_none(value if isinstance(value, str) else json.dumps(value))
        elif type_ == TIMESTAMP and (problem := ts_problem(value)) is not None:
            raise ValueError(f"{name}: {problem}")
        else:
            try:
                row[name] = from_text(value, type_)
            except (ValueError, TypeError, ArithmeticError):
                raise ValueError(f"{name}: {json.dumps(value)[:40]} is not a {type_}") from None
    if not row.get("session_id"):
        raise ValueError("no session_id")
    return row


def _text_rows(source: Input, skipped: Skipped) -> list[dict[str, Any]]:
    data = read_bytes(source.url).decode("utf-8", errors="replace")
    if source.kind == EXPORT_CSV:
        reader = csv.DictReader(io.StringIO(data, newline=""))
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
        numbered = ((reader.line_num, raw) for raw in reader)
    else:
        missing = []
        numbered = ((n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip())
    if missing:
        skipped.read("files", 1)
        skipped.skip("files", source.url, f"not an nbcost export (no {', '.join(missing)} column)")
        return []
    skipped.read("files", 1)
    rows = []
    for number, raw in numbered:
        skipped.read("lines", 1)
        try:
            if isinstance(raw, str):
                raw = json.loads(raw)
                if not isinstance(raw, dict):
                    raise ValueError("not a JSON object")
            rows.append(_row(raw))
        except (ValueError, RecursionError) as exc:
            reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            skipped.skip("lines", f"{source.url}:{number}", reason)
    return rows


def _load_parquet(con, sources: list[Input], skipped: Skipped) -> None:
    import pyarrow.parquet as pq

    from .sources import filesystem

    good = []
    for source in sources:
        skipped.read("files", 1)
        try:
            if source.remote:
                fs, path = filesystem(source.url)
                names = pq.read_schema(path, filesystem=fs).names
            else:
                names = pq.read_schema(source.url).names
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
            skipped.skip("files", source.url, f"not a readable Parquet file ({type(exc).__name__})")
            continue
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            skipped.skip("files", source.url,
                         f"not an nbcost export (no {', '.join(missing)} column)")
            continue
        good.append((source.url, set(names)))
    for url, names in good:  # one query per file: exports of different nbcost versions differ
        select = ", ".join(
            f'CAST("{c.name}" AS {sql_type(c)})' if c.name in names else f"NULL::{sql_type(c)}"
            for c in STAGED[:-3])
        con.execute(f"INSERT INTO _staged SELECT {select}, 'export', ?, 1 FROM read_parquet(?)",
                    [url, url])
        skipped.read("lines", con.execute("SELECT count(*) FROM read_parquet(?)", [url]).fetchone()[0])


def load_exports(con, sources: list[Input], skipped: Skipped) -> None:
    _load_parquet(con, [s for s in sources if s.kind == EXPORT_PARQUET], skipped)
    for source in sources:
        if source.kind != EXPORT_PARQUET:
            rows = _text_rows(source, skipped)
            for row in rows:
                row["source_file"] = source.url
            stage_rows(con, rows, "export", 1)
