"""Budgets: a warning the moment spend crosses 80 % and 100 %, a refusal before a hard one is
overspent.

Two scopes. A window's own budget (``%%cost --budget USD [--hard]``, scope "cell") and the
session's (``%cost budget USD [--hard]``, scope "session"); a window without its own runs under
the session's. The Session calls :meth:`Budgets.check` wherever it learns the running cost
(after each LLM call, on each live tick, on each GPU checkpoint, when a window ends), so a
warning and its ``budget`` event come within one call or one tick of the crossing, with the true
share: "cell budget $0.0010: 4,000 % spent, $0.0390 over".
"""

from __future__ import annotations

import sys
import threading
from decimal import Decimal
from typing import Any, Callable, Mapping

from .display.format import format_percent, format_usd
from .errors import BudgetExceeded
from .records import Budget, money

__all__ = ["THRESHOLDS", "Budgets"]

#: Shares of a budget at which a soft warning is given, once each.
THRESHOLDS = (Decimal("0.8"), Decimal("1"))

#: ``emit(event, fields)``: how a budget event reaches the spend log (``Session.log``).
Emit = Callable[[str, Mapping[str, Any]], None]


class Budgets:
    """The session's and each open window's budget, and the thresholds already warned about."""

    def __init__(self, settings: Any, emit: Emit) -> None:
        self._settings = settings  # `%cost budget` changes settings.budget_usd / budget_hard
        self._emit = emit
        self._lock = threading.Lock()
        self._windows: dict[str, Budget] = {}
        self._warned: dict[str, set[Decimal]] = {}  # "session" or a window id -> thresholds

    # -- what applies ---------------------------------------------------------------------

    @property
    def session(self) -> Budget | None:
        usd = self._settings.budget_usd
        return None if usd is None else Budget(usd, bool(self._settings.budget_hard), "session")

    def set_window(self, window_id: str, usd: Decimal, hard: bool) -> None:
        with self._lock:
            self._windows[window_id] = Budget(usd, hard, "cell")
            self._warned.pop(window_id, None)

    def forget_window(self, window_id: str) -> None:
        if window_id not in self._windows and window_id not in self._warned:
            return  # (most windows have no budget: no lock taken for them)
        with self._lock:
            self._windows.pop(window_id, None)
            self._warned.pop(window_id, None)

    def of_window(self, window_id: str) -> Budget | None:
        """The budget a window runs under: its own, else the session's."""
        own = self._windows.get(window_id)  # a dict read: atomic under the GIL
        return own or self.session

    def own(self, window_id: str) -> Budget | None:
        with self._lock:
            return self._windows.get(window_id)

    def session_changed(self) -> None:
        """``%cost budget``: a new session budget gets its own warnings."""
        with self._lock:
            self._warned.pop("session", None)

    @property
    def any(self) -> bool:
        """Whether any budget applies now (without it, no spend needs pricing or checking)."""
        return bool(self._windows) or self._settings.budget_usd is not None

    @property
    def any_hard(self) -> bool:
        """Whether a hard budget applies now: without one, nothing is ever refused."""
        if self._settings.budget_usd is not None and self._settings.budget_hard:
            return True
        return bool(self._windows) and any(budget.hard for budget in list(self._windows.values()))

    def session_pending(self) -> bool:
        """Whether a session budget still has a threshold to warn about (worth pricing for)."""
        budget = self.session
        with self._lock:
            return budget is not None and len(self._warned.get("session", ())) < len(THRESHOLDS)

    def window_pending(self, window_id: str) -> bool:
        with self._lock:
            return (window_id in self._windows
                    and len(self._warned.get(window_id, ())) < len(THRESHOLDS))

    def windows_pending(self) -> list[str]:
        with self._lock:
            return [w for w in self._windows if len(self._warned.get(w, ())) < len(THRESHOLDS)]

    # -- soft: warn at the crossing -------------------------------------------------------

    def check(self, key: str, spent: Decimal, where: Mapping[str, Any]) -> None:
        """Warn once per threshold that ``spent`` has crossed; ``key`` is "session" or a window
        id with its own budget. Crossing both at once gives one warning, at the higher."""
        budget = self.session if key == "session" else self.own(key)
        if budget is None or budget.usd <= 0:
            return
        with self._lock:
            warned = self._warned.setdefault(key, set())
            crossed = [t for t in THRESHOLDS if spent >= budget.usd * t and t not in warned]
            warned.update(crossed)
        if crossed:
            self._warn(budget, spent, max(crossed), where)

    def _warn(self, budget: Budget, spent: Decimal, threshold: Decimal,
              where: Mapping[str, Any]) -> None:
        self._emit("budget", {**where, "action": "warning", "scope": budget.scope,
                              "threshold": money(threshold), "budget_usd": money(budget.usd),
                              "spent_usd": money(spent), "hard": budget.hard})
        print(f"nbcost: {describe(budget, spent)}.", file=sys.stderr, flush=True)

    # -- hard: refuse before the call -----------------------------------------------------

    def refuse_if_spent(self, meter: str, open_windows: list[str],
                        session_spent: Callable[[], Decimal],
                        window_spent: Callable[[str], Decimal],
                        where: Mapping[str, Any]) -> None:
        """Raise :class:`BudgetExceeded` (and log the refusal) when a hard budget that applies
        now is used up. Nothing is priced unless a hard budget exists."""
        __tracebackhide__ = True  # IPython shows the user's frames, not nbcost's
        scopes: list[tuple[Budget, Callable[[], Decimal]]] = []
        session = self.session
        if session is not None and session.hard:
            scopes.append((session, session_spent))
        with self._lock:
            scopes += [(self._windows[w], lambda w=w: window_spent(w))
                       for w in open_windows if w in self._windows and self._windows[w].hard]
        for budget, spent in scopes:
            used = spent()
            if used >= budget.usd:
                self._emit("budget", {**where, "action": "refused", "meter": meter,
                                      "scope": budget.scope, "budget_usd": money(budget.usd),
                                      "spent_usd": money(used)})
                raise BudgetExceeded(used, budget.usd, budget.scope)


def describe(budget: Budget, spent: Decimal) -> str:
    """``cell budget $0.0010: 4,000 % spent, $0.0390 over`` (or ``80 % spent``)."""
    share = format_percent(spent, budget.usd)
    text = f"{budget.scope} budget {format_usd(budget.usd)}: {share} spent"
    if spent > budget.usd:
        text += f", {format_usd(spent - budget.usd)} over"
    return text
