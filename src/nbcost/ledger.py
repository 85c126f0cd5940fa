"""The spend log: one append-only JSONL file per session, and its reader.

Every event is one line, written and flushed the moment it happens, so a kernel killed mid-cell
leaves everything up to its last event on disk. The schema is documented in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
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


def iso_utc(moment: dt.datetime | float) -> str:
    """``2026-11-27T09:15:02.123456Z``: ISO 8601 in UTC, always with the Z."""
    if isinstance(moment, (int, float)):
        moment = dt.datetime.fromtimestamp(moment, dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


class Ledger:
    """Appends events to ``path``. Thread-safe; each event is one flushed ``write``."""

    def __init__(self, path: Path, common: Mapping[str, Any]) -> None:
        self.path = path
        self.common = dict(common)  # fields every event carries: session, notebook, user...
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")
        except OSError as exc:
            raise LedgerError(
                f"nbcost cannot write its spend log at {path}: {exc.strerror}. "
                f"Set NBCOST_HOME to a writable folder."
            ) from exc

    def append(self, event: str, fields: Mapping[str, Any], at: dt.datetime | None = None) -> str:
        """Write one event; return the JSON line as written."""
        record = {
            "schema": SCHEMA_VERSION,
            "id": uuid.uuid4().hex,
            "event": event,
            "ts": iso_utc(at or dt.datetime.now(dt.timezone.utc)),
            **self.common,
            **fields,
        }
        line = json.dumps(record, default=_encode, separators=(",", ":"))
        with self._lock:
            if self._file.closed:
                raise LedgerError(f"the spend log {self.path} is closed")
            self._file.write(line + "\n")
            self._file.flush()
        return line

    def close(self) -> None:
        with self._lock:
            self._file.close()


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
