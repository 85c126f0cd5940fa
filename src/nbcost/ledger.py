"""The spend log: one append-only JSONL file per session, and its reader.

Every event is one line, written and flushed the moment it happens, so a kernel killed mid-cell
leaves everything up to its last event on disk. The schema is documented in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from .errors import LedgerError

__all__ = ["SCHEMA_VERSION", "Ledger", "LedgerContents", "find_logs", "read_log", "read_logs"]

SCHEMA_VERSION = 1
EVENTS = ("session_start", "cell_start", "cell_end", "track_start", "track_end", "llm_call",
          "gpu_checkpoint", "budget", "session_end")


_second_prefix: tuple[int, str] = (-1, "")  # the last whole second formatted: cells are frequent


def iso_utc(moment: dt.datetime | float) -> str:
    """``2026-11-27T09:15:02.123456Z``: ISO 8601 in UTC, always with the Z."""
    global _second_prefix
    if isinstance(moment, dt.datetime):
        moment = moment.timestamp()
    seconds = int(moment)
    micros = int(round((moment - seconds) * 1e6))
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    cached_second, prefix = _second_prefix
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_prefix = (seconds, prefix)
    return f"{prefix}.{micros:06d}Z"


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, (set, tuple, frozenset)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the spend log")


_ENCODER = json.JSONEncoder(default=_encode, separators=(",", ":"))


class Ledger:
    """Appends events to ``path``: one JSON line each, in order, to an ``O_APPEND`` file.

    A *durable* event (money: LLM calls, budgets, GPU checkpoints, session start and end) reaches
    the OS before ``append`` returns, so it survives the process being killed. Cell and block edges
    are queued and written by a writer thread within milliseconds: writing them inline would cost
    two syscalls per cell, each of which hands the GIL to whatever thread waits for it (IPython's
    history writer does, after every cell). A durable append first writes everything queued before
    it, so the file keeps the order events happened in.
    """

    def __init__(self, path: Path, common: Mapping[str, Any],
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.path = path
        self.common = dict(common)  # fields every event carries: session, notebook, user...
        self._on_error = on_error or (lambda exc: None)
        # Event ids: a random prefix per log and a counter, unique without a syscall per event.
        self._id_prefix = uuid.uuid4().hex[:16]
        self._sequence = itertools.count()
        self._queue: deque[dict] = deque()  # appended by any thread; drained under _write_lock
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(
                f"nbcost cannot write its spend log at {path}: {exc.strerror}. "
                f"Set NBCOST_HOME to a writable folder."
            ) from exc
        self._writer = threading.Thread(target=self._write_when_woken, name="nbcost-ledger",
                                        daemon=True)
        self._writer.start()

    def append(self, event: str, fields: Mapping[str, Any], at: float | str | None = None,
               durable: bool = True) -> dict:
        """Log one event (``at``: when, as epoch seconds or an already formatted UTC time);
        return it as logged (a JSON-able dict: do not change it)."""
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
        self._queue.append(record)
        if durable:
            self.flush()
        elif not self._wake.is_set():  # the writer has not run since the last wake-up
            self._wake.set()
        return record

    def flush(self) -> None:
        """Write every event queued so far; return once they reached the OS."""
        with self._write_lock:
            lines = []
            while self._queue:
                record = self._queue.popleft()
                try:
                    lines.append(_ENCODER.encode(record))
                except (TypeError, ValueError) as exc:  # one bad field must not lose the rest
                    self._on_error(exc)
            if not lines or self._fd is None:
                return
            data = ("\n".join(lines) + "\n").encode()
            try:
                while data:
                    data = data[os.write(self._fd, data):]
            except OSError as exc:
                self._on_error(exc)

    def _write_when_woken(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Write what is queued and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._writer is not threading.current_thread():
            self._writer.join(timeout=5)
        self.flush()
        with self._write_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@dataclass
class LedgerContents:
    """Events read from one or more spend logs, plus what the reader had to skip."""

    events: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_log(path: Path) -> LedgerContents:
    """Read one spend log. A torn last line (a kernel killed mid-write) is skipped and reported;
    a corrupt line elsewhere is skipped and reported too, never fatal."""
    contents = LedgerContents()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LedgerError(f"cannot read spend log {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            where = "its last line is torn" if number == len(lines) else f"line {number} is corrupt"
            contents.warnings.append(f"{path}: {where} (a kernel stopped mid-write?); skipped it")
            continue
        if not isinstance(event, dict) or "event" not in event:
            contents.warnings.append(f"{path}: line {number} is not an nbcost event; skipped it")
            continue
        if event.get("schema", 0) > SCHEMA_VERSION:
            contents.warnings.append(
                f"{path}: line {number} has schema {event['schema']}, newer than this nbcost "
                f"({SCHEMA_VERSION}); upgrade nbcost to read it"
            )
            continue
        contents.events.append(event)
    return contents


def find_logs(paths: Iterable[Path]) -> Iterator[Path]:
    """The spend logs named by ``paths``: files as given, folders searched for ``*.jsonl``."""
    for path in paths:
        if path.is_dir():
            yield from sorted(path.rglob("*.jsonl"))
        elif path.exists():
            yield path
        else:
            raise LedgerError(f"no spend log at {path}: give a .jsonl file or a folder of them")


def read_logs(paths: Iterable[Path]) -> LedgerContents:
    contents = LedgerContents()
    for path in find_logs(paths):
        one = read_log(path)
        contents.events.extend(one.events)
        contents.warnings.extend(one.warnings)
    return contents
