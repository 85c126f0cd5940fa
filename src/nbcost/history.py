"""All of a session's finished windows and LLM calls: from memory while it holds them all,
else read back from the session's spend log.

The session keeps only its last few windows and usages (:mod:`nbcost.recent`). ``%cost`` and
``%cost compare`` need every one, so they come from the log, which is read line by line and
parsed only where a line can be what is wanted (a top-level window's end, a usage event): a
session of a million ``track()`` blocks is read in seconds and never held in memory. What the
log lacks (it could not be written, or not read) is made up from memory as far as memory
reaches, and the rest is counted and said, never silently left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator

from .errors import LedgerError
from .ledger import iso_utc
from .logcheck import event_problem, lines_holding, parse_line, parse_ts
from .meters.base import Usage

__all__ = ["Calls", "Finished", "FinishedWindow", "finished_top_level", "llm_calls",
           "read_calls", "read_finished"]


@dataclass(frozen=True, slots=True)
class FinishedWindow:
    """A finished top-level window: ``compact`` is its compact record (``WindowRecord.compact``
    shape, without the budget), ``start``/``end`` epoch seconds."""

    id: str
    kind: str
    start: float
    end: float | None
    compact: dict[str, Any]


@dataclass
class Finished:
    """The session's finished top-level windows, oldest first, and how many it could not show
    (``missing``, with ``problem`` saying why)."""

    windows: list[FinishedWindow] = field(default_factory=list)
    missing: int = 0
    problem: str | None = None

    def note(self) -> str | None:
        """One sentence for the user when windows are missing, else None."""
        if not self.missing:
            return None
        return (f"{self.missing:,} earlier window{'s' * (self.missing != 1)} missing from this "
                f"table: {self.problem or 'not in the spend log'}, and memory keeps only the "
                "last ones. Their cost is in the session total (under \"between cells\").")


@dataclass
class Calls:
    """The session's LLM calls, oldest first, and how many it could not list (``missing``)."""

    usages: list[Usage] = field(default_factory=list)
    missing: int = 0
    problem: str | None = None

    def note(self) -> str | None:
        if not self.missing:
            return None
        return (f"nbcost: {self.missing:,} LLM call{'s' * (self.missing != 1)} of this session "
                f"left out: {self.problem or 'not in the spend log'}, and memory keeps only "
                "the last ones.")


def finished_top_level(session) -> Finished:
    """Every finished top-level window of ``session`` (the rows of ``%cost``)."""
    records = session.records
    if records.complete:
        return Finished([_from_record(r) for r in list(records) if r.info.parent_id is None])
    return read_finished(session)


def read_finished(session) -> Finished:
    """:func:`finished_top_level` read from the spend log (plus what memory has that the log
    lacks), whether or not memory still holds every window."""
    expected = session.records.top_level
    recent = [r for r in list(session.records) if r.info.parent_id is None]
    found: dict[str, FinishedWindow] = {}
    problem = _unsaved(session)
    try:
        session.flush()
        for event in _scan(session.ledger_path, b'_end"', _maybe_top_level):
            if (event["event"].endswith("_end") and "window_id" in event
                    and event.get("parent_id") is None):  # as rows.py tells window ends
                found[event["window_id"]] = _from_event(event)
    except LedgerError as exc:
        problem = str(exc)
    for record in recent:  # ended while the log could not be written: memory has them
        if record.info.id not in found:
            found[record.info.id] = _from_record(record)
    windows = list(found.values())
    return Finished(windows, max(expected - len(windows), 0), problem)


def llm_calls(session) -> Calls:
    """Every LLM call of ``session`` as ``Usage`` (what ``%cost compare`` prices)."""
    usages = session.usages
    if usages.complete:
        return Calls([u for u in list(usages) if u.meter == "llm"])
    return read_calls(session)


def read_calls(session) -> Calls:
    """:func:`llm_calls` read from the spend log (plus what memory has that the log lacks)."""
    expected = session.usages.appended  # every meter's: the log's usage events count alike
    recent = [u for u in list(session.usages) if u.meter == "llm"]
    logged = 0
    calls: list[Usage] = []
    seen: set[tuple[str, str]] = set()
    problem = _unsaved(session)
    try:
        session.flush()
        for event in _scan(session.ledger_path, b'"window_ids"', None):
            if "quantities" not in event or event.get("cumulative") or "meter" not in event:
                continue
            logged += 1
            if event["meter"] == "llm":
                calls.append(_usage(event))
                seen.add((event["ts"], calls[-1].key))
    except LedgerError as exc:
        problem = str(exc)
    for usage in recent:  # logged while the log could not be written: memory has them
        if (iso_utc(usage.at.timestamp()), usage.key) not in seen:
            calls.append(usage)
            logged += 1
    return Calls(calls, max(expected - logged, 0), problem)


# -- reading the log ---------------------------------------------------------------------------

def _scan(path, marker: bytes, keep) -> Iterator[dict[str, Any]]:
    """The valid events of the log at ``path`` whose line holds ``marker`` and passes ``keep``
    (a cheap test on the raw line), parsed one at a time. Damaged lines are skipped, as every
    reader does (:mod:`nbcost.logcheck`); an unreadable log is a :class:`LedgerError`."""
    try:
        with open(path, "rb") as src:
            for raw in lines_holding(src, marker):
                if keep is not None and not keep(raw):
                    continue
                event, problem = parse_line(raw)
                if problem is None and event_problem(event) is None:
                    yield event
    except OSError as exc:
        raise LedgerError(f"cannot read the spend log {path} "
                          f"({exc.strerror or exc})") from exc


def _maybe_top_level(raw: bytes) -> bool:
    """False only for a line that is surely a nested window's: the ledger writes compact JSON,
    so a top-level window's line always holds ``"parent_id":null`` (a quote inside a label or
    tag is escaped, so these bytes cannot come from one)."""
    return b'"parent_id":null' in raw or b'"parent_id":"' not in raw


def _unsaved(session) -> str | None:
    unsaved = session.unsaved_events
    if unsaved:
        return (f"the spend log cannot be written now ({unsaved:,} event{'s' * (unsaved != 1)} "
                "not saved yet)")
    return None


# -- one shape from memory or from the log ------------------------------------------------------

def _from_record(record) -> FinishedWindow:
    info = record.info
    return FinishedWindow(info.id, info.kind, info.start, info.end, record.compact())


def _from_event(event: dict[str, Any]) -> FinishedWindow:
    from .run_cells import compact_from_event  # the kernel's compact record, built from the log

    start, end = parse_ts(event.get("started_at")), parse_ts(event.get("ended_at"))
    return FinishedWindow(event["window_id"], event.get("kind") or "cell",
                          start.timestamp() if start else 0.0, end.timestamp() if end else None,
                          compact_from_event(event))


def _usage(event: dict[str, Any]) -> Usage:
    cost = event.get("cost_usd")
    return Usage(meter=event["meter"], event=event["event"], key=str(event.get("key")),
                 quantities=dict(event["quantities"]),
                 cost_usd=None if cost is None else Decimal(cost),
                 attributes=dict(event.get("attributes") or {}),
                 flags=tuple(event.get("flags") or ()), at=parse_ts(event["ts"]))
