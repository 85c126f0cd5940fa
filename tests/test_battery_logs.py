"""A property-based battery over what the readers of spend logs and notebooks are given.

It starts from the lines a real session wrote (the LLM meter against the loopback server, the GPU
meter on the fake NVML) and damages one line: a field set to a value of another type or out of
range, a field deleted, the line cut short, junk bytes put in. Every reader (``ledger.read_log``
for ``nbcost export`` and ``nbcost run``, ``rows.rows_from_events``, the report's line-by-line
reader and its DuckDB scan) must then either read the line or skip it and count it with a reason,
agree with the others on which, and keep the total of the good lines exact (Decimal). Never an
exception out of a reader. Notebook metadata gets the same treatment.

Reproducible in CI: derandomized, no example database, no deadline (a loaded 2-core machine is
slow, not wrong). About 450 generated cases per run, in seconds.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_support import Cell, run_session

import nbcost.testing
from nbcost.ledger import read_log
from nbcost.logcheck import event_problem, parse_line
from nbcost.report import load_spend
from nbcost.report.checks import Skipped
from nbcost.report.logs import read_log_file
from nbcost.report.notebooks import read_notebook
from nbcost.report.sources import NOTEBOOK, Input
from nbcost.rows import rows_from_events
from nbcost.run_cells import compact_from_event

BATTERY = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])
ZERO = Decimal(0)


@pytest.fixture(scope="module")
def real_lines(tmp_path_factory) -> list[bytes]:
    """The lines of one real session: two cells with LLM calls and a GPU held."""
    with nbcost.testing.llm_server() as srv:
        log = run_session(srv, tmp_path_factory.mktemp("real"), [
            Cell([("gpt-4o-mini", 1000, 50, 400)], {"exp": "a"}, label="embed"),
            Cell([("gpt-4o", 500, 20, 0)])])
    return log.read_bytes().splitlines()


# -- damage ----------------------------------------------------------------------------------

ODD_TEXT = ["abc", "NaN", "Infinity", "-Infinity", "1e999", "-1", "0.5", "", "null", "1",
            "2026-11-27T09:00:00", "garbage", "2026-11-27T09:00:00Z", "2026-13-45T25:61:00Z",
            "9" * 40, "\u00e9\u2028", "<script>alert(1)</script>"]
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
              st.floats(), st.sampled_from(ODD_TEXT), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=2),
                            st.dictionaries(st.text(max_size=4), inner, max_size=2)),
    max_leaves=4)
FIELDS = ["schema", "event", "session_id", "window_id", "ts", "started_at", "ended_at",
          "cost_usd", "tags", "meters", "quantities", "execution_count", "wall_s", "flags",
          "window_ids", "meter", "key", "cumulative", "unpriced", "user", "label", "kind",
          "parent_id", "budget_usd", "status", "notebook_path"]


def _paths(value, prefix=()):
    """Every key path of a parsed line, to three levels."""
    if isinstance(value, dict) and len(prefix) < 3:
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _paths(inner, (*prefix, key))


@st.composite
def damaged(draw, lines: list[bytes]) -> tuple[int, bytes]:
    """One of ``lines`` (its index) with one kind of damage."""
    index = draw(st.integers(0, len(lines) - 1))
    raw = lines[index]
    how = draw(st.sampled_from(["set", "set", "set", "delete", "truncate", "junk"]))
    if how == "truncate":
        return index, raw[:draw(st.integers(0, len(raw) - 1))]
    if how == "junk":
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.one_of(st.binary(min_size=1, max_size=4),
                              st.sampled_from([b"\xff", b"\x00", b"[" * 3000, b"\r", b'"'])))
        return index, raw[:at] + junk + raw[at:]
    event = json.loads(raw)
    paths = list(_paths(event))
    path = draw(st.one_of(st.sampled_from(paths), st.sampled_from(FIELDS).map(lambda f: (f,))))
    target = event
    for key in path[:-1]:
        target = target[key]
    if how == "delete":
        target.pop(path[-1], None)
    else:
        target[path[-1]] = draw(VALUES)
    return index, json.dumps(event).encode()


def _with_session(lines: list[bytes], session: str) -> list[bytes]:
    """The same lines as another session (so several copies in one report are not one)."""
    original = json.loads(lines[0])["session_id"].encode()
    return [line.replace(original, session.encode()) for line in lines]


def _on_disk(data: bytes) -> list[bytes]:
    """A file's lines as a reader sees them (junk may hold a line break)."""
    return [raw.rstrip(b"\r") for raw in data.split(b"\n")[:-1]]


def _expected(data: bytes) -> tuple[list[dict], int]:
    """What the rules say of a file: the good events, and how many lines are skipped."""
    good, bad = [], 0
    for raw in _on_disk(data):
        if not raw.strip():
            continue
        event, problem = parse_line(raw)
        if problem is None and event_problem(event) is None:
            good.append(event)
        else:
            bad += 1
    return good, bad


def _top_total(events: list[dict]) -> Decimal:
    return sum((r["cost_usd"] for r in rows_from_events(events) if not r.get("parent_id")), ZERO)


# -- the line-by-line readers ------------------------------------------------------------------

