"""Hostile files and paths for ``nbcost report``, ``nbcost audit`` and ``nbcost export``: each
gets one line and a clear exit status, never a traceback, a hang or a MemoryError, and what can be
read still is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from report_support import Cell, run_session, session_total

import nbcost.testing
from nbcost.cli import main
from nbcost.errors import LedgerError
from nbcost.ledger import read_log, read_logs
from nbcost.logcheck import MAX_LINE_BYTES
from nbcost.report import load_spend
from nbcost.rows import rows_from_events


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    with nbcost.testing.llm_server() as srv:
        return run_session(srv, tmp_path_factory.mktemp("one"), [
            Cell([("gpt-4o-mini", 1000, 50, 400)], {"exp": "a"}), Cell([("gpt-4o", 500, 20, 0)])])


def _lines(log):
    return log.read_bytes().splitlines()


def _with(log, tmp_path, number: int, line: bytes, name="bad.jsonl"):
    lines = _lines(log)
    lines.insert(number, line)
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _commands(path, tmp_path):
    return {"report": ["report", str(path), "--no-cache", "--format", "json"],
            "report by day": ["report", str(path), "--no-cache", "--by", "day,model",
                              "--since", "2020-01-01"],
            "audit": ["audit", str(path), "-o", str(tmp_path / "audit.html")],
            "export": ["export", "--format", "csv", str(path), "-o", str(tmp_path / "e.csv")]}


# Damage the report already skipped on main, and what crashed `nbcost export` and
# rows_from_events: fields of the wrong type, out of range, or missing.
CELL_END_DAMAGE = [
    ("schema", "1"), ("schema", None), ("event", None), ("event", 5), ("cost_usd", "abc"),
    ("cost_usd", "Infinity"), ("cost_usd", "1e999999"), ("cost_usd", "9" * 30),
    ("cost_usd", {}), ("cost_usd", []), ("cost_usd", 5), ("started_at", "garbage"),
    ("started_at", 5), ("started_at", "2026-11-27T09:00:00"),
    ("ended_at", "2026-13-45T25:61:00Z"), ("session_id", ["a"]), ("window_id", [1]),
    ("execution_count", "x"), ("execution_count", 2 ** 70), ("execution_count", -1),
    ("wall_s", "x"), ("wall_s", {}), ("flags", [1]), ("flags", "s"), ("user", 5),
    ("label", ["x"]), ("meters", "x"), ("meters", {"llm": "x"}),
    ("meters", {"llm": {"cost_usd": "NaN"}}), ("meters", {"llm": {"quantities": "x"}}),
    ("meters", {"llm": {"quantities": {"calls": "x"}}}),
    ("meters", {"llm": {"quantities": {"calls": -5}}}),
    ("meters", {"llm": {"quantities": {"calls": 10 ** 30}}}),
    ("meters", {"gpu": {"detail": {"waste_usd": {"stall": "NaN"}}}}),
]


@pytest.mark.parametrize("field, value", CELL_END_DAMAGE,
                         ids=[f"{f}={json.dumps(v)[:20]}" for f, v in CELL_END_DAMAGE])
def test_a_damaged_window_line_is_skipped_by_every_reader(log, tmp_path, field, value):
    lines = _lines(log)
    number = next(i for i, raw in enumerate(lines) if b'"cell_end"' in raw)
    event = json.loads(lines[number])
    event[field] = value
    lines[number] = json.dumps(event).encode()
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    contents = read_log(path)
    assert len(contents.events) == len(lines) - 1
    assert len(contents.warnings) == 1 and f"line {number + 1}: " in contents.warnings[0]
    rows_from_events(contents.events)
    with load_spend([path], cache=False) as spend:
        assert spend.skipped.counts["lines"][0] == 1
        assert f"{path}:{number + 1}: " in spend.skipped.summary()
    # In memory too (a live session's events): the bad one is left out, not a crash.
    rows_from_events([json.loads(raw) for raw in lines])


def test_no_command_tracebacks_on_a_damaged_line(log, tmp_path, capsys):
    session = json.loads(_lines(log)[0])["session_id"]
    for line in (b'{"schema":1,"event":"llm_call","ts":"2026-11-27T09:00:00","session_id":"%s",'
                 b'"meter":"llm","quantities":{"calls":1},"cost_usd":"NaN"}' % session.encode(),
                 b"[" * 100_000, b"\xff\xfe", b'{"schema":1,"event":"llm_call","x":NaN}'):
        path = _with(log, tmp_path, 3, line)
        for name, argv in _commands(path, tmp_path).items():
            assert main(argv) == 0, name
            err = capsys.readouterr().err
            assert "Traceback" not in err and "internal error" not in err, (name, err)
            assert "skipped" in err, (name, err)


def test_an_export_of_damaged_logs_keeps_the_exact_total(log, tmp_path):
    bad = _with(log, tmp_path, 5, b'{"schema":1,"event":5}')
    assert main(["export", "--format", "jsonl", str(bad), "-o", str(tmp_path / "t.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    total = sum((Decimal(r["cost_usd"]) for r in rows if not r.get("parent_id")), Decimal(0))
    assert total == session_total(log)


def test_a_fifo_a_device_a_symlink_loop_and_an_empty_file_in_the_spend_folder(log, tmp_path,
                                                                             capsys):
    folder = tmp_path / "spend"
    folder.mkdir()
    (folder / "real.jsonl").write_bytes(log.read_bytes())
    os.mkfifo(folder / "fifo.jsonl")  # reading it would wait for a writer for ever
    (folder / "zero.jsonl").symlink_to("/dev/zero")  # never ends
    (folder / "loop.jsonl").symlink_to(folder / "loop.jsonl")
    (folder / "empty.jsonl").write_bytes(b"")
    for name, argv in _commands(folder, tmp_path).items():
        assert main(argv) == 0, name
        err = capsys.readouterr().err
        assert "Traceback" not in err, (name, err)
        for skipped in ("fifo.jsonl", "zero.jsonl", "loop.jsonl"):
            assert skipped in err, (name, err)
    with load_spend([folder], cache=False) as spend:
        assert spend.skipped.counts["files"] == [3, 5]
        summary = spend.skipped.summary()
        assert "a FIFO, not a regular file" in summary and "a device" in summary
        assert "Too many levels of symbolic links" in summary
        assert spend.sql("SELECT sum(cost_usd) FROM windows WHERE parent_id IS NULL"
                         ).fetchone()[0] == session_total(log)
    contents = read_logs([folder])
    assert len(contents.events) == len(_lines(log)) and len(contents.warnings) == 3


def test_a_fifo_or_device_named_directly_is_one_line_and_status_2(tmp_path, capsys):
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        for argv in (["report", str(path)], ["export", "--format", "csv", str(path), "-o",
                                              str(tmp_path / "x.csv")]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.count("\n") <= 2 and "regular file" in err and "Traceback" not in err
    with pytest.raises(LedgerError, match="not a regular file"):
        read_log(fifo)


def test_a_path_under_a_file_is_no_log(log, tmp_path, capsys):
    assert main(["report", str(log / "x.jsonl")]) == 2
    assert "no spend log at" in capsys.readouterr().err


def test_a_line_longer_than_the_cap_is_skipped_unheld(log, tmp_path):
    """A 2 GB line would be a MemoryError if read whole: the readers stop at the cap."""
    lines = _lines(log)
    path = tmp_path / "long.jsonl"
    with open(path, "wb") as out:
        out.write(lines[0] + b"\n")
        out.write(b'{"schema":1,"pad":"' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
        out.write(b"\n".join(lines[1:]) + b"\n")
    contents = read_log(path)
    assert len(contents.events) == len(lines)
    assert "line 2: longer than 4 MB" in contents.warnings[0]
    with load_spend([path], cache=False) as spend:
        assert spend.skipped.counts["lines"][0] == 1
        assert "long.jsonl:2: longer than 4 MB" in spend.skipped.summary()
        assert spend.sql("SELECT sum(cost_usd) FROM windows WHERE parent_id IS NULL"
                         ).fetchone()[0] == session_total(log)


def test_an_output_that_cannot_be_written_is_one_line_before_reading(log, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for flag_target in (tmp_path / "missing" / "x.csv", tmp_path, blocker / "x.csv"):
        for argv in (["report", str(log), "--format", "csv", "-o", str(flag_target)],
                     ["audit", str(log), "-o", str(flag_target)],
                     ["export", "--format", "csv", str(log), "-o", str(flag_target)]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert str(flag_target) in err or "folder" in err, err
    if os.geteuid() != 0:  # root writes anyway
        locked = tmp_path / "locked.csv"
        locked.write_text("")
        locked.chmod(0o400)
        assert main(["report", str(log), "--format", "csv", "-o", str(locked)]) == 2
        assert "permission denied" in capsys.readouterr().err


def test_a_write_that_fails_is_one_line(log, tmp_path, capsys):
    """/dev/full takes the open and fails the write (a full disk)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    for argv in (["report", str(log), "--format", "csv", "-o", "/dev/full"],
                 ["audit", str(log), "-o", "/dev/full"],
                 ["export", "--format", "csv", str(log), "-o", "/dev/full"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "cannot write /dev/full" in err and err.count("\n") == 1, err


def test_report_into_a_closed_pipe_is_quiet(log, tmp_path):
    read, write = os.pipe()
    os.close(read)  # `| head -0`: the reader left before the first line
    try:
        done = subprocess.run([sys.executable, "-m", "nbcost.cli", "report", str(log), "--by",
                               "cell", "--no-cache"], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=240, env={**os.environ})
    finally:
        os.close(write)
    assert done.returncode == 1 and done.stderr == "", done.stderr


def test_a_notebook_that_is_not_one_is_an_unreadable_file(log, tmp_path, capsys):
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "a.ipynb").write_text("not json")
    (tmp_path / "nb" / "b.ipynb").write_text('{"cells": [], "metadata": {"nbcost": "x"}}')
    (tmp_path / "nb" / "c.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code", "metadata": "<b>x</b>", "source": ""},
                   {"cell_type": "code", "metadata": {"nbcost": {"a": [{"b": ["c"]}]}},
                    "source": ""}], "metadata": {"nbcost": [1]}}))
    assert main(["report", str(log), str(tmp_path / "nb"), "--format", "json",
                 "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert Decimal(json.loads(out)["total_usd"]) == session_total(log)
    assert "1 of 3 files unreadable" in err or "1 of 4 files unreadable" in err, err
    assert "a.ipynb: not a readable notebook (not JSON)" in err
    assert "1 of 1 cell records skipped" in err
