"""What makes a spend-log line unreadable: one set of rules for every reader.

``nbcost report`` (its line-by-line reader; its DuckDB scan only *suspects* lines by the same
rules, :mod:`nbcost.report.checks`), ``ledger.read_log`` (``nbcost export``, ``nbcost run``,
``%cost export``) and ``rows.rows_from_events`` all skip a line this module rejects, so no
reader trips over a field of the wrong type and all of them agree on what a log holds.

Rules (docs/schema.md): a line is at most :data:`MAX_LINE_BYTES`, UTF-8 JSON (no ``NaN`` or
``Infinity`` literals), an object with a string ``event``, ``schema`` the integer 1 (a newer
schema is skipped with a hint to upgrade), a ``session_id``; windows have a ``window_id``; every
field a reader uses has its documented type: timestamps are ISO 8601 that say their zone (``Z``
or ``+hh:mm``), money is a decimal string or null, counts and seconds are finite numbers of at
least zero, ids and names are strings, tags an object of plain values.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Iterator

import orjson

__all__ = ["MAX_LINE_BYTES", "event_problem", "iter_lines", "lines_holding", "money_or_none",
           "parse_line", "parse_ts", "ts_problem"]

#: A longer line is skipped unread: an event is a few KB, so this is damage (or /dev/zero).
MAX_LINE_BYTES = 4 << 20
TS_PATTERN = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)"
MONEY_PATTERN = r"-?\d{1,20}(\.\d{1,30})?([eE][-+]?\d{1,3})?"
_TS = re.compile(TS_PATTERN)
_FRACTION = re.compile(r"\.(\d{1,9})")
#: What nbcost itself writes (``ledger.iso_utc``): parsed without the general path's rewrite.
_CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)
#: An integer of 19 digits or more may not fit 64 bits, which orjson reads as a float (the json
#: module as an int): a line that may hold one is read by the json module. Found by mapping
#: every digit to 0 and what can precede a number to ":" (a fraction follows "." instead).
_NUMBER_SHAPE = bytes.maketrans(b"0123456789,[ \t\r\n", b"0000000000::::::")
_LONG_INTEGERS = (b":" + b"0" * 19, b":-" + b"0" * 19)


def _may_hold_a_long_integer(raw: bytes) -> bool:
    shape = raw.translate(_NUMBER_SHAPE)
    return _LONG_INTEGERS[0] in shape or _LONG_INTEGERS[1] in shape
_MONEY = re.compile(MONEY_PATTERN)
_MONEY_LIMIT = Decimal("1e20")  # DECIMAL(38,18) holds less
_INT_LIMIT = 1 << 63  # what an int64 column holds
_TIMES = ("ts", "started_at", "ended_at")
_MONEY_FIELDS = ("cost_usd", "budget_usd", "spent_usd")
STRINGS = ("window_id", "parent_id", "kind", "label", "user", "team", "project",
            "notebook_path", "notebook_id", "cell_id", "status", "meter", "key")
_BOOLS = ("unpriced", "cumulative", "late")
_STRING_TYPES = frozenset((str, type(None)))
_BOOL_TYPES = frozenset((bool, type(None)))
WINDOW_EVENTS = ("cell_start", "cell_end", "track_start", "track_end")


def parse_ts(text: str | None) -> dt.datetime | None:
    """An ISO 8601 timestamp with its zone as an aware datetime (``Z`` and up to nanoseconds,
    which ``fromisoformat`` of Python 3.10 does not take)."""
    if not text:
        return None
    if type(text) is str:
        moment, _problem = _read_ts(text)
        if isinstance(moment, str):
            raise ValueError(moment)
        return moment
    return _parse_ts(text)


def ts_problem(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return _read_ts(value)[1]
    return _ts_problem(value)


# A window's start and end times are each read several times (its lines' ``ts``,
# ``started_at``, ``ended_at``, then its row): the latest few are remembered.
@functools.lru_cache(maxsize=256)
def _read_ts(text: str) -> tuple[dt.datetime | str, str | None]:
    """``text`` parsed (or why not, in ``ValueError``'s words) and :func:`ts_problem`'s answer."""
    if _CANONICAL_TS.fullmatch(text):  # as nbcost writes them: the same moment, faster
        try:
            return dt.datetime.fromisoformat(text[:26] + "+00:00"), None
        except ValueError as exc:
            return str(exc), f"timestamp {_shown(text)} is not a real date and time"
    try:
        moment: dt.datetime | str = _parse_ts(text)
    except ValueError as exc:
        moment = str(exc)
    return moment, _ts_problem(text)


def _parse_ts(text: str) -> dt.datetime:
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def money_or_none(value: Any) -> Decimal | None:
    """A money field as Decimal; ``ValueError`` unless it is null or a finite decimal string."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MONEY.fullmatch(value):
        raise ValueError(f"money must be a decimal string, not {_shown(value)}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"money must be a decimal string, not {value[:40]!r}") from None
    if abs(amount) >= _MONEY_LIMIT:
        raise ValueError(f"money out of range: {value[:40]}")
    return amount


def _ts_problem(value: Any) -> str | None:
    if isinstance(value, str) and _TS.fullmatch(value):
        try:
            _parse_ts(value)
            return None
        except ValueError:
            return f"timestamp {_shown(value)} is not a real date and time"
    return f"timestamp {_shown(value)} is not ISO 8601 with a zone (…Z)"


def _shown(value: Any) -> str:
    try:
        return json.dumps(value)[:40]
    except (ValueError, RecursionError):
        return type(value).__name__


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_line(raw: bytes) -> tuple[Any, str | None]:
    """One line as JSON, or why it is not."""
    if len(raw) > MAX_LINE_BYTES:
        return None, f"longer than {MAX_LINE_BYTES >> 20} MB"
    # orjson first (several times faster on a long session's log); what it refuses, or could
    # read differently (an integer beyond 64 bits), the json module reads, so the result and
    # every reason given are the json module's.
    if not _may_hold_a_long_integer(raw):
        try:
            return orjson.loads(raw), None
        except orjson.JSONDecodeError:
            pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start + 1})"
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except RecursionError:
        return None, "nested too deeply"
    except ValueError:
        return None, "not JSON"


