"""Writers for the flat spend table: CSV, JSONL and Parquet (and a pandas DataFrame).

The table comes from :mod:`nbcost.rows`; money stays Decimal all the way (decimal strings in CSV
and JSONL, ``decimal128`` in Parquet) and timestamps are UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ConfigError
from .ledger import iso_utc, read_log
from .rows import MONEY_COLUMNS, TIME_COLUMNS, columns_for, rows_from_events

__all__ = ["FORMATS", "export_rows", "export_session", "session_dataframe", "to_arrow"]

FORMATS = ("csv", "jsonl", "parquet")
MONEY_TYPE = ("decimal128", 38, 12)  # 12 places: a single cached token can cost $1e-8
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
               ".pq": "parquet"}


def _is_money(column: str) -> bool:
    return column in MONEY_COLUMNS or column.endswith("_cost_usd")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    return value


def write_csv(rows: list[Mapping[str, Any]], path: Path) -> None:
    columns = columns_for(rows)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _plain(row.get(c)) for c in columns])


def write_jsonl(rows: list[Mapping[str, Any]], path: Path) -> None:
    columns = columns_for(rows)
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({c: _plain(row.get(c)) for c in columns}) + "\n")


def to_arrow(rows: list[Mapping[str, Any]]):
    """The table as a typed Arrow table: decimal money, UTC timestamps."""
    import pyarrow as pa

    fields, arrays = [], []
    for column in columns_for(rows):
        values = [row.get(column) for row in rows]
        if _is_money(column):
            type_ = pa.decimal128(MONEY_TYPE[1], MONEY_TYPE[2])
            values = [None if v is None else Decimal(v).quantize(Decimal(10) ** -MONEY_TYPE[2])
                      for v in values]
        elif column in TIME_COLUMNS:
            type_ = pa.timestamp("us", tz="UTC")
        elif column in ("unpriced",):
            type_ = pa.bool_()
        elif column in ("execution_count",) or column.endswith(("_calls", "_tokens", "_bytes",
                                                                 "_errors", "_gpus")):
            type_ = pa.int64()
            values = [None if v is None else int(v) for v in values]
        elif all(v is None or isinstance(v, (int, float)) for v in values) and any(
                isinstance(v, (int, float)) for v in values):
            type_ = pa.float64()
        else:
            type_ = pa.string()
            values = [None if v is None else str(v) for v in values]
        fields.append(pa.field(column, type_))
        arrays.append(pa.array(values, type=type_))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_parquet(rows: list[Mapping[str, Any]], path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(to_arrow(rows), path)


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}


def export_rows(rows: list[Mapping[str, Any]], path: Path, fmt: str | None = None) -> Path:
    """Write ``rows`` to ``path`` in ``fmt`` (default: from the file's extension)."""
    fmt = fmt or _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot tell the format of {path.name!r}; add --format "
                          f"({'|'.join(FORMATS)}) or use a .csv, .jsonl or .parquet name")
    if fmt not in WRITERS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if path.parent and not path.parent.exists():
        raise ConfigError(f"the folder {path.parent} does not exist")
    WRITERS[fmt](list(rows), path)
    return path


def session_rows(session) -> list[dict[str, Any]]:
    session.flush()
    return rows_from_events(read_log(session.ledger_path).events)


def export_session(session, path: Path, fmt: str | None = None) -> tuple[Path, int]:
    rows = session_rows(session)
    return export_rows(rows, path, fmt), len(rows)


def session_dataframe(session):
    """The session's flat table as a pandas DataFrame (Decimal money, UTC timestamps)."""
    return dataframe(session_rows(session))


def dataframe(rows: Iterable[Mapping[str, Any]]):
    table = to_arrow(list(rows))
    return table.to_pandas()