@settings(BATTERY, max_examples=300)
@given(data=st.data())
def test_every_reader_reads_a_damaged_line_or_skips_it_and_says_so(real_lines, tmp_path, data):
    index, line = data.draw(damaged(real_lines))
    lines = [*real_lines[:index], line, *real_lines[index + 1:]]
    path = tmp_path / "log.jsonl"
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(data)
    good, bad = _expected(data)

    contents = read_log(path)  # nbcost export, nbcost run, %cost export
    assert contents.events == good
    assert len(contents.warnings) == bad
    assert all(f"{path}: " in w and "skipped it" in w for w in contents.warnings)

    skipped = Skipped()
    events = read_log_file(str(path), skipped)  # the report's line-by-line reader
    assert len(events) == len(good)
    assert skipped.counts["lines"] == [bad, len([raw for raw in _on_disk(data) if raw.strip()])]
    assert len(skipped.examples) == bad and all(e.startswith(f"{path}:") for e in skipped.examples)

    rows = rows_from_events(good)  # the export table, from what the reader kept
    total = _top_total(good)
    assert isinstance(total, Decimal) and all(isinstance(r["cost_usd"], Decimal) for r in rows)
    if not bad and line == real_lines[index]:
        assert total == _top_total([json.loads(raw) for raw in real_lines])
    # In memory (a live session's events) the same rules leave the same lines out.
    parsed = []
    for raw in _on_disk(data):
        event, problem = parse_line(raw)
        if problem is None:
            parsed.append(event)
    assert _top_total(parsed) == total


# -- the report's DuckDB scan agrees -------------------------------------------------------------

@settings(BATTERY, max_examples=30)
@given(data=st.data())
def test_the_fast_report_reader_agrees_with_the_rules(real_lines, tmp_path_factory, data):
    """Several damaged logs in one report: each log's skipped lines and its total are what the
    rules give, whether the DuckDB scan read it or sent it to the line-by-line reader."""
    folder = tmp_path_factory.mktemp("logs")
    expected = {}
    for number in range(6):
        lines = _with_session(real_lines, f"battery{number:02d}")
        if number:  # one clean copy, read by the fast path alone
            index, line = data.draw(damaged(lines))
            lines[index] = line
        path = folder / f"{number}.jsonl"
        body = b"\n".join(lines) + b"\n"
        path.write_bytes(body)
        good, bad = _expected(body)
        expected[str(path)] = (_top_total(good), bad)
    with load_spend([folder], cache=False) as spend:
        totals = dict(spend.sql("SELECT source_file, sum(cost_usd) FROM windows "
                                "WHERE parent_id IS NULL GROUP BY 1").fetchall())
        assert spend.skipped.counts["lines"][0] == sum(bad for _, bad in expected.values())
    for path, (total, _) in expected.items():
        assert totals.get(path, ZERO) == total, path


# -- notebooks ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_record(real_lines) -> dict:
    end = next(json.loads(raw) for raw in real_lines if b'"cell_end"' in raw)
    return compact_from_event(end)


NOTEBOOK_VALUES = st.one_of(VALUES, st.sampled_from(["<img src=x onerror=alert(1)>", "[]",
                                                     "{}", "\u202e"]))


@settings(BATTERY, max_examples=150)
@given(data=st.data())
def test_a_notebook_with_hostile_metadata_is_read_or_skipped_with_a_reason(real_record, tmp_path,
                                                                           data):
    nb = nbformat.v4.new_notebook()
    record = copy.deepcopy(real_record)
    where = data.draw(st.sampled_from(["record", "record", "whole", "notebook", "cell"]))
    if where == "record":
        paths = list(_paths(record))
        path = data.draw(st.sampled_from(paths))
        target = record
        for key in path[:-1]:
            target = target[key]
        if data.draw(st.booleans()):
            target[path[-1]] = data.draw(NOTEBOOK_VALUES)
        else:
            target.pop(path[-1])
    elif where == "whole":
        record = data.draw(NOTEBOOK_VALUES)
    nb.cells = [nbformat.v4.new_code_cell("x = 1", execution_count=1,
                                          metadata={"nbcost": record}),
                nbformat.v4.new_code_cell("y = 2", execution_count=2,
                                          metadata={"nbcost": copy.deepcopy(real_record)})]
    raw = json.loads(nbformat.writes(nb))
    if where == "notebook":
        raw["metadata"]["nbcost"] = data.draw(NOTEBOOK_VALUES)
    elif where == "cell":
        raw["cells"][0]["metadata"] = data.draw(NOTEBOOK_VALUES)
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps(raw))
    skipped = Skipped()
    rows, cells = read_notebook(Input(str(path), NOTEBOOK), skipped)
    assert len(cells) == 2
    records = skipped.counts.get("cell records", [0, 0])
    assert len(rows) == records[1] - records[0]  # each record read or skipped, none lost
    assert records[0] == len(skipped.examples) <= 1
    assert any(r["cost_usd"] == Decimal(real_record["cost_usd"]) for r in rows)  # the good cell
    for row in rows:
        assert isinstance(row["cost_usd"], Decimal)
        assert row["execution_count"] is None or isinstance(row["execution_count"], int)
        for name in ("label", "cell_id", "status", "notebook_id"):
            assert row.get(name) is None or isinstance(row[name], str)


def test_a_hostile_notebook_through_the_report(real_record, tmp_path, capsys):
    """The engine end to end: a notebook whose metadata is garbage counts what it can."""
    from nbcost.cli import main

    nb = nbformat.v4.new_notebook()
    nb.metadata["nbcost"] = "<script>alert(1)</script>"
    nb.cells = [nbformat.v4.new_code_cell("x", metadata={"nbcost": [1, {"a": "b"}]}),
                nbformat.v4.new_code_cell("y", metadata={"nbcost": real_record})]
    nbformat.write(nb, tmp_path / "a.ipynb")
    (tmp_path / "b.ipynb").write_text("{not json")
    (tmp_path / "c.ipynb").write_text(json.dumps({"cells": "<b>no</b>", "metadata": []}))
    (tmp_path / "d.ipynb").write_text(json.dumps([1, 2]))
    (tmp_path / "e.ipynb").write_bytes(b"\xff\xfe")
    assert main(["report", str(tmp_path), "--format", "html", "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert "4 of 5 files unreadable" in err and "1 of 2 cell records skipped" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "<script>" not in out