def iter_lines(src: IO[bytes]) -> Iterator[tuple[int, bytes | None, bool]]:
    """``(number, line, ended)`` for each line of a binary file, reading at most
    :data:`MAX_LINE_BYTES` of any line: a longer one comes as ``None`` (the rest of it is
    read past in pieces, never held). ``ended``: the line had its newline."""
    number = 0
    while True:
        line = src.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            ended = False
            while piece := src.readline(1 << 20):
                if piece.endswith(b"\n"):
                    ended = True
                    break
            yield number, None, ended
            continue
        ended = line.endswith(b"\n")
        yield number, line.rstrip(b"\n").rstrip(b"\r"), ended


#: How much of a log :func:`lines_holding` reads at a time.
BLOCK_BYTES = 16 << 20


def lines_holding(src: IO[bytes], marker: bytes) -> Iterator[bytes]:
    """The lines of a binary file that hold ``marker``, as :func:`iter_lines` gives them (a
    line longer than :data:`MAX_LINE_BYTES` never), found by searching blocks of the file: a
    reader that wants one line in ten (``%cost``'s window ends) skips the rest unsplit."""
    carry = b""
    skipping = False  # inside a line too long to keep, until its newline
    while block := src.read(BLOCK_BYTES):
        if skipping:
            newline = block.find(b"\n")
            if newline == -1:
                continue
            block, skipping = block[newline + 1:], False
        data = carry + block if carry else block
        complete = data.rfind(b"\n") + 1
        position = 0
        while (hit := data.find(marker, position, complete)) != -1:
            start = data.rfind(b"\n", 0, hit) + 1
            stop = data.find(b"\n", hit)
            if stop - start <= MAX_LINE_BYTES:
                yield data[start:stop].rstrip(b"\r")
            position = stop + 1
        carry = data[complete:]
        if len(carry) > MAX_LINE_BYTES:
            carry, skipping = b"", True
    if carry and marker in carry:  # a last line without its newline (torn, or being written)
        yield carry.rstrip(b"\r")


