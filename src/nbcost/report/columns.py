"""The columns of the engine's ``windows`` table: the export table's declared columns
(:mod:`nbcost.schema`), the GPU waste in dollars, and where each row came from."""

from __future__ import annotations

from ..quantities import QUANTITIES
from ..schema import BOOL, COLUMNS, DECIMAL, FLOAT, INT, STRING, TIMESTAMP, Column

__all__ = ["MONEY", "ROW_COLUMNS", "SQL_TYPES", "STAGED", "WASTE_KINDS", "sql_type"]

MONEY = "DECIMAL(38,18)"
SQL_TYPES = {STRING: "VARCHAR", INT: "BIGINT", FLOAT: "DOUBLE", DECIMAL: MONEY,
             TIMESTAMP: "TIMESTAMPTZ", BOOL: "BOOLEAN"}
WASTE_KINDS = ("idle_between", "stall", "underfill")
#: The three named GPU wastes in dollars, beside their seconds (``gpu_<kind>_s``).
WASTE_USD = tuple(Column(f"gpu_{kind}_usd", DECIMAL) for kind in WASTE_KINDS)
#: A ``windows`` row: the export table's columns, then the waste dollars and the GPUs' names.
ROW_COLUMNS: tuple[Column, ...] = (*COLUMNS, *WASTE_USD, Column("gpu_devices", STRING))
#: Staged rows also say where they came from; the best source of a window wins.
STAGED: tuple[Column, ...] = (*ROW_COLUMNS, Column("source", STRING),
                              Column("source_file", STRING), Column("source_rank", INT))
#: Quantities that do not add up over windows (peaks, averages, counts of devices).
NOT_ADDITIVE = ("mem_peak_bytes", "power_avg_w", "gpus")


def sql_type(column: Column) -> str:
    return SQL_TYPES[column.type]


def quantity_columns(meter: str) -> list[Column]:
    """The declared ``<meter>_<quantity>`` columns of one meter."""
    return [c for c in COLUMNS if c.name.startswith(f"{meter}_") and c.name[len(meter) + 1:]
            in {q.key for q in QUANTITIES.get(meter, ())}]
