"""nbcost's exceptions::

    NbcostError
    ├── ConfigError       bad settings or arguments; the message says what to change
    ├── LedgerError       a spend log that cannot be read or written
    └── BudgetExceeded    a hard budget refused an LLM call before it was sent
"""

from __future__ import annotations

import traceback
from decimal import Decimal
from types import TracebackType

__all__ = ["BudgetExceeded", "ConfigError", "LedgerError", "NbcostError"]


class NbcostError(Exception):
    """Base class of every error nbcost raises on purpose."""


class ConfigError(NbcostError, ValueError):
    """A setting or argument nbcost cannot use."""


class LedgerError(NbcostError):
    """A spend log that cannot be read or written."""


class BudgetExceeded(NbcostError):
    """A hard budget is spent: the LLM call was refused before any request was sent.

    ``scope`` is "cell" (``%%cost --budget USD --hard``) or "session" (``%cost budget USD
    --hard``); the message names it, the amounts, and the command that changes it. In IPython
    the traceback shows the user's frames only, not nbcost's.
    """

    def __init__(self, spent_usd: Decimal, budget_usd: Decimal, scope: str = "session") -> None:
        from .display.format import format_usd  # lazily: display imports this module's users

        self.spent_usd = spent_usd
        self.budget_usd = budget_usd
        self.scope = scope
        if scope == "session":
            change = ("raise it with `%cost budget USD --hard`, make it soft with "
                      "`%cost budget USD`, or lift it with `%cost budget off`")
        else:
            change = "raise the cell's `%%cost --budget USD`, or drop `--hard` to be warned instead"
        super().__init__(
            f"the {scope} budget of {format_usd(budget_usd)} is spent "
            f"({format_usd(spent_usd)} so far), so nbcost did not send this call; {change}."
        )

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: the traceback without nbcost's frames (they set __tracebackhide__)."""
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:  # only IPython calls this hook; be plain if called elsewhere
            return traceback.format_exception(type(self), self, self.__traceback__)
        return shell.InteractiveTB.structured_traceback(
            type(self), self, _without_hidden_frames(self.__traceback__))


def _without_hidden_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback chain minus frames that set ``__tracebackhide__`` (IPython's convention,
    which IPython itself applies to every frame but the last)."""
    kept = []
    while tb is not None:
        if not tb.tb_frame.f_locals.get("__tracebackhide__"):
            kept.append(tb)
        tb = tb.tb_next
    chain = None
    for entry in reversed(kept):
        chain = TracebackType(chain, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return chain
