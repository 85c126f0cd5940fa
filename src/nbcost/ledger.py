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
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

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
    """Appends events to ``path``. Thread-safe; each event is one ``write`` to an O_APPEND file,
    so it reaches the OS (and survives the process being killed) before ``append`` returns."""

    def __init__(self, path: Path, common: Mapping[str, Any]) -> None:
        self.path = path
        self.common = dict(common)  # fields every event carries: session, notebook, user...
        self._lock = threading.Lock()
        # Event ids: a random prefix per log and a counter, unique without a syscall per event.
        self._id_prefix = uuid.uuid4().hex[:16]
        self._sequence = itertools.count()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(
                f"nbcost cannot write its spend log at {path}: {exc.strerror}. "
                f"Set NBCOST_HOME to a writable folder."
            ) from exc

    def append(self, event: str, fields: Mapping[str, Any], at: float | str | None = None) -> dict:
        """Write one event (``at``: when, as epoch seconds or an already formatted UTC time);
        return it as written (a JSON-able dict: do not change it)."""
        record = {
            "schema": SCHEMA_VERSION,
            "id": f"{self._id_prefix}{next(self._sequence):08x}",
            "event": event,
            "ts": at if isinstance(at, str) else iso_utc(time.time() if at is None else at),
            **self.common,
            **fields,
        }
        data = (_ENCODER.encode(record) + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise LedgerError(f"the spend log {self.path} is closed")
            os.write(self._fd, data)
        return record

    def close(self) -> None:
        with self._lock:
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
