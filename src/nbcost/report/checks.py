"""What makes a spend-log line unreadable, and the tally of lines skipped.

Two checks with one set of rules. The SQL one (:data:`SQL_MACROS`, used by the bulk reader)
only has to *suspect* a line: a file with any suspect line is read again line by line in
Python by :func:`event_problem`, which decides, gives the reason and the line number. So a
clean file never pays for Python, and every skipped line is named by the same code.

Rules (docs/schema.md): a line is UTF-8 JSON, an object with a string ``event``, ``schema`` the
integer 1 (a newer schema is skipped with a hint to upgrade), a ``session_id``; windows have a
``window_id``; timestamps are ISO 8601 that say their zone (``Z`` or ``+hh:mm``); money is a
decimal string or null (never a float, ``"NaN"`` or an object); tags are an object of scalars.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["SQL_MACROS", "Skipped", "event_problem", "money_or_none", "parse_line"]

TS_PATTERN = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)"
MONEY_PATTERN = r"-?\d{1,20}(\.\d{1,30})?([eE][-+]?\d{1,3})?"
_TS = re.compile(TS_PATTERN)
_MONEY = re.compile(MONEY_PATTERN)
_LIMIT = Decimal("1e20")  # DECIMAL(38,18) holds less
_TIMES = ("ts", "started_at", "ended_at")
_MONEY_FIELDS = ("cost_usd", "budget_usd", "spent_usd")
_WINDOW_EVENTS = ("cell_start", "cell_end", "track_start", "track_end")
SHOWN = 5  # reasons kept with their line numbers; the rest are counted

# DuckDB macros of the same rules. Money fields are read as raw JSON, so a string is quoted.
SQL_MACROS = f"""
CREATE OR REPLACE TEMP MACRO ts_ok(x) AS x IS NULL OR regexp_full_match(x, '{TS_PATTERN}');
CREATE OR REPLACE TEMP MACRO money_ok(x) AS x IS NULL OR x = 'null'
    OR regexp_full_match(x, '"{MONEY_PATTERN}"');
CREATE OR REPLACE TEMP MACRO money(x) AS
    CASE WHEN regexp_full_match(x, '"{MONEY_PATTERN}"')
         THEN TRY_CAST(trim(x, '"') AS DECIMAL(38,18)) END;
CREATE OR REPLACE TEMP MACRO tags_ok(x) AS x IS NULL OR x = 'null'
    OR (json_type(x) = 'OBJECT' AND NOT contains(substr(x, 2), '{{') AND NOT contains(x, '['));
"""


def money_or_none(value: Any) -> Decimal | None:
    """A money field as Decimal; ``ValueError`` unless it is null or a finite decimal string."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MONEY.fullmatch(value):
        raise ValueError(f"money must be a decimal string, not {json.dumps(value)[:40]}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"money must be a decimal string, not {value[:40]!r}") from None
    if abs(amount) >= _LIMIT:
        raise ValueError(f"money out of range: {value[:40]}")
    return amount


def ts_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TS.fullmatch(value):
        return f"timestamp {json.dumps(value)[:40]} is not ISO 8601 with a zone (…Z)"
    return None


def parse_line(raw: bytes) -> tuple[Any, str | None]:
    """One line as JSON, or why it is not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start + 1})"
    try:
        return json.loads(text), None
    except RecursionError:
        return None, "nested too deeply"
    except ValueError:
        return None, "not JSON"


def event_problem(event: Any) -> str | None:
    """Why a parsed spend-log line cannot be used, or None."""
    if not isinstance(event, dict):
        return "not an nbcost event (not a JSON object)"
    kind = event.get("event")
    if not isinstance(kind, str) or not kind:
        return f'not an nbcost event ("event" is {json.dumps(kind)[:40]})'
    schema = event.get("schema")
    if type(schema) is not int:
        return f'"schema" must be the number 1, not {json.dumps(schema)[:40]}'
    if schema > 1:
        return f"schema {schema} is newer than this nbcost reads (1): upgrade nbcost"
    if schema < 1:
        return f'"schema" must be the number 1, not {schema}'
    if not isinstance(event.get("session_id"), str) or not event["session_id"]:
        return "no session_id"
    if kind in _WINDOW_EVENTS and not isinstance(event.get("window_id"), str):
        return "a window event without a window_id"
    for name in _TIMES:
        if (problem := ts_problem(event.get(name))) is not None:
            return f"{name}: {problem}"
    meters = event.get("meters")
    if meters is not None and not (isinstance(meters, dict)
                                   and all(isinstance(m, dict) for m in meters.values())):
        return '"meters" is not an object of meters'
    quantities = event.get("quantities")
    if quantities is not None and not isinstance(quantities, dict):
        return '"quantities" is not an object'
    try:
        for name in _MONEY_FIELDS:
            money_or_none(event.get(name))
        for name, meter in (meters or {}).items():
            money_or_none(meter.get("cost_usd"))
            if not isinstance(meter.get("quantities") or {}, dict):
                return f'meters.{name}.quantities is not an object'
    except ValueError as exc:
        return str(exc)
    tags = event.get("tags")
    if tags is not None and not (isinstance(tags, dict) and all(
            v is None or isinstance(v, (str, int, float, bool)) for v in tags.values())):
        return '"tags" is not an object of plain values'
    return None


@dataclass
class Skipped:
    """Unreadable input: per unit ("lines" of logs and exports, "cell records" of notebooks,
    "files"), how many were skipped of how many read, and the first few with where and why."""

    counts: dict[str, list[int]] = field(default_factory=dict)  # unit -> [skipped, read]
    examples: list[str] = field(default_factory=list)

    def read(self, unit: str, count: int) -> None:
        self.counts.setdefault(unit, [0, 0])[1] += count

    def skip(self, unit: str, where: str, reason: str, count: int = 1) -> None:
        self.counts.setdefault(unit, [0, 0])[0] += count
        if len(self.examples) < SHOWN:
            self.examples.append(f"{where}: {reason}")

    def merge(self, counts: dict[str, list[int]], examples: list[str]) -> None:
        """Add another tally (one file's) to this one."""
        for unit, (skipped, read) in counts.items():
            mine = self.counts.setdefault(unit, [0, 0])
            mine[0] += skipped
            mine[1] += read
        self.examples += examples[:max(0, SHOWN - len(self.examples))]

    @property
    def total(self) -> int:
        return sum(skipped for skipped, _ in self.counts.values())

    def summary(self) -> str | None:
        """One line for the user, or None when everything was read."""
        if not self.total:
            return None
        parts = [f"{skipped:,} of {read:,} {unit} skipped" if unit != "files" else
                 f"{skipped:,} of {read:,} files unreadable"
                 for unit, (skipped, read) in self.counts.items() if skipped]
        more = self.total - len(self.examples)
        return (", ".join(parts) + ": " + "; ".join(self.examples)
                + (f"; and {more:,} more" if more > 0 else ""))
