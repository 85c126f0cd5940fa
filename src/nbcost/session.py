"""The Session: the one place where costs add up.

Meters report usage to the Session; the Session attributes it to the windows open at that moment,
appends every event to the spend log, and keeps running totals and the last finished records
(:mod:`nbcost.recent`; the older ones are read back from the log, :mod:`nbcost.history`).
Nothing here knows IPython, NVML or an SDK.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import threading
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any, Callable, Mapping, Protocol

import orjson

from .budget import Budgets
from .config import Settings, load_settings
from .errors import BudgetExceeded, LedgerError
from .ledger import Ledger, encoded_members, iso_utc
from .meters.base import Meter, Usage
from .recent import CELLS_KEPT, Recent, RecentWindows
from .records import ZERO, MeterTotals, Tally, WindowInfo, WindowRecord, compact_record, money

__all__ = ["CellWatcher", "Session", "notebook_identity"]

Listener = Callable[[dict], None]


class CellWatcher(Protocol):
    """What follows a notebook's top-level cells (the comm to the lab extension) without taking
    every logged event as a dict, as a listener does: so the usual cell keeps its short path.
    Each method runs on the thread that opened or finished the cell; a failure is one warning."""

    def cell_started(self, info: WindowInfo) -> None:
        """A top-level cell started."""

    def cell_ended(self, record: WindowRecord) -> None:
        """A top-level cell's record is complete (on a GPU, a moment after the cell ended)."""

    def session_started(self) -> None:
        """``%cost reset`` started a new session: totals and finished cells begin anew."""


# Events the ledger may queue for its writer thread (everything else is written before it returns).
WINDOW_EDGE_EVENTS = frozenset({"cell_start", "cell_end", "track_start", "track_end"})
_START_EVENTS = {"cell": "cell_start", "track": "track_start"}
_END_EVENTS = {"cell": "cell_end", "track": "track_end"}
#: A session id is a file name: no path separators, no leading dot, a sane length.
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def valid_session_id(text: str) -> bool:
    return bool(_SESSION_ID.fullmatch(text))


