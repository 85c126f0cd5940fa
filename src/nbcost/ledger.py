"""The spend log: one append-only JSONL file per session, and its reader.

Every event is one line, written and flushed the moment it happens, so a kernel killed mid-cell
leaves everything up to its last event on disk. The schema is documented in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import stat
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import orjson

from .errors import LedgerError
from .logcheck import MAX_LINE_BYTES

__all__ = ["SCHEMA_VERSION", "Ledger", "LedgerContents", "find_logs", "iter_log", "read_log",
           "read_logs"]

SCHEMA_VERSION = 1
_WARNED_LINES = 5  # damaged lines named per log; the rest are counted
EVENTS = ("session_start", "cell_start", "cell_end", "track_start", "track_end", "llm_call",
          "gpu_checkpoint", "budget", "session_end")


_second_prefix: tuple[int, str] = (-1, "")  # the last whole second formatted: cells are frequent


def iso_utc(moment: dt.datetime | float) -> str:
    """``2026-11-27T09:15:02.123456Z``: ISO 8601 in UTC, always with the Z."""
    global _second_prefix
    if type(moment) is not float and isinstance(moment, dt.datetime):
        moment = moment.timestamp()
    seconds = int(moment)
    micros = round((moment - seconds) * 1e6)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    cached = _second_prefix
    if cached[0] != seconds:
        cached = _second_prefix = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                          time.gmtime(seconds)))
    return f"{cached[1]}.{micros:06d}Z"


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, (set, tuple, frozenset)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)  # a tag or label of any other type is kept as its text, never dropped


_ENCODER = json.JSONEncoder(default=_encode, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def _plain(value: Any) -> Any:
    """``value`` made writable as JSON: text keys, no lone surrogates (they are not UTF-8 and
    would break every export of the line), no NaN. Only for a record the fast path refused."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, Mapping):
        return {_plain(_key(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int)):
        return value
    return _plain(_encode(value))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    return _encode(key) if isinstance(key, (bytes, bytearray, dt.date, Decimal)) else str(key)


# orjson: ~15x faster than the json module on our events, which is most of what a cell's edges
# cost. Datetimes and dataclasses go to ``_encode`` (our UTC format, text), like json's default.
_ORJSON_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_ORJSON_OPTIONS = _ORJSON_PASSTHROUGH | orjson.OPT_APPEND_NEWLINE


def encoded_members(fields: Mapping[str, Any]) -> bytes | None:
    """``fields`` as :func:`_line` writes them inside an event's braces (what a
    :meth:`Ledger.buffer_later` edge may give); None where only the careful path can write them."""
    try:
        return orjson.dumps(fields, default=_encode, option=_ORJSON_PASSTHROUGH)[1:-1]
    except (TypeError, ValueError):
        return None


def _line(record: Mapping[str, Any]) -> bytes:
    """One event as a JSON line (UTF-8 bytes with the newline)."""
    try:
        return orjson.dumps(record, default=_encode, option=_ORJSON_OPTIONS)
    except (TypeError, ValueError):  # odd keys, NaN, a lone surrogate: the slow, careful path
        return (_ENCODER.encode(_plain(record)) + "\n").encode()


#: How often buffered cell and block edges reach the log (so a ``kill -9`` loses at most about
#: this much of them, plus one write).
EDGE_FLUSH_S = 0.05

#: Lines written in one go while a long queue drains.
_WRITE_BATCH = 4096

#: The most events held in memory while the log cannot be written; older ones are dropped.
MAX_HELD = 50_000


class Ledger:
    """Appends events to ``path``: one JSON line each, in order, to an ``O_APPEND`` file.

    A *durable* event (money: LLM calls, budgets, GPU checkpoints, session start and end) reaches
    the OS before ``append`` returns, so it survives the process being killed. Cell and block edges
    are buffered and written by a writer thread every ``edge_flush_s`` (50 ms): the cell's thread
    only appends to a deque, never wakes another thread per cell (each wake hands the GIL to that
    thread, on a busy machine after a scheduler slice). The writer is woken by the first edge
    after it went idle, sleeps ``edge_flush_s`` and writes everything then queued; it goes back
    to waiting only once the queue is empty. So a process killed with ``kill -9`` loses at most
    the edges of its last ``edge_flush_s`` plus one write (docs/schema.md says 100 ms); the
    Session makes the end of a window that cost money durable. A durable append first writes
    everything queued before it, so the file keeps the order events happened in.

    The ledger never raises for a log it cannot write (a full disk, a read-only or deleted folder,
    a folder another user planted: see :mod:`nbcost.logfile`): it holds the events in memory,
    retries with every new event, re-creates a deleted log, and starts on a fresh line after a
    write cut short. What the user should hear about is queued as text for :meth:`take_reports`:
    the ledger itself never calls back into its owner, so no lock of the owner's can ever wait on
    the ledger's write lock while the writer thread waits on it (the kernel would hang).
    A failure is said at once, then at most once per ``report_every_s`` while it lasts, with the
    number of events not yet saved; recovery and any events lost are said too.
    """

    def __init__(self, path: Path, common: Mapping[str, Any], *, root: Path | None = None,
                 report_every_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 edge_flush_s: float = EDGE_FLUSH_S) -> None:
        self.path = path
        self.root = root if root is not None else path.parent  # created folders start below it
        self.common = dict(common)  # fields every event carries: session, notebook, user...
        # ...encoded once for buffered edges (see _spliced_line); None: not spliceable.
        self._common_keys = frozenset(self.common)
        self._common_json: bytes | None = b""
        if self.common:
            try:
                self._common_json = b"," + orjson.dumps(
                    self.common, default=_encode, option=_ORJSON_PASSTHROUGH)[1:-1]
            except (TypeError, ValueError):
                self._common_json = None
        self._edge_flush_s = edge_flush_s
        # Event ids: a random prefix per log and a counter, unique without a syscall per event.
        self._id_prefix = uuid.uuid4().hex[:16]
        self._sequence = itertools.count()
        # A line's parts before and after its event number, encoded once.
        self._id_head = b'{"schema":%d,"id":"%s' % (SCHEMA_VERSION, self._id_prefix.encode())
        self._event_heads: dict[str, bytes] = {}
        self._writer_armed = False  # the writer is awake or about to be: no need to wake it
        # Records (dicts) and buffered edges (tuples), appended by any thread, drained in order
        # under _write_lock.
        self._queue: deque[dict | tuple] = deque()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        # Under _write_lock: encoded lines not yet in the file, and the file's state.
        self._held: deque[bytes] = deque()
        self._fd: int | None = None
        self._torn = False  # the file ends in a partial line: write a newline before the next
        self._failure: OSError | None = None  # why the held lines are not written yet
        self._dropped = 0  # events lost for good (more than MAX_HELD held)
        # Reports for the owner, appended under _write_lock, taken by any thread (deque ops are
        # atomic); rate limiting by ``clock``.
        self._reports: deque[str] = deque()
        self._report_every_s = report_every_s
        self._clock = clock
        self._last_report = 0.0
        with self._write_lock:
            self._reopen()
        self._writer = threading.Thread(target=self._write_when_woken, name="nbcost-ledger",
                                        daemon=True)
        self._writer.start()

    # -- appending ------------------------------------------------------------------------

    def append(self, event: str, fields: Mapping[str, Any], at: float | str | None = None,
               durable: bool = True) -> dict:
        """Log one event (``at``: when, as epoch seconds or an already formatted UTC time);
        return it as logged (a JSON-able dict: do not change it). A non-durable event is
        buffered (see the class doc)."""
        if self._closed:
            raise LedgerError(f"the spend log {self.path} is closed")
        record = {
            "schema": SCHEMA_VERSION,
            "id": f"{self._id_prefix}{next(self._sequence):08x}",
            "event": event,
            "ts": at if isinstance(at, str) else iso_utc(time.time() if at is None else at),
            **self.common,
            **fields,
        }
        if durable:  # written now, after whatever was queued before it
            with self._write_lock:
                self._hold_queued()
                self._hold_line(record)
                self._write_held()
            return record
        self._queue.append(record)
        if not self._writer_armed:
            self._arm_writer()
        return record

    def write(self, event: str, fields: Mapping[str, Any], at: float | str | None = None) -> None:
        """Log a durable event without building the logged dict (what :meth:`append` returns):
        an LLM call's line is spliced and written straight to the file when nothing waits
        before it (the cheapest durable write; any other state takes ``append``'s path)."""
        if self._closed:
            raise LedgerError(f"the spend log {self.path} is closed")
        number = next(self._sequence)
        ts = at if isinstance(at, str) else iso_utc(time.time() if at is None else at)
        line = self._spliced_line(number, event, ts, fields)
        with self._write_lock:
            if (line is None or self._queue or self._held or self._fd is None
                    or self._failure is not None or self._torn or self._deleted()):
                self._hold_queued()
                if line is None:
                    self._hold_line(self._record(number, event, ts, fields))
                else:
                    self._hold(line)
                self._write_held()
                return
            written = 0
            try:
                written = os.write(self._fd, line)
                while written < len(line):  # a write cut short: the rest
                    written += os.write(self._fd, memoryview(line)[written:])
            except OSError as exc:
                self._held.append(line)
                self._keep_unwritten(written)
                self._failed(exc)

    def buffer(self, event: str, fields: Mapping[str, Any], at: str) -> None:
        """Queue a cell or block edge for the writer thread without building the logged dict
        (what :meth:`append` returns): the cheapest way to log when nobody listens. ``fields``
        must not change afterwards; ``at`` is a time :func:`iso_utc` formatted."""
        if self._closed:
            raise LedgerError(f"the spend log {self.path} is closed")
        self._queue.append((next(self._sequence), event, at, fields))
        if not self._writer_armed:
            self._arm_writer()

    def buffer_later(self, event: str,
                     make: Callable[[Any], tuple[str, Mapping[str, Any] | bytes]],
                     source: Any) -> None:
        """:meth:`buffer` for an edge whose time and fields ``make(source)`` gives when it is
        written: the caller's thread only queues it, and the writer builds a burst of lines
        together, its code warm (inside a cell, each function and object touched costs several
        times its price in a loop). The fields may come encoded (:func:`encoded_members`), and
        must not override a common one. ``make`` runs on whichever thread writes, under the
        write lock, in the order edges were queued: it must take no lock and read only what no
        other thread changes meanwhile (a cell's note: see ``Session.open_cell``)."""
        if self._closed:
            raise LedgerError(f"the spend log {self.path} is closed")
        self._queue.append((next(self._sequence), event, make, source))
        if not self._writer_armed:
            self._arm_writer()

    def _arm_writer(self) -> None:
        self._writer_armed = True
        self._wake.set()

    def flush(self) -> None:
        """Write every event queued so far; return once they reached the OS (or, when the log
        cannot be written now, once they are held for the next try and the failure reported)."""
        with self._write_lock:
            self._hold_queued()
            if self._held:
                self._write_held()

    def _hold_queued(self) -> None:
        queue, held, hold = self._queue, self._held, self._hold
        while queue:
            item = queue.popleft()
            if type(item) is dict:  # a record
                self._hold_line(item)
            else:  # a buffered edge: (number, event, at, fields) or (number, event, make, source)
                number, event, at, fields = item
                if type(at) is not str:  # buffer_later's: made here, in a burst (see there)
                    try:
                        at, fields = at(fields)
                    except Exception as exc:  # noqa: BLE001 - a bug must not stop the writer
                        self._reports.append(f"nbcost: a {event} event could not be written to "
                                             f"the spend log ({type(exc).__name__}: {exc}) and "
                                             "is lost.")
                        continue
                line = self._spliced_line(number, event, at, fields)
                if line is None:  # an edge only the careful path writes
                    self._hold_line(self._record(number, event, at, fields))
                else:
                    hold(line)
            if len(held) >= _WRITE_BATCH and self._failure is None:
                self._write_held()  # a long queue (a burst of blocks) is written as it goes:
                # only a log that cannot be written holds lines (and drops past MAX_HELD)

    def _record(self, number: int, event: str, at: str, fields: Mapping[str, Any] | bytes
                ) -> dict:
        if type(fields) is bytes:  # encoded (a buffer_later edge's): the careful path's dict
            fields = orjson.loads(b"{%s}" % fields)
        return {"schema": SCHEMA_VERSION, "id": f"{self._id_prefix}{number:08x}",
                "event": event, "ts": at, **self.common, **fields}

    def _spliced_line(self, number: int, event: str, at: str,
                      fields: Mapping[str, Any] | bytes) -> bytes | None:
        """Event number ``number``'s line without building its record: its head and the
        common fields are encoded once, the event's own fields spliced after them (a third less
        than merging dicts, on every cell edge and LLM call). The same bytes as :func:`_line`
        of :meth:`_record`; None where splicing cannot promise that (a field that overrides a
        common one, no fields, a value only the careful path writes); fields that come encoded
        are spliced as they are. ``at`` is a time :func:`iso_utc` formatted (plain ASCII:
        written as it is)."""
        common = self._common_json
        event_head = self._event_heads.get(event) or self._event_head(event)
        if type(fields) is bytes:  # encoded already (a buffer_later edge)
            if common is None or not fields:
                return None
            return b'%s%08x%s%s"%s,%s}\n' % (self._id_head, number, event_head, at.encode(),
                                             common, fields)
        if common is None or not fields or not self._common_keys.isdisjoint(fields):
            return None
        try:
            body = orjson.dumps(fields, default=_encode, option=_ORJSON_OPTIONS)
        except (TypeError, ValueError):
            return None
        return b'%s%08x%s%s"%s,%s' % (self._id_head, number, event_head, at.encode(), common,
                                     body[1:])

    def _event_head(self, event: str) -> bytes:
        head = self._event_heads[event] = b'","event":%s,"ts":"' % orjson.dumps(event)
        return head

    def _hold_line(self, record: dict) -> None:
        try:
            self._hold(_line(record))
        except Exception as exc:  # noqa: BLE001 - e.g. a value that contains itself
            self._reports.append(f"nbcost: a {record.get('event')} event could not be "
                                 f"written to the spend log ({type(exc).__name__}: {exc}) and "
                                 "is lost.")

    @property
    def unsaved(self) -> int:
        """Events held in memory because the log could not be written (yet)."""
        return len(self._held)

    @property
    def has_reports(self) -> bool:
        return bool(self._reports)

    def take_reports(self) -> list[str]:
        """What the user should be told about the log since the last call (any thread)."""
        reports = []
        while self._reports:
            reports.append(self._reports.popleft())
        return reports

    # -- writing (under _write_lock) -------------------------------------------------------

    def _hold(self, line: bytes) -> None:
        if len(self._held) >= MAX_HELD:
            self._held.popleft()
            self._dropped += 1
        self._held.append(line)

    def _write_held(self) -> None:
        if self._fd is not None and self._deleted():
            os.close(self._fd)
            self._fd = None
            self._reports.append(f"nbcost: the spend log {self.path} was deleted while in use; "
                                 "nbcost writes a new one there from now on.")
        if self._fd is None and not self._reopen():
            return
        data = b"\n" * self._torn + b"".join(self._held)
        written = 0
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a write cut short: the rest, without a copy
                written += os.write(self._fd, memoryview(data)[written:])
        except OSError as exc:
            self._keep_unwritten(written)
            self._failed(exc)
            return
        self._held.clear()
        self._torn = False
        self._recovered()

    def _keep_unwritten(self, written: int) -> None:
        """After a write cut short: forget the lines that made it whole; a line cut in two stays
        held (whole) and the file gets a newline first, so its torn half is a corrupt line the
        reader skips, not the start of the next event."""
        if self._torn:
            if written == 0:
                return
            written -= 1
            self._torn = False
        while self._held and len(self._held[0]) <= written:
            written -= len(self._held.popleft())
        if written:
            self._torn = True

    def _deleted(self) -> bool:
        try:
            return os.fstat(self._fd).st_nlink == 0
        except OSError:
            return True

    def _reopen(self) -> bool:
        from .logfile import open_log

        try:
            self._fd = open_log(self.root, self.path)
            size = os.fstat(self._fd).st_size
            self._torn = bool(size) and os.pread(self._fd, 1, size - 1) != b"\n"
        except OSError as exc:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: OSError) -> None:
        from .logfile import advice

        first = self._failure is None
        self._failure = exc
        now = self._clock()
        if not first and now - self._last_report < self._report_every_s:
            return
        self._last_report = now
        reason = exc.strerror or str(exc)
        held = len(self._held)
        what = f"{held} event{'s' * (held != 1)} not saved yet"
        if self._dropped:
            what += f", {self._dropped} lost (more than {MAX_HELD} held)"
        if first:
            self._reports.append(
                f"nbcost: cannot write the spend log {self.path} ({reason}); {what}, kept in "
                f"memory and retried with each new event ({advice(exc)}). Costs are still shown; "
                "unsaved events are lost if the kernel stops first.")
        else:
            self._reports.append(f"nbcost: still cannot write the spend log {self.path} "
                                 f"({reason}); {what} ({advice(exc)}).")

    def _recovered(self) -> None:
        if self._failure is None:
            return
        self._failure = None
        self._last_report = 0.0
        lost = f"; {self._dropped} older events were lost" if self._dropped else ""
        self._dropped = 0
        self._reports.append(f"nbcost: the spend log {self.path} is writable again; the events "
                             f"held meanwhile are saved{lost}.")

    def _write_when_woken(self) -> None:
        """Sleep until armed; then write what is queued every ``edge_flush_s`` until it is empty.
        (The cell's thread arms it only when it finds it disarmed: one wake per burst of cells.)"""
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            while not self._closed:
                self._wake.wait(self._edge_flush_s)  # set early only by close()
                self._wake.clear()
                self.flush()
                self._writer_armed = False
                if not self._queue:  # checked after disarming: an edge queued since re-arms
                    break
                self._writer_armed = True

    def close(self) -> None:
        """Write what is queued and close the file. Idempotent; events that still cannot be
        written are reported as lost."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._writer is not threading.current_thread():
            self._writer.join(timeout=5)
        self.flush()
        with self._write_lock:
            if self._held:
                lost = len(self._held) + self._dropped
                reason = self._failure.strerror if self._failure else "not writable"
                self._reports.append(f"nbcost: {lost} event{'s' * (lost != 1)} could not be "
                                     f"written to the spend log {self.path} ({reason}) and are "
                                     "lost.")
                self._held.clear()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@dataclass
class LedgerContents:
    """Events read from one or more spend logs, plus what the reader had to skip."""

    events: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_log(path: Path) -> LedgerContents:
    """Read one spend log. Every line that breaks docs/schema.md's rules (:mod:`nbcost.logcheck`:
    not JSON, a newer schema, a field of the wrong type, longer than a few MB) is skipped and
    said, by line number, never fatal; a torn last line (a kernel killed mid-write) says so.
    A path that is not a regular file (a FIFO, a device) is refused without reading it."""
    contents = LedgerContents()
    contents.events.extend(iter_log(path, contents.warnings))
    return contents


def iter_log(path: Path, warnings: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """:func:`read_log` one event at a time (a long session's log need not fit in memory);
    what it skips is said in ``warnings`` once the log is read."""
    from .logcheck import event_problem, iter_lines, parse_line

    warnings = [] if warnings is None else warnings
    skipped = 0
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise LedgerError(f"cannot read spend log {path}: not a regular file (a FIFO or a "
                              f"device?); give a .jsonl file or a folder of them")
        with open(path, "rb") as src:
            for number, raw, ended in iter_lines(src):
                if raw is not None and not raw.strip():
                    continue
                event, problem = parse_line(raw) if raw is not None else (
                    None, f"longer than {MAX_LINE_BYTES >> 20} MB")
                if problem is None and (problem := event_problem(event)) is None:
                    yield event
                    continue
                skipped += 1
                if skipped > _WARNED_LINES:
                    continue
                if problem == "not JSON":
                    where = "its last line is torn" if not ended else f"line {number} is corrupt"
                    problem = f"{where} (a kernel stopped mid-write?)"
                else:
                    problem = f"line {number}: {problem}"
                warnings.append(f"{path}: {problem}; skipped it")
    except OSError as exc:
        raise LedgerError(f"cannot read spend log {path}: {exc.strerror or exc}") from exc
    if skipped > _WARNED_LINES:
        warnings.append(f"{path}: and {skipped - _WARNED_LINES:,} more damaged lines skipped")


def find_logs(paths: Iterable[Path]) -> Iterator[Path]:
    """The spend logs named by ``paths``: files as given, folders searched for ``*.jsonl``
    (symlinked folders are not followed, so a loop cannot trap the search)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(path.rglob("*.jsonl"))
        elif path.exists():
            yield path
        else:
            raise LedgerError(f"no spend log at {path}: give a .jsonl file or a folder of them")


def read_logs(paths: Iterable[Path]) -> LedgerContents:
    """Every spend log under ``paths``, each event once: a log reached twice (named twice, or
    a copy of it in another folder) adds nothing the second time, as in ``nbcost report``;
    how many were left out is said. A log that cannot be read at all (a FIFO, a device, no
    permission, a symlink loop) found in a folder is skipped with a warning; one named
    directly is an error (:class:`LedgerError`)."""
    from .report.sources import is_jsonl_export

    contents = LedgerContents()
    seen: set[str] = set()  # event ids: unique for ever (a random prefix per session)
    repeated = 0
    for given in paths:
        for path in find_logs([given]):
            if path != given and is_jsonl_export(path):  # `nbcost export -o team/x.jsonl`
                contents.warnings.append(f"{path} is an nbcost export (a table), not a spend "
                                         "log; skipped it")
                continue
            try:
                one = read_log(path)
            except LedgerError as exc:
                if path == given:
                    raise
                contents.warnings.append(f"{exc}; skipped it")
                continue
            for event in one.events:
                event_id = event.get("id")
                if isinstance(event_id, str):
                    if event_id in seen:
                        repeated += 1
                        continue
                    seen.add(event_id)
                contents.events.append(event)
            contents.warnings.extend(one.warnings)
    if repeated:
        contents.warnings.append(f"{repeated:,} event{'s' * (repeated != 1)} read a second time "
                                 "(a log named twice, or a copy of it) counted once")
    return contents
