"""The IPython layer: ``%load_ext nbcost`` records every cell and adds ``%cost``/``%%cost``.

This module knows IPython and nothing of NVML or SDK internals: meters do the measuring.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from typing import TYPE_CHECKING, Any, Callable

import IPython

from . import api, display
from .config import config_from, load_settings
from .session import Session

if TYPE_CHECKING:
    from .magics import CellOptions

__all__ = ["CostExtension", "extension_for", "load", "unload"]

_extensions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# IPython 9.8 moved the execution counter's increment from the end of a cell to before
# pre_run_cell; the running cell's number is one less there from then on.
_COUNTER_ADVANCED_BEFORE_PRE_RUN = IPython.version_info >= (9, 8)


class CostExtension:
    """One loaded nbcost: the session, the cell hooks, the magics and the display channel.

    Every recorded cell is a window opened in ``pre_run_cell`` and closed in ``post_run_cell``.
    ``%%cost`` (either path, see :mod:`nbcost.magics`) only annotates that window through
    :meth:`cost_cell`; the summary comes when the cell ends, after its output.
    """

    def __init__(self, shell) -> None:
        self.shell = shell
        # A bad setting is one line that says what to do, and is ignored: never a traceback.
        problems: list[str] = []
        settings = load_settings(config_from(getattr(shell, "config", None), problems),
                                 problems=problems)
        for problem in problems:
            print(f"nbcost: {problem}", file=sys.stderr, flush=True)
        self.session = Session(settings)
        self.cell_window_id: str | None = None
        self._cell_id: str | None = None
        self._depth = 0  # run_cells under way (%%capture runs one inside); silent ones don't count
        self._panel: Any = None
        self._ends_at_post_execute = False  # post_execute registered: see cost_cell
        self._detach_display: Callable[[], None] = lambda: None
        self._detach_otel: Callable[[], None] = lambda: None

    def start(self) -> None:
        from .magics import CostMagics, cost_cell_header

        api.set_session(self.session)
        self.shell.register_magics(CostMagics(self.shell, extension=self))
        self.shell.input_transformers_cleanup.append(cost_cell_header)
        for name, callback in self._hooks():
            self.shell.events.register(name, callback)
        self._detach_display = self.session.run_safely(
            "the display channel", lambda: display.attach(self.shell, self.session)
        ) or (lambda: None)
        if self.session.settings.otlp_endpoint:
            self._detach_otel = self._export_otel(self.session.settings.otlp_endpoint)
        atexit.register(self.session.close)
        self._offer_remote()

    def _offer_remote(self) -> None:
        """Say how to bill a Dask or Ray cluster the notebook already uses (nbcost.dask,
        nbcost.ray)."""
        from . import dask, ray

        for hint in (dask.attach_hint, ray.attach_hint):
            line = self.session.run_safely("looking for a cluster client", hint)
            if line:
                print(line, flush=True)

    def stop(self) -> None:
        from .magics import cost_cell_header

        for name, callback in (*self._hooks(), ("post_execute", self.post_execute)):
            try:
                self.shell.events.unregister(name, callback)
            except ValueError:
                pass
        if cost_cell_header in self.shell.input_transformers_cleanup:
            self.shell.input_transformers_cleanup.remove(cost_cell_header)
        _unregister_magics(self.shell)
        self._detach_display()
        atexit.unregister(self.session.close)
        self.session.close()  # a cell running now ends as interrupted
        self.finish_cell("interrupted")
        self._detach_otel()  # after session_end, which it exports too; flushes
        api.set_session(None)

    def _export_otel(self, endpoint: str) -> Callable[[], None]:
        """Spend as live OpenTelemetry spans and metrics (``c.NbCost.otlp_endpoint``)."""
        from .errors import ConfigError

        def attach() -> Callable[[], None] | None:
            from .otel import attach

            try:
                return attach(self.session, endpoint)
            except ConfigError as exc:  # the otel extra is not installed
                print(f"nbcost: {exc}; spend is still logged.", file=sys.stderr, flush=True)
                return None

        return self.session.run_safely("the OpenTelemetry export", attach) or (lambda: None)

    def _hooks(self):
        return (("pre_run_cell", self.pre_run_cell), ("post_run_cell", self.post_run_cell))

    # -- cell hooks ---------------------------------------------------------------------------

    def pre_run_cell(self, info) -> None:
        self._depth += 1
        if self._depth > 1:  # a cell run inside a cell (%%capture) is part of it
            return
        self._cell_id = getattr(info, "cell_id", None)
        if info.silent or not self.session.enabled:
            return
        self.cell_window_id = self.session.open_cell(self._cell_id,
                                                     self.running_count(info.store_history))

    def running_count(self, store_history: bool) -> int:
        """The execution count of the cell running now."""
        advanced = _COUNTER_ADVANCED_BEFORE_PRE_RUN and store_history
        return self.shell.execution_count - 1 if advanced else self.shell.execution_count

    def post_execute(self) -> None:
        """A silent run (no pre/post_run_cell) that used ``%%cost`` ends its window here.
        Registered only while ``%%cost`` has a window it opened itself (see :meth:`cost_cell`),
        so other cells do not pay for the hook."""
        if self._depth == 0 and self.cell_window_id is not None:
            self.finish_cell("ok")

    def post_run_cell(self, result) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth:
            return
        self.finish_cell("ok" if result.success else "error")

    def cost_cell(self, options: CellOptions) -> bool:
        """What ``%%cost`` does: label, tag and budget the running cell's window and put the live
        panel under the cell. Returns True when it had to open the window itself (``%cost off``,
        a silent run, no running cell): the caller's cell end then closes it."""
        session = self.session
        opened = self.cell_window_id is None or not session.is_open(self.cell_window_id)
        if opened:
            self.cell_window_id = session.open_window(
                "cell", cell_id=self._cell_id, execution_count=self.running_count(True)).id
            if not self._ends_at_post_execute:  # a silent run has no post_run_cell
                self._ends_at_post_execute = True
                self.shell.events.register("post_execute", self.post_execute)
        info = session.annotate_window(self.cell_window_id, label=options.label,
                                       tags=options.tags, budget_usd=options.budget_usd,
                                       budget_hard=options.hard)
        self._panel = session.run_safely(
            "the live panel", lambda: display.live_panel(self.shell, session, info, options.quiet))
        return opened

    def finish_cell(self, status: str) -> None:
        """End the running cell's window and turn its panel (if ``%%cost``) into the summary.

        A cell without a panel does not wait for figures still being read (a GPU's counters at
        its end): its record and badge are completed when they land, a few ms later. A
        ``%%cost`` cell waits for them (at most 20 ms): its summary goes into this cell's output,
        which a saved notebook keeps and which only the cell's own thread can write to."""
        window_id, self.cell_window_id = self.cell_window_id, None
        panel, self._panel = self._panel, None
        if window_id is None:
            return
        if self._ends_at_post_execute:
            self._ends_at_post_execute = False
            self.shell.events.unregister("post_execute", self.post_execute)
        if panel is None:  # most cells: nothing to show, nothing to wait for
            self.session.close_cell(window_id, status)
            return
        record = self.session.close_window(window_id, status)
        if record is not None:
            self.session.run_safely("the summary", lambda: panel.finish(record))


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
