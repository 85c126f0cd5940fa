"""Spend reports: the DuckDB engine over logs, exports and notebooks, and its renderers.

:func:`load_spend` (:mod:`nbcost.report.engine`; its docstring and docs/report.md describe the
tables) is the API to build on; ``nbcost report`` (:mod:`nbcost.report.command`) groups it with
:func:`nbcost.report.query.build` and renders it with :mod:`nbcost.report.render`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .engine import Filters, Spend, load_spend, parse_time, spend_of_rows
from .lines import COLUMNS, Group
from .query import DIMENSIONS, Figures, Report, build

__all__ = ["COLUMNS", "DIMENSIONS", "Figures", "Filters", "Group", "Report", "Spend", "build",
           "build_report", "load_spend", "parse_time", "spend_of_rows"]


def build_report(rows: Iterable[Mapping[str, Any]], by: Sequence[str] | str = "notebook",
                 **options: Any) -> Report:
    """The report of rows already in memory (a session's :func:`nbcost.rows.rows_from_events`)."""
    with spend_of_rows(rows) as spend:
        return build(spend, by, **options)
