"""The reader rules' fast paths (nbcost.logcheck) give what the general paths give: orjson reads
a line as the json module would, nbcost's own timestamps parse to the same moment, and the lines
found by searching blocks are the lines iter_lines gives."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from nbcost import logcheck
from nbcost.logcheck import iter_lines, lines_holding, parse_line, parse_ts, ts_problem

LINES = [
    b'{"a": 1, "b": [1.5, -0.0, -0, 1e2, 0.1e1], "c": "caf\\u00e9 \xe2\x82\xac", "d": null}',
    b'{"n": 123456789012345678901234567890}',  # beyond 64 bits: an int, never a float
    b'{"n": [-9223372036854775809, 18446744073709551615]}',
    b'{"n": 9223372036854775807, "wall_s": 0.00001680500281509012}',
    b'{"label": ":1234567890123456789012 in a string"}',
    b'{"x": 1e400}',  # json: inf (a reader then rejects it where it matters)
    b'{"s": "\\ud800"}',  # a lone surrogate: json takes it
    b'{"a": 1, "a": 2, "b": 3}',
    b'{"v": NaN}', b'{"v": Infinity}', b'{"v": 01}', b'{"v": "\x01"}', b"{",
    b'\xef\xbb\xbf{"bom": 1}', b'  {"space": 1}  ', b'\xff\xfe', b'[1, 2]', b'12345678901234567890',
]


def json_module_reading(raw: bytes):
    """What parse_line gave before orjson: the json module's value or reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start + 1})"
    try:
        return json.loads(text, parse_constant=logcheck._reject_constant), None
    except RecursionError:
        return None, "nested too deeply"
    except ValueError:
        return None, "not JSON"


def same(a, b) -> bool:
    """Equal values of the same types all the way down (1 is not 1.0, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


@pytest.mark.parametrize("raw", LINES)
def test_a_line_reads_as_the_json_module_reads_it(raw):
    value, problem = parse_line(raw)
    expected, expected_problem = json_module_reading(raw)
    assert problem == expected_problem
    assert same(value, expected), (value, expected)


@pytest.mark.parametrize("text", [
    "2026-11-28T14:16:23.798920Z", "2026-11-28T00:00:00.000000Z", "2024-02-29T23:59:59.999999Z",
    "2026-11-28T14:16:23.7989Z", "2026-11-28 14:16:23.798920Z", "2026-11-28T14:16:23.798920123Z",
    "2026-11-28T14:16:23+02:00", "2026-02-30T14:16:23.798920Z", "2026-13-01T00:00:00.000000Z",
    "２０２６-11-28T14:16:23.798920Z", "2026-11-28T14:16:23.798920z", "2026-11-28T14:16:23.798920",
])
def test_nbcost_timestamps_parse_as_the_general_path_parses_them(text):
    def general(value):
        value = logcheck._FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value, count=1)
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))

    def outcome(parse, value):
        try:
            return parse(value)
        except ValueError:
            return "ValueError"

    assert outcome(parse_ts, text) == outcome(general, text)
    if logcheck._TS.fullmatch(text):
        expected = (None if outcome(general, text) != "ValueError"
                    else f"timestamp {json.dumps(text)[:40]} is not a real date and time")
    else:
        expected = f"timestamp {json.dumps(text)[:40]} is not ISO 8601 with a zone (…Z)"
    assert ts_problem(text) == expected


def test_the_lines_found_by_block_are_the_lines_iter_lines_gives(monkeypatch):
    monkeypatch.setattr(logcheck, "MAX_LINE_BYTES", 40)
    content = (b'{"event":"cell_end","x":1}\n'
               b'{"event":"cell_start"}\r\n'
               b'{"event":"track_end","label":"' + b"x" * 60 + b'"}\n'  # too long: never given
               b'\n'
               b'_end" at the very start\r\r\n'
               b'no marker here at all, and long enough to cross several blocks\n'
               + b'a' * 35 + b'_end"\n'  # forty bytes: kept
               + b'a' * 36 + b'_end"\n'  # forty-one: too long
               + b'{"event":"session_end"}')  # torn: no newline
    expected = [raw for _, raw, _ in iter_lines(io.BytesIO(content))
                if raw is not None and b'_end"' in raw]
    assert len(expected) == 4
    for block in (1, 2, 3, 7, 16, 41, 64, 1 << 20):
        monkeypatch.setattr(logcheck, "BLOCK_BYTES", block)
        assert list(lines_holding(io.BytesIO(content), b'_end"')) == expected, block
