"""The live panel under a ``%%cost`` cell: an anywidget whose ES module is ``widget.js``.

While the cell runs the ticker feeds it the cell's running totals; when the cell ends it gets the
final record once, and its output is replaced by the static text/plain + text/html summary, so a
saved notebook shows the summary in every viewer (GitHub, nbconvert, a notebook reopened without
a kernel) instead of an unrenderable widget. The lines it shows are written here, by the same code
as that summary (``summary.record_lines``); the ES module only lays them out as text.
"""

from __future__ import annotations

import pathlib
import threading
from decimal import Decimal
from typing import Any

import anywidget
import traitlets

from ..records import WindowInfo, WindowRecord
from .summary import RecordSummary, budget_view, record_lines, record_title, window_budget
from .ticker import Ticker

__all__ = ["CostWidget", "LivePanel", "widget_state", "window_budget"]

_HERE = pathlib.Path(__file__).parent

_CSS = """
.nbcost-live { font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px; padding: 4px 0; }
.nbcost-live-title { font-weight: 600; margin-bottom: 2px; }
.nbcost-live[data-state='running'] .nbcost-live-title { color: var(--jp-brand-color1, #1976d2); }
.nbcost-live-table th { text-align: left; padding-right: 1em; font-weight: normal; opacity: 0.8; }
.nbcost-live-table td { text-align: left; }
.nbcost-live-budget { height: 6px; width: 240px; background: rgba(128, 128, 128, 0.25); border-radius: 3px; overflow: hidden; margin-top: 4px; }
.nbcost-live-budget-fill { height: 100%; background: #2e7d32; }
.nbcost-live-budget-fill[data-level='near'] { background: #ef6c00; }
.nbcost-live-budget-fill[data-level='over'] { background: #c62828; }
.nbcost-live-budget-text[data-level='over'] { color: #c62828; font-weight: 600; }
"""


class CostWidget(anywidget.AnyWidget):
    """Elapsed time, GPU waste, LLM calls and tokens by model, dollars and budget of one window."""

    _esm = _HERE / "widget.js"
    _css = _CSS

    #: The window's compact record (``Session.live_totals`` while running, then the final one).
    record = traitlets.Dict().tag(sync=True)
    running = traitlets.Bool(True).tag(sync=True)
    #: What the panel shows, written by ``summary``: its title and (label, value) lines.
    title = traitlets.Unicode("").tag(sync=True)
    lines = traitlets.List().tag(sync=True)
    #: ``budget_view``: the true share's text, the bar's fill (0–1) and level; None without one.
    budget = traitlets.Dict(None, allow_none=True).tag(sync=True)


class LivePanel:
    """One ``%%cost`` cell's widget, fed by the ticker; ``finish(record)`` makes it final.

    ``budget`` (``Budget.to_json()`` shape) is the budget the cell runs under, for records that
    do not carry their own ``budget``.
    """

    def __init__(self, session: Any, window: WindowInfo, ticker: Ticker,
                 budget: dict[str, Any] | None) -> None:
        from IPython.display import display

        self.session = session
        self.window = window
        self.ticker = ticker
        self.budget = budget
        self._lock = threading.Lock()  # one writer of the widget's traits at a time
        self._done = False
        self.widget = CostWidget(**self._state(session.live_totals(window.id), running=True))
        self._handle = display(self._bundle(running=True), raw=True, display_id=True)
        ticker.watch(window.id, self._update)

    def _state(self, record: dict[str, Any], running: bool) -> dict[str, Any]:
        budget = record.get("budget") or self.budget
        spent = self._session_spent() if budget and budget.get("scope") == "session" else None
        return widget_state(record, running, budget, spent)

    def _session_spent(self) -> Decimal | None:
        try:
            return self.session.total_usd
        except Exception:  # noqa: BLE001 - the bar falls back to this cell's own share
            return None

    def _bundle(self, running: bool, record: WindowRecord | None = None) -> dict:
        if record is not None:
            summary = RecordSummary(record, budget=self.budget)
            return {"text/plain": repr(summary), "text/html": summary._repr_html_()}
        data, _ = self.widget._repr_mimebundle_()
        return {**data, "text/plain": "nbcost: cell running…"}

    def _update(self, window_id: str, live: dict) -> None:
        """Ticker thread: show the running totals."""
        state = self._state(live, running=True)
        with self._lock:
            if not self._done:
                with self.widget.hold_sync():
                    self.widget.set_trait("record", state.pop("record"))
                    for name, value in state.items():
                        self.widget.set_trait(name, value)

    def finish(self, record: WindowRecord) -> None:
        """The cell ended: show its final record, then leave the static summary in the output."""
        self.ticker.unwatch(self.window.id, self._update)
        state = self._state(record.compact(), running=False)
        with self._lock:
            self._done = True
            with self.widget.hold_sync():
                for name, value in state.items():
                    self.widget.set_trait(name, value)
        if self._handle is not None:
            self._handle.update(self._bundle(running=False, record=record), raw=True)
        self.widget.close()


def widget_state(record: dict[str, Any], running: bool, budget: dict[str, Any] | None = None,
                 session_spent_usd: Decimal | None = None) -> dict[str, Any]:
    """Every trait the front end draws, from one compact record (``budget`` defaults to the
    record's own; ``session_spent_usd`` is what a session budget measures)."""
    budget = budget or record.get("budget")
    lines = record_lines(record, budget, session_spent_usd, with_budget=False)
    return {"record": record, "running": running, "title": record_title(record, running),
            "lines": [list(line) for line in lines],
            "budget": budget_view(record, budget, session_spent_usd) if budget else None}
