"""nbcost's exceptions::

    NbcostError
    ├── ConfigError       bad settings or arguments; the message says what to change
    ├── LedgerError       a spend log that cannot be read or written
    └── BudgetExceeded    a hard budget refused an LLM call before it was sent
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ["BudgetExceeded", "ConfigError", "LedgerError", "NbcostError"]


class NbcostError(Exception):
    """Base class of every error nbcost raises on purpose."""


class ConfigError(NbcostError, ValueError):
    """A setting or argument nbcost cannot use."""


class LedgerError(NbcostError):
    """A spend log that cannot be read or written."""


class BudgetExceeded(NbcostError):
    """A hard budget is spent: the LLM call was refused before any request was sent."""

    def __init__(self, spent_usd: Decimal, budget_usd: Decimal, scope: str = "session") -> None:
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd
        self.scope = scope
        super().__init__(
            f"nbcost: the {scope} budget of ${budget_usd} is spent (${spent_usd:.4f} so far); "
            f"the call was not sent. Raise it with `%cost budget USD --hard` or drop --hard."
        )
