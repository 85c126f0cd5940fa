"""The export table's declared schema: every column's name and type, in one place.

Every writer (CSV, JSONL, Parquet, the DataFrame) and reader uses it, so an export from a
machine without a GPU, or from a session without LLM calls, has the same columns with the same
types as any other and they concatenate without casts. The meter columns come from
:mod:`nbcost.quantities`; ``docs/schema.md`` says what each column means.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping

from .ledger import iso_utc
from .quantities import QUANTITIES

__all__ = ["COLUMNS", "Column", "arrow_schema", "column_array", "columns_for", "from_text",
           "to_plain", "typed"]

# The column types, named for what they hold.
STRING, INT, FLOAT, DECIMAL = "string", "int", "float", "decimal"
TIMESTAMP, BOOL = "timestamp", "bool"
MONEY_PLACES = 12  # decimal128(38, 12): a single cached token can cost $1e-8
_INT_UNITS = {"count", "tokens", "bytes"}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str


def _meter_columns() -> list[Column]:
    columns = []
    for meter, quantities in QUANTITIES.items():
        columns += [Column(f"{meter}_{q.key}", INT if q.unit in _INT_UNITS else FLOAT)
                    for q in quantities]
        columns.append(Column(f"{meter}_cost_usd", DECIMAL))
    return columns


BASE_COLUMNS = (
    *(Column(name, STRING) for name in ("session_id", "window_id", "parent_id", "kind",
                                        "notebook_path", "notebook_id", "cell_id")),
    Column("execution_count", INT),
    *(Column(name, STRING) for name in ("label", "tags", "user", "team", "project")),
    Column("start", TIMESTAMP), Column("end", TIMESTAMP), Column("wall_s", FLOAT),
    Column("status", STRING), Column("cost_usd", DECIMAL), Column("unpriced", BOOL),
    Column("flags", STRING),
)
#: Every declared column in its fixed order: base, each meter's quantities and cost, models.
COLUMNS: tuple[Column, ...] = (*BASE_COLUMNS, *_meter_columns(), Column("llm_models", STRING))
_DECLARED = {c.name: c for c in COLUMNS}


def _undeclared(name: str, values: Iterable[Any]) -> Column:
    """A column another meter added: money by its name, numbers as float, else text."""
    if name.endswith("_cost_usd"):
        return Column(name, DECIMAL)
    values = [v for v in values if v is not None]
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return Column(name, FLOAT)
    return Column(name, STRING)


def columns_for(rows: Iterable[Mapping[str, Any]]) -> list[Column]:
    """The declared columns, then any other meter's columns in the order first seen."""
    rows = list(rows)
    extra: dict[str, None] = {}
    for row in rows:
        extra.update((key, None) for key in row if key not in _DECLARED)
    return [*COLUMNS, *(_undeclared(name, (r.get(name) for r in rows)) for name in extra)]


def typed(value: Any, type_: str) -> Any:
    """``value`` as the Python type of its column (``None`` stays ``None``)."""
    if value is None:
        return None
    if type_ == INT:
        return int(value)
    if type_ == FLOAT:
        return float(value)
    if type_ == DECIMAL:
        return Decimal(value).quantize(Decimal(10) ** -MONEY_PLACES)
    if type_ == BOOL:
        return bool(value)
    if type_ == TIMESTAMP:
        return value if isinstance(value, dt.datetime) else _parse_ts(value)
    return str(value)


#: The Python types Arrow takes as they are for a column type (what ``typed`` leaves alone).
_NATIVE = {STRING: {str}, INT: {int}, FLOAT: {float}, BOOL: {bool}, TIMESTAMP: {dt.datetime},
           DECIMAL: set()}


def column_array(values: list[Any], type_: str, arrow_type):
    """A column's values as an Arrow array of ``arrow_type``: ``typed`` each value, skipped
    where every value already is its column's type (a long table's columns mostly are)."""
    import pyarrow as pa

    kinds = set(map(type, values))
    kinds.discard(type(None))
    if not kinds:
        return pa.nulls(len(values), arrow_type)
    if kinds <= _NATIVE[type_]:
        return pa.array(values, type=arrow_type)
    return pa.array([typed(v, type_) for v in values], type=arrow_type)


def to_plain(value: Any, type_: str) -> Any:
    """``value`` as JSON writes it: money a decimal string, timestamps ISO 8601 UTC with ``Z``."""
    value = typed(value, type_)
    if value is None:
        return None
    if type_ == DECIMAL:
        return format(value.normalize(), "f") if value else "0"
    if type_ == TIMESTAMP:
        return iso_utc(value)
    return value


def from_text(text: Any, type_: str) -> Any:
    """A CSV cell (or JSON value) back as its column's Python type; empty is ``None``."""
    if text is None or text == "":
        return None
    if type_ == BOOL and isinstance(text, str):
        return text.lower() == "true"
    if type_ == INT and isinstance(text, str):
        return int(float(text)) if "." in text or "e" in text.lower() else int(text)
    if type_ == STRING and not isinstance(text, str):
        return json.dumps(text) if isinstance(text, (dict, list)) else str(text)
    return typed(text, type_)


def _parse_ts(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def arrow_schema(columns: Iterable[Column]):
    """The columns as a pyarrow schema: decimal money, UTC timestamps, int64 counts."""
    import pyarrow as pa

    types = {STRING: pa.string(), INT: pa.int64(), FLOAT: pa.float64(),
             DECIMAL: pa.decimal128(38, MONEY_PLACES), TIMESTAMP: pa.timestamp("us", tz="UTC"),
             BOOL: pa.bool_()}
    return pa.schema([pa.field(c.name, types[c.type]) for c in columns])
