"""Spend reports: the DuckDB engine over logs, exports and notebooks, and its renderers.

:func:`load_spend` (:mod:`nbcost.report.engine`) is the API to build on; ``nbcost report`` is
:func:`build` over it, rendered by :mod:`nbcost.report.render`.
"""

from __future__ import annotations

from .engine import Filters, Spend, load_spend, parse_time
from .lines import COLUMNS, Group

__all__ = ["COLUMNS", "Filters", "Group", "Spend", "load_spend", "parse_time"]
