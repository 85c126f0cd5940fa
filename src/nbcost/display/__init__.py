"""How costs reach the user's eyes: the panel under a ``%%cost`` cell and the lab extension.

Two entry points, called by the IPython layer:

* ``attach(shell, session) -> detach``: set up what runs for the whole session (the comm channel
  to the JupyterLab extension, the ticker); returns the undo.
* ``live_panel(shell, session, window, quiet) -> panel``: the panel under one ``%%cost`` cell;
  ``panel.finish(record)`` turns it into the final summary.
"""

from __future__ import annotations

from typing import Callable

from ..records import WindowInfo, WindowRecord
from .summary import RecordSummary

__all__ = ["attach", "live_panel"]


def attach(shell, session) -> Callable[[], None]:
    return lambda: None


class StaticPanel:
    """Shows nothing while the cell runs and the static summary when it ends."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def finish(self, record: WindowRecord) -> None:
        if not self.quiet:
            from IPython.display import display

            display(RecordSummary(record))


def live_panel(shell, session, window: WindowInfo, quiet: bool) -> StaticPanel:
    return StaticPanel(quiet)