def notebook_identity(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The notebook this kernel runs, as far as the environment tells.

    Jupyter Server sets JPY_SESSION_NAME to the notebook's path; ``nbcost run`` sets
    NBCOST_NOTEBOOK and NBCOST_NOTEBOOK_ID.
    """
    env = os.environ if environ is None else environ
    path = env.get("NBCOST_NOTEBOOK") or env.get("JPY_SESSION_NAME") or None
    return {"notebook_path": path, "notebook_id": env.get("NBCOST_NOTEBOOK_ID") or None}


class _NotedCell:
    """The usual cell while it runs (see :meth:`Session.open_cell`): what its window, record
    and lines are built from. The ledger's writer keeps its start's fields ``encoded`` for its
    end (None where only the careful path writes them)."""

    __slots__ = ("id", "start", "started_perf", "tags", "cell_id", "execution_count", "encoded")
    kind, parent_id, label = "cell", None, None  # (a top-level cell, unlabelled: a usual one)

    def __init__(self, window_id: str, tags: Mapping[str, str], cell_id: str | None,
                 execution_count: int) -> None:
        self.id = window_id
        self.start = time.time()
        self.started_perf = time.perf_counter()
        self.tags = tags  # the settings' own, not a copy: they never change once loaded
        self.cell_id = cell_id
        self.execution_count = execution_count
        self.encoded: bytes | None = None

    def info(self, end: float | None = None) -> WindowInfo:
        """Its window's info, ended at ``end`` (None: running)."""
        return WindowInfo(self.id, self.kind, self.start, self.label, self.tags, self.cell_id,
                          self.execution_count, self.parent_id, end)


class _Window:
    """A window while it is open: its info and its tallies (its budget is in ``Budgets``)."""

    __slots__ = ("info", "tallies", "started_perf", "flags", "noted", "_fields")

    def __init__(self, info: WindowInfo, noted: _NotedCell | None = None) -> None:
        self.info = info
        self.tallies: dict[str, Tally] = {}
        self.started_perf = time.perf_counter() if noted is None else noted.started_perf
        self.flags: set[str] = set()
        #: The usual cell this window was opened for (Session.open_cell) while nothing has
        #: annotated it since: its end may take close_cell's short way, its lines built by the
        #: ledger's writer.
        self.noted = noted
        self._fields: dict[str, Any] | None = None

    @property
    def fields(self) -> dict[str, Any]:
        """What both of its events carry: built when first asked (a usual cell never asks)."""
        if self._fields is None:
            self._fields = _window_fields(self.info, iso_utc(self.info.start))
        return self._fields


class Session:
    """A kernel's (or script's) spend: its windows, meters, records and spend log.

    Examples
    --------
    ::

        In [1]: s = nbcost.session()
        In [2]: with nbcost.track("embed corpus") as t:
           ...:     embed(corpus)
        In [3]: t.cost_usd, s.total_usd
        Out[3]: (Decimal('0.0132'), Decimal('0.0132'))

    ``records`` and ``usages`` hold the last ``recent_windows_kept`` finished windows and
    ``recent_usages_kept`` usages (``.appended`` counts all of them): a long session must not
    grow without bound. Every one is in the spend log, which ``to_dataframe()``, ``%cost`` and
    :meth:`finished_windows` / :meth:`llm_calls` read back.
    """

    #: Session ids started in this process: an id is never used twice (a second ``%load_ext``
    #: under ``nbcost run``, which sets NBCOST_SESSION_ID, gets a new one linked to it).
    _ids_taken: set[str] = set()
    _ids_lock = threading.Lock()
    #: How many finished windows and usages ``records`` and ``usages`` keep (the newest).
    recent_windows_kept = 1000
    recent_usages_kept = 1000

    def __init__(self, settings: Settings | None = None, meters: list[Meter] | None = None,
                 notebook: Mapping[str, str | None] | None = None,
                 session_id: str | None = None) -> None:
        self._lock = threading.RLock()
        self._warned: set[str] = set()
        if settings is None:  # bad settings are said and skipped, never fatal
            problems: list[str] = []
            settings = load_settings(problems=problems)
            for problem in problems:
                self.warn_once(f"config:{problem}", f"nbcost: {problem}")
        self.settings = settings
        self.notebook = dict(notebook or notebook_identity())
        self.enabled = True  # `%cost off` stops recording cells; meters' usage is still logged
        self._listeners: list[Listener] = []
        self.meters: dict[str, Meter] = {}
        self._edge_meters: tuple[Meter, ...] = ()
        self._settling_meters: tuple[Meter, ...] = ()
        self._measuring_meters: tuple[Meter, ...] = ()
        # Each meter's last figures and their JSON: a meter that measures the same (frozen)
        # figures window after window (no GPU) is encoded once.
        self._json_of: dict[str, tuple[MeterTotals, dict]] = {}
        self._last_measured: dict[str, tuple[Any, MeterTotals]] = {}
        # The last ended window's figures with their sums (see _figures): most cells end with
        # the same figures as the one before (no call, no GPU), and reuse them.
        self._last_figures: tuple[dict[str, MeterTotals], Decimal, bool, dict] | None = None
        # When no meter's window figures vary (no GPU), those of a window without usage: every
        # such window has them, and the meters are not asked again.
        self._fixed_meters = False
        self._fixed_figures: tuple[dict[str, MeterTotals], Decimal, bool, dict] | None = None
        # ...and, when they cost nothing, how a cell_end line writes them (see close_cell).
        self._fixed_members: bytes | None = None
        # The open windows, innermost last (read them as ``_open``, which opens a noted cell's
        # first), and the usual cell that runs, noted but not opened yet (see open_cell).
        self._open_windows: dict[str, _Window] = {}
        self._noted: _NotedCell | None = None
        self._cell_fields: dict[str, Any] = {}  # the running cell's, for usage events
        # Windows that `%cost reset` or `close()` ended while their code still ran: the code's
        # own close (track's __exit__, post_run_cell) gets this record instead of an error.
        self._ended_early: dict[str, WindowRecord] = {}
        # Ended windows whose figures are still being read: window id -> how to finish it.
        self._unsettled: dict[str, Callable[[], None]] = {}
        self.budgets = Budgets(self.settings, self._emit)
        requested = session_id or os.environ.get("NBCOST_SESSION_ID") or None
        if requested is not None and not valid_session_id(requested):
            self.warn_once("session-id", f"nbcost: the session id {requested!r} (NBCOST_SESSION_ID)"
                           " is not usable as a file name (letters, digits, '.', '_' and '-', up "
                           "to 128, not starting with '.' or '-'); a new random id is used.")
            requested = None
        #: The run this process belongs to: ``nbcost run`` sets NBCOST_RUN_ID (else the id asked
        #: for through NBCOST_SESSION_ID). Every session of the process carries it as ``run_id``
        #: (the runner finds a reset's or reload's logs by it) and a reset derives its id from it.
        run_id = os.environ.get("NBCOST_RUN_ID") or None
        self.run_id = run_id if run_id is not None and valid_session_id(run_id) else requested
        self._children: Any = None  # child processes' logs (nbcost.remote.children)
        #: Called with the innermost open window's id (None: none) when it changes, by what
        #: tells remote work which window it is for (nbcost.dask).
        self._window_watchers: tuple[Callable[[str | None], None], ...] = ()
        #: Called before a window closes and on live updates, to fold remote usage that waits
        #: to be fetched (nbcost.ray's collector).
        self._collectors: tuple[Callable[[], None], ...] = ()
        self._cell_watchers: tuple[CellWatcher, ...] = ()
        self._begin(requested, parent=None)
        for meter in meters if meters is not None else _default_meters():
            self.add_meter(meter)

    # -- life cycle ---------------------------------------------------------------------------

    def _begin(self, requested: str | None, parent: str | None) -> None:
        self.started_at = time.time()
        day = iso_utc(self.started_at)[:10]
        spend = self.settings.data_dir / "spend" / day
        self.id = self._claim_id(requested, spend)
        #: The session this one follows in this process (`%cost reset`, a second `%load_ext`).
        self.parent_session_id = parent if parent is not None else (
            requested if requested is not None and self.id != requested else None)
        self.ended_at: float | None = None
        # Window ids: a random prefix per session + a number, so they are unique for ever
        # (not derived from the session id, which a later session may share a prefix with).
        self._window_prefix = uuid.uuid4().hex[:16]
        self._window_numbers = itertools.count(1)
        # The last finished windows and usages only (a long session must not grow without
        # bound); the spend log holds them all (see "finished windows" below).
        self.records: RecentWindows = RecentWindows(self.recent_windows_kept, CELLS_KEPT)
        self.usages: Recent[Usage] = Recent(self.recent_usages_kept)
        self._tallies: dict[str, Tally] = {}
        self._usage_version = 0  # one more at each usage tallied: what `totals` may reuse
        self._last_totals: tuple | None = None
        self.budgets.session_changed()
        self.ledger_path = spend / f"{self.id}.jsonl"
        self._ledger = Ledger(self.ledger_path, {
            "session_id": self.id,
            **({"run_id": self.run_id} if self.run_id else {}),
            **self.notebook,
            "user": self.settings.user,
            "team": self.settings.team,
            "project": self.settings.project,
        }, root=self.settings.data_dir)
        self._say_ledger_reports()
        self._emit("session_start", {
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "tags": dict(self.settings.default_tags),
            "started_at": iso_utc(self.started_at),
            "parent_session_id": self.parent_session_id,
        })
        self._start_children()
        self._tell_cell_watchers("session_started")

    def _claim_id(self, requested: str | None, spend) -> str:
        """``requested`` if no session of this process used it and no log of it exists today,
        else ``<requested>-<8 hex>`` (found by ``<requested>*.jsonl``); a random id without one."""
        with Session._ids_lock:
            candidate = requested or uuid.uuid4().hex
            while candidate in Session._ids_taken or os.path.lexists(spend / f"{candidate}.jsonl"):
                candidate = f"{requested}-{uuid.uuid4().hex[:8]}" if requested else uuid.uuid4().hex
            Session._ids_taken.add(candidate)
            return candidate

    def close(self) -> None:
        """End the session: close open windows, stop the meters, write ``session_end``."""
        if self.ended_at is not None:
            return
        self._interrupt_open_windows()
        for meter in list(self.meters.values()):
            self.run_safely(f"stopping the {meter.name} meter", meter.stop)
        self._write_session_end()
        self._ledger.close()
        self._say_ledger_reports()

    def reset(self) -> None:
        """``%cost reset``: end this session's log and start a fresh session, meters kept.
        Open windows end as ``interrupted`` (and their meters are told), innermost first.

        Raises LedgerError, changing nothing, while events of this session are held in memory
        because its log cannot be written: ending its log would lose them."""
        self.flush()  # (a log writable again takes what it held here)
        if unsaved := self.unsaved_events:
            raise LedgerError(
                f"not reset: {unsaved} event{'s' * (unsaved != 1)} of this session are not in "
                f"its spend log yet ({self.ledger_path} cannot be written now), and a reset "
                "would lose them. Make its folder writable, then reset again.")
        self._interrupt_open_windows()
        self._write_session_end()
        self._ledger.close()
        self._say_ledger_reports()
        self._begin(self.run_id, parent=self.id)

    def _interrupt_open_windows(self) -> None:
        for window_id in reversed(list(self._open)):
            record = self.close_window(window_id, status="interrupted")
            if record is not None:
                self._ended_early[window_id] = record

    def _write_session_end(self) -> None:
        self._end_children()
        self.settle()
        self.ended_at = time.time()
        totals = self.totals(self.ended_at)
        self._emit("session_end", {
            "ended_at": iso_utc(self.ended_at),
            "wall_s": self.ended_at - self.started_at,
            "cost_usd": money(sum((t.cost_usd for t in totals.values()), ZERO)),
            "meters": {name: t.to_json() for name, t in totals.items()},
        })

    # -- meters -------------------------------------------------------------------------------

    def add_meter(self, meter: Meter) -> None:
        if meter.name in self.meters:
            raise ValueError(f"a meter named {meter.name!r} is already part of this session")
        self.meters[meter.name] = meter
        self.run_safely(f"starting the {meter.name} meter", lambda: meter.start(self))
        self._meters_changed()  # after start: a meter says then whether it watches windows

    def remove_meter(self, name: str) -> None:
        meter = self.meters.pop(name, None)
        self._meters_changed()
        if meter is not None:
            self.run_safely(f"stopping the {name} meter", meter.stop)

    def _meters_changed(self) -> None:
        """The meters each window edge and measurement calls: only those that override the
        hook (the base class's do nothing) and, for the edges, watch windows at all (a GPU
        meter without a GPU does not), so a cell pays for no empty calls."""
        def overriding(*hooks: str, meters=self.meters.values()) -> tuple[Meter, ...]:
            return tuple(m for m in meters
                         if any(getattr(type(m), h) is not getattr(Meter, h) for h in hooks))

        watching = [m for m in self.meters.values()
                    if self.run_safely(f"the {m.name} meter", lambda m=m: m.watches_windows)]
        self._edge_meters = overriding("window_started", "window_ended", meters=watching)
        self._settling_meters = overriding("settles_later", meters=watching)
        self._measuring_meters = overriding("measure")
        self._fixed_meters = not any(
            self.run_safely(f"the {m.name} meter", lambda m=m: m.measures_windows) is not False
            for m in self._measuring_meters)
        self._fixed_figures = self._fixed_members = None

    # MeterSink ------------------------------------------------------------------------------

    def record(self, usage: Usage) -> None:
        """Attribute one piece of usage to every open window and log it at once."""
        meter = usage.meter
        with self._lock:
            self.usages.append(usage)
            _tally(self._tallies, meter).add(usage)
            self._usage_version += 1
            window_ids = []
            for window in self._open.values():
                _tally(window.tallies, meter).add(usage)
                window_ids.append(window.info.id)
            # (A Usage and its mappings are never changed once reported: logged as they are.)
            self._emit(usage.event, {
                **self._cell_fields,
                "window_ids": window_ids,
                "meter": meter,
                "key": usage.key,
                "quantities": _as_dict(usage.quantities),
                "cost_usd": money(usage.cost_usd),
                "attributes": _as_dict(usage.attributes),
                "flags": usage.flags,
            }, at=usage.at.timestamp())
        self._check_budgets()

    def log(self, event: str, fields: Mapping[str, Any]) -> None:
        self._emit(event, {**self.current_cell(), **fields})
        if event == "gpu_checkpoint":  # GPU spend is continuous: a checkpoint is a crossing chance
            self._check_budgets()

    def warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        print(message, file=sys.stderr, flush=True)

    def check_budget(self, meter: str) -> None:
        """Refuse to start new spend when a hard budget (session or window) is used up."""
        __tracebackhide__ = True  # IPython shows the user's frames, not nbcost's
        if not self.budgets.any_hard:  # the usual case: an LLM call pays for one attribute read
            return
        with self._lock:
            open_ids = list(self._open)
        self.budgets.refuse_if_spent(
            meter, open_ids, lambda: self.total_usd,
            self._open_window_cost, self.current_cell())

    def current_cell(self) -> dict[str, Any]:
        if self._noted is not None:
            self._open_noted()
        return dict(self._cell_fields)

    def _cell_changed(self) -> None:
        """Keep ``{"cell_id", "execution_count"}`` of the running cell (the first open cell
        window), which every usage event carries, so no event has to look for it."""
        for window in self._open.values():
            if window.info.kind == "cell":
                self._cell_fields = {"cell_id": window.info.cell_id,
                                     "execution_count": window.info.execution_count}
                return
        self._cell_fields = {}

    # -- windows ------------------------------------------------------------------------------

    def open_window(self, kind: str, label: str | None = None, tags: Mapping[str, str] | None = None,
                    cell_id: str | None = None, execution_count: int | None = None) -> WindowInfo:
        with self._lock:
            info = WindowInfo(
                f"{self._window_prefix}{next(self._window_numbers):06x}", kind, time.time(),
                label, {**self.settings.default_tags, **tags} if tags else
                dict(self.settings.default_tags), cell_id, execution_count,
                # The innermost open window is the parent; a cell is always top-level: a
                # block still open in another thread or a paused generator is not its parent.
                None if kind == "cell" else next(reversed(self._open), None))
            window = self._open[info.id] = _Window(info)
            if kind == "cell" and not self._cell_fields:  # the first open cell is the running one
                self._cell_fields = {"cell_id": cell_id, "execution_count": execution_count}
        if self._children is not None:  # children started from now on bill to this window
            self._children.window_changed(info.id)
        if self._window_watchers:
            self._tell_watchers(info.id)
        for meter in self._edge_meters:
            try:
                meter.window_started(info)
            except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's work
                self._fault(f"the {meter.name} meter", exc, window)
        fields = window.fields
        self._emit(_START_EVENTS.get(kind) or f"{kind}_start", fields, at=fields["started_at"])
        if self._cell_watchers and info.is_top_cell:
            self._tell_cell_watchers("cell_started", info)
        return info

    # -- the usual cell ---------------------------------------------------------------------

    def open_cell(self, cell_id: str | None, execution_count: int) -> str:
        """``open_window("cell", ...)`` for a notebook's cell; returns the window's id.

        Every cell pays for this, so the usual one (nothing else open, nobody listening; the
        lab extension's comm is a :class:`CellWatcher`, told either way) touches as little as
        it can: between two cells IPython's own work pushes nbcost's code and data out of the
        CPU's caches, and inside a cell each function and object touched costs a cache miss,
        several times its cost in a loop. So it is only noted (its id, times and cell), and
        its start queued for the ledger's writer, which builds the line (the bytes the general
        path writes) with a burst of others, its code warm. Its window is opened from the note
        when something in the cell needs it (a usage to bill, a window inside it, an
        annotation, a look at what is open: see ``_open``). Anything else takes the general
        path."""
        with self._lock:
            plain = (self._noted is None and not self._open_windows and not self._listeners
                     and not self._edge_meters and not self._window_watchers)
            if plain:
                noted = self._noted = _NotedCell(
                    f"{self._window_prefix}{next(self._window_numbers):06x}",
                    self.settings.default_tags, cell_id, execution_count)
        if not plain:
            return self.open_window("cell", cell_id=cell_id, execution_count=execution_count).id
        if self._children is not None:  # children started from now on bill to this cell
            self._children.window_changed(noted.id)
        self._buffer_edge("cell_start", _start_edge, noted)
        if self._cell_watchers:
            self._tell_cell_watchers("cell_started", noted.info())
        return noted.id

    @property
    def _open(self) -> dict[str, _Window]:
        """The open windows, innermost last; a noted cell's is opened first (see open_cell)."""
        if self._noted is not None:
            self._open_noted()
        return self._open_windows

    def _open_noted(self) -> None:
        """Open the noted cell's window, as open_cell would have (its start is queued already)."""
        with self._lock:
            noted, self._noted = self._noted, None
            if noted is not None:  # (else another thread opened it meanwhile)
                self._open_windows[noted.id] = _Window(noted.info(), noted)
                self._cell_fields = {"cell_id": noted.cell_id,
                                     "execution_count": noted.execution_count}

    def close_cell(self, window_id: str, status: str) -> None:
        """``close_window(window_id, status)`` for a cell without a panel, not waiting for
        figures still being read. The usual one (see :meth:`open_cell`: no usage, no budget,
        not annotated, figures that never vary and cost nothing) ends here: its record is
        kept and its end queued for the writer to build the line; any other takes the general
        path."""
        end = time.time()
        children = self._children
        with self._lock:
            figures, members = self._fixed_figures, self._fixed_members
            plain = (figures is not None and members is not None and not self._listeners
                     and not self._collectors and not self._edge_meters
                     and not self.budgets.any and (children is None or not children.pending()))
            noted = self._noted
            if noted is not None and noted.id == window_id:  # never opened: nothing used it
                if plain:
                    self._noted = None
            else:  # opened (something needed its window), or not a usual cell
                window = self._open_windows.get(window_id)
                noted = window.noted if window is not None else None
                plain = (plain and noted is not None and len(self._open_windows) == 1
                         and not window.tallies and not window.flags)
                if plain:
                    del self._open_windows[window_id]
                    self._cell_fields = {}
            if plain:
                record = WindowRecord(noted.info(end), time.perf_counter() - noted.started_perf,
                                      status, figures[0], self.id)
                self.records.append(record)
        if not plain:
            self.close_window(window_id, status, on_final=_nothing)
            return
        self._buffer_edge("cell_end", _end_edge, (noted, record, figures, members))
        if self._cell_watchers:
            self._tell_cell_watchers("cell_ended", record)

    def _buffer_edge(self, event: str, make: Callable, source: Any) -> None:
        try:
            self._ledger.buffer_later(event, make, source)
        except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's cell
            self.warn_once(f"ledger:{type(exc).__name__}",
                           f"nbcost: could not log a {event} event ({exc}); costs are still shown.")
        if self._ledger.has_reports:  # the writer could not write: say so (outside its lock)
            self._say_ledger_reports()

    def annotate_window(self, window_id: str, *, label: str | None = None,
                        tags: Mapping[str, str] | None = None, budget_usd: Decimal | None = None,
                        budget_hard: bool = False) -> WindowInfo | None:
        """Give an open window a label, tags or a budget (what ``%%cost`` does to its cell).
        A window that is no longer open (``%cost reset`` ended it) is left alone: None."""
        with self._lock:
            window = self._open.get(window_id)
            if window is None:
                return None
            window.info = replace(window.info, label=label if label is not None else window.info.label,
                                  tags={**window.info.tags, **(tags or {})})
            window._fields = None  # its end carries the label and tags
            window.noted = None
        if budget_usd is not None:
            self.budgets.set_window(window_id, budget_usd, budget_hard)
        return window.info

    def close_window(self, window_id: str, status: str = "ok",
                     on_final: Callable[[WindowRecord], None] | None = None
                     ) -> WindowRecord | None:
        """End a window and return its record. One that ``%cost reset`` (or ``close()``) already
        ended gives that record; an unknown one gives None and one warning, never an error.

        With ``on_final``, the caller does not wait for figures still being read (a GPU's
        counters at the window's end, a few ms of NVML calls): the record is completed when they
        land, on the thread that read them, and handed to ``on_final``; None is returned then.
        (A cell without a panel ends this way: its badge updates a moment later, exact.)"""
        children = self._children
        if children is not None and children.pending():  # a child wrote: fold it in first
            self.run_safely("reading child processes' logs", lambda: children.collect(self))
        if self._collectors:
            self._run_collectors()
        end = time.time()
        with self._lock:
            window = self._open.pop(window_id, None)
            if window is None:
                early = self._ended_early.pop(window_id, None)
            elif window.info.kind == "cell":
                self._cell_changed()
            if self._open and (children is not None or self._window_watchers):
                self._window_closed_inside(next(reversed(self._open)))
        if not self._open and self._window_watchers:
            self._tell_watchers(None)
        if window is None:
            if early is None:
                self.warn_once("unknown-window", f"nbcost: window {window_id} is not open (was "
                               "the session reset or unloaded?); nothing more is recorded for it.")
            elif on_final is not None:
                on_final(early)
            return early
        wall_s = time.perf_counter() - window.started_perf
        info = window.info = window.info.ended(end)
        for meter in self._edge_meters:
            try:
                meter.window_ended(info)
            except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's work
                self._fault(f"the {meter.name} meter", exc, window)
        if on_final is None:
            return self._finish_window(window, wall_s, status)
        if self._settling_meters and self._settle_later(window, wall_s, status, on_final):
            return None
        record = self._finish_window(window, wall_s, status)
        on_final(record)
        return record

    def _settle_later(self, window: _Window, wall_s: float, status: str,
                      on_final: Callable[[WindowRecord], None]) -> bool:
        """Have the window finished once every meter's figures for it are in: True if that is
        later (a meter reads on its own thread), False if they are in now. A window left
        unsettled (a stuck NVML call) is finished by the next ``flush``, reset or close."""
        for waiting in self._settling_meters:
            if waiting.settles_later():
                break
        else:
            return False

        def settle() -> None:
            with self._lock:
                finish = self._unsettled.pop(window.info.id, None)
            if finish is not None:
                self.run_safely("finishing a window's record", finish)

        def finish() -> None:
            record = self._finish_window(window, wall_s, status)
            self.run_safely("the cell's summary", lambda: on_final(record))

        with self._lock:
            self._unsettled[window.info.id] = finish
        if not waiting.when_settled(settle):  # it settled meanwhile
            settle()
        return True

    def settle(self) -> None:
        """Finish every window still waiting for its figures (waiting for them here)."""
        with self._lock:
            pending, self._unsettled = list(self._unsettled.values()), {}
        for finish in pending:
            finish()

    def _finish_window(self, window: _Window, wall_s: float, status: str) -> WindowRecord:
        """Measure an ended window, keep and log its record, check its budget."""
        info = window.info
        meters, cost, unpriced, meters_json = self._figures(window, info.start, info.end)
        flags = tuple(sorted(window.flags)) if window.flags else ()
        budgets = self.budgets
        budget = budgets.of_window(info.id) if budgets.any else None
        record = WindowRecord(info, wall_s, status, meters, self.id, flags, budget)
        with self._lock:
            self.records.append(record)
        ended_at = iso_utc(info.end)
        fields = _end_fields(window.fields, record, ended_at, cost, unpriced, meters_json)
        # A window that cost something is a money event: on disk now, like its usage. (Most
        # cells cost nothing and are buffered: that is what keeps a cell's overhead low.)
        self._emit(_END_EVENTS.get(info.kind) or f"{info.kind}_end", fields, at=ended_at,
                   durable=bool(cost) or unpriced)
        if self._cell_watchers and info.is_top_cell:
            self._tell_cell_watchers("cell_ended", record)
        if budget is not None:  # spend since the last check (a window with no ticks) counts too
            where = self._where(window)
            budgets.check(info.id, cost, where)
            if budgets.session_pending():
                budgets.check("session", self.total_usd, where)
            budgets.forget_window(info.id)
        return record

    def budget_of(self, window_id: str) -> tuple[Decimal | None, bool]:
        """``(budget_usd, hard)`` of a window: its own (``%%cost --budget``), else the
        session's."""
        budget = self.budgets.of_window(window_id)
        return (budget.usd, budget.hard) if budget else (None, False)

    def is_open(self, window_id: str) -> bool:
        return window_id in self._open

    def open_windows(self) -> list[WindowInfo]:
        with self._lock:
            return [w.info for w in self._open.values()]

    def flag_open_windows(self, flag: str) -> None:
        """Mark every open window (``internal_error`` when nbcost itself failed)."""
        with self._lock:
            for window in self._open.values():
                window.flags.add(flag)

    def live_totals(self, window_id: str | None = None) -> dict[str, Any]:
        """Running totals of an open window, or of the whole session: the compact shape, with
        the budget that applies. The ticker calls this ~4×/s while a window runs, which makes
        it where a continuous meter's spend (GPU) crosses a budget: warnings are given here."""
        if self._children is not None:
            self._collect_children()
        if self._collectors:
            self._run_collectors()
        now = time.time()
        if window_id is None:
            info = WindowInfo(id=self.id, kind="session", start=self.started_at, end=now)
            totals = self.totals(now)
            self._check_session_budget(_cost(totals))
            return compact_record(info, now - self.started_at, "running", totals, self.id,
                                  budget=self.budgets.session)
        with self._lock:
            window = self._open.get(window_id)
        if window is None:
            raise KeyError(f"no open window {window_id!r}")
        meters = self._measure(window, window.info.start, now)
        if self.budgets.window_pending(window_id):
            self.budgets.check(window_id, _cost(meters), self._where(window))
        if self.budgets.session_pending():
            self._check_session_budget(self.total_usd)
        return compact_record(window.info, time.perf_counter() - window.started_perf, "running",
                              meters, self.id, tuple(window.flags),
                              budget=self.budgets.of_window(window_id))

    # -- totals -------------------------------------------------------------------------------

    def totals(self, end: float | None = None) -> dict[str, MeterTotals]:
        """Session-wide figures per meter, including what no window saw (GPU idle between cells)."""
        end = end or self.ended_at or time.time()
        measured = self._each_meter(lambda meter: meter.session_measurement(self.started_at, end))
        with self._lock:
            tallies, version = self._tallies, self._usage_version
            last = self._last_totals
            if (last is not None and last[0] is tallies and last[1] == version
                    and last[2].keys() == measured.keys()
                    and all(last[2][name] is m for name, m in measured.items())):
                return dict(last[3])  # no usage since, and the meters measured the same (no GPU)
            totals = {name: tally.freeze() for name, tally in tallies.items()}
        totals.update({name: MeterTotals.from_measurement(m) for name, m in measured.items() if m})
        self._last_totals = (tallies, version, measured, totals)
        return dict(totals)

    @property
    def total_usd(self) -> Decimal:
        """What the session has cost so far (priced parts; see ``unpriced``)."""
        return sum((t.cost_usd for t in self.totals().values()), ZERO)

    @property
    def unpriced(self) -> bool:
        return any(t.unpriced for t in self.totals().values())

    def to_dataframe(self):
        """The session's spend log as the flat export table (one row per window)."""
        from .export import session_dataframe

        return session_dataframe(self)

    # -- finished windows (memory keeps the last few; the spend log has them all) --------------

    def finished_window(self, window_id: str) -> WindowRecord | None:
        """The record of a window that ended lately (the panel's final message), else None."""
        return self.records.find(window_id)  # a copy of the deque: no lock needed

    @property
    def cells_finished(self) -> int:
        """How many top-level cells this session has finished (counted, not kept)."""
        return self.records.top_cells

    def finished_windows(self):
        """Every finished top-level window of the session, oldest first, read back from the
        spend log where memory no longer holds them: a :class:`nbcost.history.Finished`."""
        from .history import finished_top_level

        return finished_top_level(self)

    def llm_calls(self):
        """Every LLM call of the session as ``Usage``, from the spend log where memory no
        longer holds them: a :class:`nbcost.history.Calls`."""
        from .history import llm_calls

        return llm_calls(self)

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` after every spend-log event; returns the undo."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    # -- work from elsewhere: child processes, Dask workers (nbcost.remote) --------------------

    def fold_remote(self, usage: Usage, window_id: str | None,
                    origin: Mapping[str, Any]) -> None:
        """Usage that happened outside this process (a child process, a Dask worker), billed to
        ``window_id`` (the window that started the work) and the windows around it that are
        still open. One that has already ended is amended: the spend log gets the ``llm_call``
        (``late: true``) and a ``window_amended`` event with what it adds to the record."""
        with self._lock:
            self.usages.append(usage)
            _tally(self._tallies, usage.meter).add(usage)
            self._usage_version += 1
            chain: list[_Window] = []
            window = self._open.get(window_id) if window_id else None
            while window is not None:
                chain.append(window)
                window = self._open.get(window.info.parent_id) if window.info.parent_id else None
            for window in chain:
                _tally(window.tallies, usage.meter).add(usage)
            late = window_id is not None and not chain
            cell = next((w.info for w in chain if w.info.kind == "cell"), None)
            fields: dict[str, Any] = {
                **({"cell_id": cell.cell_id, "execution_count": cell.execution_count}
                   if cell else {}),
                "window_ids": [window_id] if late else [w.info.id for w in reversed(chain)],
                "meter": usage.meter,
                "key": usage.key,
                "quantities": dict(usage.quantities),
                "cost_usd": money(usage.cost_usd),
                "attributes": dict(usage.attributes),
                "flags": list(usage.flags),
                "origin": dict(origin),
            }
            if late:
                fields["late"] = True
            self._emit(usage.event, fields, at=usage.at.timestamp())
        if late:
            tally = Tally()
            tally.add(usage)
            totals = tally.freeze()
            self._emit("window_amended", {
                "window_id": window_id,
                "reason": "late",
                "cost_usd": money(totals.cost_usd),
                "unpriced": totals.unpriced,
                "meters": {usage.meter: totals.to_json()},
                "origin": dict(origin),
            })
        self._check_budgets()

    def watch_windows(self, watcher: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``watcher(window_id)`` whenever the innermost open window changes (None: no
        window is open); returns the undo. (What ``nbcost.dask.attach`` annotates tasks by.)"""
        return self._subscribe("_window_watchers", watcher)

    def watch_cells(self, watcher: CellWatcher) -> Callable[[], None]:
        """Tell ``watcher`` when each top-level cell starts and ends, and of a reset (see
        :class:`CellWatcher`); returns the undo."""
        return self._subscribe("_cell_watchers", watcher)

    def _tell_cell_watchers(self, what: str, *args: Any) -> None:
        for watcher in self._cell_watchers:
            try:
                getattr(watcher, what)(*args)
            except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's work
                self._fault("the live display", exc)

    def add_collector(self, collect: Callable[[], None]) -> Callable[[], None]:
        """Call ``collect()`` before each window closes and on each live update, to fold remote
        usage that must be fetched (``fold_remote``); returns the undo."""
        return self._subscribe("_collectors", collect)

    def _subscribe(self, name: str, item: Any) -> Callable[[], None]:
        """Add ``item`` to the tuple attribute ``name``; returns the undo. (A tuple, replaced
        whole under the lock: hot paths read it without taking the lock.)"""
        with self._lock:
            setattr(self, name, getattr(self, name) + (item,))

        def remove() -> None:
            with self._lock:
                setattr(self, name, tuple(x for x in getattr(self, name) if x is not item))

        return remove

    def _run_collectors(self) -> None:
        for collect in self._collectors:
            self.run_safely("fetching remote usage", collect)

    def _window_closed_inside(self, innermost: str) -> None:
        """A window closed while others stay open: remote work is for the innermost again.
        (After a top-level window nothing is reset, to keep the cell path at one environment
        write: a child started between cells is billed to the cell before, as a late
        amendment.)"""
        if self._children is not None:
            self._children.window_changed(innermost)
        if self._window_watchers:
            self._tell_watchers(innermost)

    def _tell_watchers(self, window_id: str | None) -> None:
        for watcher in self._window_watchers:
            self.run_safely("telling remote work of the window", lambda w=watcher: w(window_id))

    def _start_children(self) -> None:
        from .remote.children import ChildProcesses

        try:
            self._children = ChildProcesses(self)
        except OSError:  # the data dir is not writable: the ledger already says so
            self._children = None
        except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's work
            self._children = None
            self._fault("watching child processes", exc)

    def _collect_children(self) -> None:
        children = self._children
        if children is not None:
            self.run_safely("reading child processes' logs", lambda: children.collect(self))

    def _end_children(self) -> None:
        children, self._children = self._children, None
        if children is not None:
            self.run_safely("reading child processes' logs", lambda: children.close(self))

    # -- internals ----------------------------------------------------------------------------

    def _measure(self, window: _Window, start: float, end: float) -> dict[str, MeterTotals]:
        meters = {}
        if window.tallies:  # most cells made no LLM call
            with self._lock:
                meters = {name: tally.freeze() for name, tally in window.tallies.items()}
        for meter in self._measuring_meters:
            try:
                measured = meter.measure(start, end)
            except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's work
                self._fault(f"the {meter.name} meter", exc, window)
                continue
            if measured:
                last = self._last_measured.get(meter.name)
                if last is None or last[0] is not measured:  # the same figures again: reused
                    last = self._last_measured[meter.name] = (
                        measured, MeterTotals.from_measurement(measured))
                meters[meter.name] = last[1]
        return meters

    def _figures(self, window: _Window, start: float, end: float
                 ) -> tuple[dict[str, MeterTotals], Decimal, bool, dict[str, dict]]:
        """An ended window's figures per meter, their cost, whether some usage was unpriced,
        and their JSON. The sums and JSON of the window before are reused when the figures are
        the same objects (the usual cell: no call, and the same frozen figures of no GPU)."""
        if not window.tallies and self._fixed_figures is not None:
            return self._fixed_figures
        meters = self._measure(window, start, end)  # may flag the window
        last = self._last_figures
        if last is None or last[0] != meters:  # (compares identical values first)
            last = self._last_figures = (meters, _cost(meters),
                                         any(t.unpriced for t in meters.values()),
                                         self._meters_json(meters))
        if self._fixed_meters and not window.tallies and not window.flags:
            self._fixed_figures = last  # what every window without usage has from now on
            _, cost, unpriced, meters_json = last
            self._fixed_members = None if cost or unpriced else encoded_members(
                {"cost_usd": money(cost), "unpriced": unpriced, "meters": meters_json,
                 "flags": []})
        return last

    def _meters_json(self, meters: Mapping[str, MeterTotals]) -> dict[str, dict]:
        out = {}
        for name, totals in meters.items():
            last = self._json_of.get(name)
            if last is None or last[0] is not totals:
                last = self._json_of[name] = (totals, totals.to_json())
            out[name] = last[1]
        return out

    def _window_cost(self, window: _Window) -> Decimal:
        return _cost(self._measure(window, window.info.start, time.time()))

    def _open_window_cost(self, window_id: str) -> Decimal:
        with self._lock:
            window = self._open.get(window_id)
        return self._window_cost(window) if window is not None else ZERO

    def _check_budgets(self) -> None:
        """Soft budgets after new spend: each open window's own, then the session's."""
        if not self.budgets.any:
            return
        for window_id in self.budgets.windows_pending():
            with self._lock:
                window = self._open.get(window_id)
            if window is not None:
                self.budgets.check(window_id, self._window_cost(window), self._where(window))
        if self.budgets.session_pending():
            self._check_session_budget(self.total_usd)

    def _check_session_budget(self, spent: Decimal) -> None:
        self.budgets.check("session", spent, self.current_cell())

    def _where(self, window: _Window) -> dict[str, Any]:
        info = window.info
        return {"cell_id": info.cell_id, "execution_count": info.execution_count,
                "window_id": info.id}

    @property
    def unsaved_events(self) -> int:
        """Events kept in memory because the spend log cannot be written now."""
        return self._ledger.unsaved

    def flush(self) -> None:
        """Make sure every event so far is in the spend log (cell edges are written by a
        writer thread within milliseconds; read the file in-process after this)."""
        self.settle()
        self._ledger.flush()
        self._say_ledger_reports()

    def _emit(self, event: str, fields: Mapping[str, Any], at=None, durable: bool | None = None
              ) -> None:
        """Log an event and tell the listeners. Money events are durable (on disk before this
        returns); window edges are buffered unless ``durable`` says otherwise."""
        if durable is None:
            durable = event not in WINDOW_EDGE_EVENTS
        try:
            if not self._listeners:  # nobody needs the logged dict
                if not durable:
                    self._ledger.buffer(event, fields, at)
                    return
                self._ledger.write(event, fields, at)
                payload = None
            else:
                payload = self._ledger.append(event, fields, at=at, durable=durable)
        except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's cell
            self.warn_once(f"ledger:{type(exc).__name__}",
                           f"nbcost: could not log a {event} event ({exc}); costs are still shown.")
            return
        if self._ledger.has_reports:  # a write failed or recovered: say so (outside its lock)
            self._say_ledger_reports()
        if payload is not None:
            for listener in list(self._listeners):
                self.run_safely("a display listener", lambda fn=listener: fn(payload))

    def _say_ledger_reports(self) -> None:
        """Print what the ledger queued about its log (failures, recovery, losses). Called on
        this side of the ledger's lock only: the ledger never calls into the session."""
        for report in self._ledger.take_reports():
            print(report, file=sys.stderr, flush=True)

    def run_safely(self, what: str, action: Callable[[], Any]) -> Any:
        """Run nbcost's own work (``what`` names it); a failure becomes one warning and a
        flagged record, and ``None`` is returned. The user's exceptions are never caught here."""
        try:
            return action()
        except BudgetExceeded:
            raise
        except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's work
            self._fault(what, exc)
            return None

    def _each_meter(self, call: Callable[[Meter], Any], window: _Window | None = None) -> dict:
        """``call(meter)`` for every meter, safely; the results by meter name (failures left out)."""
        results = {}
        for name, meter in list(self.meters.items()):
            try:
                results[name] = call(meter)
            except Exception as exc:  # noqa: BLE001 - nbcost must never break the user's work
                self._fault(f"the {name} meter", exc, window)
        return results

    def _fault(self, what: str, exc: Exception, window: _Window | None = None) -> None:
        self.flag_open_windows("internal_error")
        if window is not None:  # a window being closed is no longer among the open ones
            window.flags.add("internal_error")
        self.warn_once(f"internal:{what}:{type(exc).__name__}",
                       f"nbcost: {what} failed ({type(exc).__name__}: {exc}); "
                       f"your code is unaffected, this record is flagged.")


def _nothing(record: WindowRecord) -> None:
    pass


def _tally(tallies: dict[str, Tally], meter: str) -> Tally:
    tally = tallies.get(meter)
    if tally is None:  # (not setdefault: that would build a Tally at every call)
        tally = tallies[meter] = Tally()
    return tally


def _as_dict(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return mapping if type(mapping) is dict else dict(mapping)


def _cost(meters: Mapping[str, MeterTotals]) -> Decimal:
    return sum((t.cost_usd for t in meters.values()), ZERO)


def _start_edge(noted: _NotedCell) -> tuple[str, bytes | dict[str, Any]]:
    """A usual cell's start event, built by the ledger's writer (see ``Session.open_cell``):
    from its note (a label given since is its end's), its fields kept encoded for its end."""
    started_at = iso_utc(noted.start)
    fields = _window_fields(noted, started_at)
    noted.encoded = encoded_members(fields)
    return started_at, fields if noted.encoded is None else noted.encoded


def _end_edge(ended: tuple[_NotedCell, WindowRecord, tuple, bytes]) -> tuple[str, bytes | dict]:
    """A usual cell's end event, built by the ledger's writer after its start (see
    ``Session.close_cell``): its start's fields, then how it ended and its figures, encoded
    once for every cell that costs nothing."""
    noted, record, (_, cost, unpriced, meters_json), members = ended
    ended_at = iso_utc(record.info.end)
    if noted.encoded is None:  # its start took the careful path: its end too
        fields = _window_fields(record.info, iso_utc(record.info.start))
        return ended_at, _end_fields(fields, record, ended_at, cost, unpriced, meters_json)
    return ended_at, b'%s,"ended_at":"%s","wall_s":%s,"status":%s,%s' % (
        noted.encoded, ended_at.encode(), orjson.dumps(record.wall_s),
        orjson.dumps(record.status), members)


def _end_fields(fields: Mapping[str, Any], record: WindowRecord, ended_at: str, cost: Decimal,
                unpriced: bool, meters_json: dict) -> dict[str, Any]:
    """What a window's end event carries: its start's fields, how it ended and what it cost."""
    return {**fields, "ended_at": ended_at, "wall_s": record.wall_s, "status": record.status,
            "cost_usd": money(cost), "unpriced": unpriced, "meters": meters_json,
            "flags": list(record.flags)}


def _window_fields(info: WindowInfo | _NotedCell, started_at: str) -> dict[str, Any]:
    """What both of a window's events carry."""
    return {
        "window_id": info.id,
        "parent_id": info.parent_id,
        "kind": info.kind,
        "label": info.label,
        "tags": dict(info.tags),
        "cell_id": info.cell_id,
        "execution_count": info.execution_count,
        "started_at": started_at,
    }


def _default_meters() -> list[Meter]:
    from .meters import default_meters

    return default_meters()
