"""One line of figures summed from in-memory rows: ``nbcost run``'s per-cell table.

The spend report itself runs on DuckDB (:mod:`nbcost.report.engine`); this small class sums the
handful of rows one notebook run produced, without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from ..display.summary import format_seconds, format_usd

__all__ = ["COLUMNS", "Group"]

COLUMNS = ("cells", "wall", "GPU held", "LLM calls", "tokens", "cost")
ZERO = Decimal(0)


@dataclass
class Group:
    key: str
    cost_usd: Decimal = ZERO
    unpriced: bool = False
    windows: int = 0
    wall_s: float = 0.0
    gpu_held_s: float = 0.0
    llm_calls: int = 0
    llm_tokens: int = 0
    has_gpu: bool = False  # any row measured a GPU / saw the LLM meter: else show "-"
    has_llm: bool = False

    def add(self, row: Mapping[str, Any]) -> None:
        self.has_gpu |= row.get("gpu_held_s") is not None
        self.has_llm |= row.get("llm_calls") is not None
        self.cost_usd += row.get("cost_usd") or ZERO
        self.unpriced |= bool(row.get("unpriced"))
        if row.get("kind") != "between_cells":
            self.windows += 1
            self.wall_s += row.get("wall_s") or 0.0
        self.gpu_held_s += row.get("gpu_held_s") or 0.0
        self.llm_calls += int(row.get("llm_calls") or 0)
        self.llm_tokens += int((row.get("llm_input_tokens") or 0) + (row.get("llm_output_tokens") or 0))

    def cells(self, count: bool = True) -> list[str]:
        """This line in a table under :data:`COLUMNS` (without "cells": ``count=False``)."""
        return [self.key, *([str(self.windows)] if count else []), format_seconds(self.wall_s),
                format_seconds(self.gpu_held_s) if self.has_gpu else "-",
                str(self.llm_calls) if self.has_llm else "-",
                f"{self.llm_tokens:,}" if self.has_llm else "-",
                format_usd(self.cost_usd, self.unpriced)]
