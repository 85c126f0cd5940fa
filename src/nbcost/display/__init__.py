"""How costs reach the user's eyes: the panel under a ``%%cost`` cell and the lab extension.

Two entry points, called by the IPython layer:

* ``attach(shell, session) -> detach``: set up what runs for the whole session (the ticker, and
  in a Jupyter kernel the ``nbcost`` comm to the JupyterLab extension); returns the undo.
* ``live_panel(shell, session, window, quiet) -> panel``: the panel under one ``%%cost`` cell;
  ``panel.finish(record)`` turns it into the final summary. In a Jupyter kernel that is a live
  widget; in terminal IPython (no widgets) the static summary at the end.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

from ..records import WindowInfo, WindowRecord
from .summary import RecordSummary, window_budget
from .ticker import Ticker

__all__ = ["attach", "live_panel"]

#: The ticker of each attached session (weak: a closed session takes its ticker with it).
_tickers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _in_kernel(shell) -> bool:
    """True inside a Jupyter kernel (ipykernel), where comms and widgets exist."""
    return getattr(shell, "kernel", None) is not None


def attach(shell, session) -> Callable[[], None]:
    """Start the ticker and, in a kernel, the comm channel; return the undo."""
    ticker = Ticker(session)
    _tickers[session] = ticker
    channel = None
    if _in_kernel(shell):
        from .comm import CommChannel

        channel = CommChannel(session, ticker)
        try:
            channel.open()
        except Exception as exc:  # noqa: BLE001 - no comm support: the widget still works
            channel.close()
            channel = None
            session.warn_once("comm", f"nbcost: no live link to JupyterLab ({exc}); "
                                      f"the panel under %%cost cells still works.")

    def detach() -> None:
        if channel is not None:
            channel.close()
        ticker.stop()
        _tickers.pop(session, None)

    return detach


class StaticPanel:
    """Shows nothing while the cell runs and the static summary when it ends.

    ``budget`` is the one the cell runs under, for a record that does not carry it.
    """

    def __init__(self, quiet: bool, budget: dict | None = None) -> None:
        self.quiet = quiet
        self.budget = budget

    def finish(self, record: WindowRecord) -> None:
        if not self.quiet:
            from IPython.display import display

            display(RecordSummary(record, budget=self.budget))


def live_panel(shell, session, window: WindowInfo, quiet: bool) -> Any:
    """The panel for one ``%%cost`` cell: live where widgets render, static otherwise."""
    ticker = _tickers.get(session)
    budget = None if quiet else window_budget(session, window)
    if quiet or ticker is None or not _in_kernel(shell) or not session.settings.live:
        return StaticPanel(quiet, budget)
    from .widget import LivePanel

    return LivePanel(session, window, ticker, budget)
