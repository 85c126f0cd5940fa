"""The staging table every source writes to, and Python rows → staged rows.

Each reader (logs, exports, notebooks) adds its rows to ``_staged`` with the export table's
columns plus where they came from; :mod:`nbcost.report.engine` then keeps one row per window.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Iterable, Mapping

from ..schema import DECIMAL, typed
from .columns import STAGED, sql_type

__all__ = ["create_staged", "insert_arrow", "stage_rows", "to_staged_arrow"]

_PLACES = Decimal(10) ** -18


def create_staged(con) -> None:
    columns = ", ".join(f'"{c.name}" {sql_type(c)}' for c in STAGED)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _staged ({columns})")


def _value(value: Any, type_: str) -> Any:
    if value is None:
        return None
    if type_ == DECIMAL:
        return Decimal(value).quantize(_PLACES)
    value = typed(value, type_)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def to_staged_arrow(rows: Iterable[Mapping[str, Any]], source: str, rank: int):
    import pyarrow as pa

    rows = list(rows)
    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
             "DECIMAL(38,18)": pa.decimal128(38, 18), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
             "BOOLEAN": pa.bool_()}
    extra = {"source": source, "source_rank": rank}
    arrays = [pa.array([_value(extra.get(c.name, row.get(c.name)), c.type) for row in rows],
                       type=types[sql_type(c)]) for c in STAGED]
    return pa.Table.from_arrays(arrays, names=[c.name for c in STAGED])


def stage_rows(con, rows: list[Mapping[str, Any]], source: str, rank: int) -> None:
    if not rows:
        return
    insert_arrow(con, "_staged", to_staged_arrow(rows, source, rank))


def insert_arrow(con, target: str, table, create: bool = False) -> None:
    """``INSERT INTO target`` (or ``CREATE TABLE target AS``) the rows of an Arrow table."""
    con.register("_arrow_rows", table)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM _arrow_rows" if create
                    else f"INSERT INTO {target} SELECT * FROM _arrow_rows")
    finally:
        con.unregister("_arrow_rows")