def _count_problem(name: str, value: Any) -> str | None:
    """A quantity (a count, seconds, joules...): a finite number of at least zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} must be a number, not {_shown(value)}"
    if isinstance(value, int) and value >= _INT_LIMIT:
        return f"{name} is out of range ({str(value)[:24]})"
    if not math.isfinite(value) or value < 0:
        return f"{name} must be a number of at least 0, not {_shown(value)}"
    return None


def _quantities_problem(where: str, quantities: Any) -> str | None:
    if quantities is None:
        return None
    if not isinstance(quantities, dict):
        return f"{where} is not an object"
    for name, value in quantities.items():
        if (problem := _count_problem(f"{where}.{name}", value)) is not None:
            return problem
    return None


def _strings_problem(name: str, value: Any) -> str | None:
    if value is not None and not (isinstance(value, list)
                                  and all(isinstance(v, str) for v in value)):
        return f'"{name}" must be a list of strings'
    return None


def _meter_problem(name: str, meter: Any) -> str | None:
    if not isinstance(meter, dict):
        return f"meters.{name} is not an object"
    if (problem := _quantities_problem(f"meters.{name}.quantities",
                                       meter.get("quantities"))) is not None:
        return problem
    money_or_none(meter.get("cost_usd"))
    if not isinstance(meter.get("unpriced"), (bool, type(None))):
        return f"meters.{name}.unpriced must be true or false"
    by_key = meter.get("by_key")
    if by_key is not None and not (isinstance(by_key, dict)
                                   and all(isinstance(v, dict) for v in by_key.values())):
        return f"meters.{name}.by_key is not an object of objects"
    detail = meter.get("detail")
    if detail is not None and not isinstance(detail, dict):
        return f"meters.{name}.detail is not an object"
    if name == "local" and (problem := _local_problem(by_key or {}, detail or {})) is not None:
        return problem
    if detail is None:
        return None
    waste = detail.get("waste_usd")
    if waste is not None:
        if not isinstance(waste, dict):
            return f"meters.{name}.detail.waste_usd is not an object"
        for value in waste.values():
            money_or_none(value)
    return _strings_problem(f"meters.{name}.detail.devices", detail.get("devices"))


#: The local meter's money (decimal strings): the GPU cost and the effective $/Mtok.
_LOCAL_MONEY = ("gpu_cost_usd", "input_usd_per_mtok", "output_usd_per_mtok",
                "blended_usd_per_mtok", "usd_per_mtok_input", "usd_per_mtok_output")


def _local_problem(by_key: dict, detail: dict) -> str | None:
    """``meters.local`` (self-hosted generation): money as decimal strings, timings numbers."""
    for row in [detail, *by_key.values()]:
        for key in _LOCAL_MONEY:
            money_or_none(row.get(key))
        for key in ("prefill_s", "decode_s", "generate_s", "calls", "input_tokens",
                    "output_tokens"):
            if row.get(key) is not None and (problem := _count_problem(
                    f"meters.local {key}", row[key])) is not None:
                return problem
    return None


def event_problem(event: Any) -> str | None:
    """Why a parsed spend-log line cannot be used, or None."""
    if not isinstance(event, dict):
        return "not an nbcost event (not a JSON object)"
    kind = event.get("event")
    if not isinstance(kind, str) or not kind:
        return f'not an nbcost event ("event" is {_shown(kind)})'
    schema = event.get("schema")
    if type(schema) is not int:
        return f'"schema" must be the number 1, not {_shown(schema)}'
    if schema > 1:
        return f"schema {schema} is newer than this nbcost reads (1): upgrade nbcost"
    if schema < 1:
        return f'"schema" must be the number 1, not {schema}'
    if not isinstance(event.get("session_id"), str) or not event["session_id"]:
        return "no session_id"
    if kind in WINDOW_EVENTS and not isinstance(event.get("window_id"), str):
        return "a window event without a window_id"
    if kind == "window_amended" and not isinstance(event.get("window_id"), str):
        return "an amendment without the window_id it amends"
    if not isinstance(event.get("origin"), (dict, type(None))):
        return "\"origin\" must be an object"
    for name in _TIMES:
        if (problem := ts_problem(event.get(name))) is not None:
            return f"{name}: {problem}"
    get = event.get
    # Each rule at C speed where every value is plainly right (as a parsed line's are); else
    # field by field, so the first wrong one is the one said.
    if not _STRING_TYPES.issuperset(map(type, map(get, STRINGS))):
        for name in STRINGS:
            if not isinstance(get(name), (str, type(None))):
                return f'"{name}" must be a string, not {_shown(event[name])}'
    if not _BOOL_TYPES.issuperset(map(type, map(get, _BOOLS))):
        for name in _BOOLS:
            if not isinstance(get(name), (bool, type(None))):
                return f'"{name}" must be true or false, not {_shown(event[name])}'
    count = event.get("execution_count")
    if count is not None and (type(count) is not int or not 0 <= count < _INT_LIMIT):
        return f'"execution_count" must be a whole number, not {_shown(count)}'
    if event.get("wall_s") is not None and (problem := _count_problem(
            '"wall_s"', event["wall_s"])) is not None:
        return problem
    for name in ("flags", "window_ids"):
        if (problem := _strings_problem(name, event.get(name))) is not None:
            return problem
    if (problem := _quantities_problem('"quantities"', event.get("quantities"))) is not None:
        return problem
    if event.get("quantities") is not None and not isinstance(event.get("meter"), str):
        return "usage without its meter"
    meters = event.get("meters")
    if meters is not None and not isinstance(meters, dict):
        return '"meters" is not an object of meters'
    try:
        for name in _MONEY_FIELDS:
            money_or_none(event.get(name))
        for name, meter in (meters or {}).items():
            if (problem := _meter_problem(name, meter)) is not None:
                return problem
    except ValueError as exc:
        return str(exc)
    tags = event.get("tags")
    if tags is not None and not (isinstance(tags, dict) and all(
            v is None or isinstance(v, (str, int, bool))
            or (isinstance(v, float) and math.isfinite(v)) for v in tags.values())):
        return '"tags" is not an object of plain values'
    return None
