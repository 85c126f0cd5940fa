"""The IPython layer: ``%load_ext nbcost`` records every cell and adds ``%cost``/``%%cost``.

This module knows IPython and nothing of NVML or SDK internals: meters do the measuring.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from typing import Callable

import IPython

from . import api, display
from .config import NbCost, load_settings
from .records import WindowRecord
from .session import Session

__all__ = ["CostExtension", "extension_for", "load", "unload"]

_extensions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# IPython 9.8 moved the execution counter's increment from the end of a cell to before
# pre_run_cell; the running cell's number is one less there from then on.
_COUNTER_ADVANCED_BEFORE_PRE_RUN = IPython.version_info >= (9, 8)


class CostExtension:
    """One loaded nbcost: the session, the cell hooks, the magics and the display channel."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.session = Session(load_settings(NbCost(parent=shell)))
        self.cell_window_id: str | None = None
        self._detach_display: Callable[[], None] = lambda: None

    def start(self) -> None:
        from .magics import CostMagics

        api.set_session(self.session)
        self.shell.register_magics(CostMagics(self.shell, extension=self))
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self._detach_display = self.session.run_safely(
            "the display channel", lambda: display.attach(self.shell, self.session)
        ) or (lambda: None)
        atexit.register(self.session.close)

    def stop(self) -> None:
        for name, callback in (("pre_run_cell", self.pre_run_cell),
                               ("post_run_cell", self.post_run_cell)):
            try:
                self.shell.events.unregister(name, callback)
            except ValueError:
                pass
        _unregister_magics(self.shell)
        self._detach_display()
        atexit.unregister(self.session.close)
        self.session.close()
        api.set_session(None)

    # -- cell hooks ---------------------------------------------------------------------------

    def pre_run_cell(self, info) -> None:
        if info.silent or not self.session.enabled:
            return
        self.cell_window_id = self.session.open_window(
            "cell",
            cell_id=getattr(info, "cell_id", None),
            execution_count=self.running_count(info.store_history),
        ).id

    def running_count(self, store_history: bool) -> int:
        """The execution count of the cell running now."""
        advanced = _COUNTER_ADVANCED_BEFORE_PRE_RUN and store_history
        return self.shell.execution_count - 1 if advanced else self.shell.execution_count

    def post_run_cell(self, result) -> None:
        window_id, self.cell_window_id = self.cell_window_id, None
        if window_id is not None and self.session.is_open(window_id):
            self.session.close_window(window_id, "ok" if result.success else "error")

    def close_cell_window(self, status: str) -> WindowRecord | None:
        """End the running cell's window now (``%%cost`` does, to show its exact record)."""
        window_id, self.cell_window_id = self.cell_window_id, None
        if window_id is None or not self.session.is_open(window_id):
            return None
        return self.session.close_window(window_id, status)



def _unregister_magics(shell) -> None:
    magics = shell.magics_manager.magics
    magics["line"].pop("cost", None)
    magics["cell"].pop("cost", None)
    shell.magics_manager.registry.pop("CostMagics", None)


def extension_for(shell) -> CostExtension | None:
    return _extensions.get(shell)


def load(shell) -> None:
    if shell in _extensions:
        print("nbcost is already loaded; `%unload_ext nbcost` first to start over.", file=sys.stderr)
        return
    extension = CostExtension(shell)
    _extensions[shell] = extension
    extension.start()


def unload(shell) -> None:
    extension = _extensions.pop(shell, None)
    if extension is not None:
        extension.stop()
