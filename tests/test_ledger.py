"""The spend log: flushed as it happens, read back even when torn."""

from __future__ import annotations

import json
import re
import threading
from decimal import Decimal

import pytest

from nbcost.errors import LedgerError
from nbcost.ledger import SCHEMA_VERSION, Ledger, find_logs, read_log, read_logs


def test_each_event_is_on_disk_before_append_returns(tmp_path):
    ledger = Ledger(tmp_path / "s.jsonl", {"session_id": "s1"})
    ledger.append("cell_start", {"cost_usd": Decimal("0.10"), "tags": {"a": "b"}})
    # Read through a separate handle while the writer is still open: nothing is buffered.
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    event = json.loads(lines[0])
    assert event["cost_usd"] == "0.10" and event["session_id"] == "s1"
    assert event["schema"] == SCHEMA_VERSION and event["ts"].endswith("Z")
    ledger.close()


def test_window_edges_are_written_soon_and_money_events_keep_the_order(tmp_path, wait_until):
    path = tmp_path / "s.jsonl"
    ledger = Ledger(path, {"session_id": "s1"})
    ledger.append("cell_start", {"window_id": "w"}, durable=False)
    # Queued for the writer thread: on disk within moments, without flush() or close().
    assert wait_until(lambda: path.read_text().count("\n") == 1, timeout=5)
    ledger.append("cell_end", {"window_id": "w"}, durable=False)
    ledger.append("llm_call", {"key": "m"})  # durable: written, after what was queued, now
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == [
        "cell_start", "cell_end", "llm_call"]
    ledger.close()


def test_odd_field_values_are_written_as_text_not_dropped(tmp_path):
    """A tag or label nbcost cannot write as JSON (a date, bytes, a lone surrogate, an object)
    is kept as text; the event is never lost, and the line stays valid UTF-8 for exports."""
    import datetime as dt

    path = tmp_path / "s.jsonl"
    ledger = Ledger(path, {})
    ledger.append("cell_start", {"tags": {"day": dt.date(2026, 1, 2), "raw": b"\xffab",
                                          "obj": object(), 3: "int key", (1, 2): "tuple key"},
                                 "label": "bad \udcff label", "wall_s": float("nan")},
                  durable=False)
    ledger.append("llm_call", {"key": "m"})
    ledger.close()
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict: no surrogate escapes made it to disk
    start, call = [json.loads(line) for line in raw.decode().splitlines()]
    assert start["tags"]["day"] == "2026-01-02" and start["tags"]["raw"] == "\\xffab"
    assert start["tags"]["obj"].startswith("<object object") and start["tags"]["3"] == "int key"
    assert start["tags"]["(1, 2)"] == "tuple key"
    assert start["label"] == "bad \ufffd label" and start["wall_s"] is None
    assert call["event"] == "llm_call" and ledger.take_reports() == []


def test_reader_skips_a_torn_last_line_and_says_so(tmp_path):
    path = tmp_path / "s.jsonl"
    ledger = Ledger(path, {"session_id": "s1"})
    ledger.append("session_start", {})
    ledger.append("cell_start", {"window_id": "w"})
    ledger.close()
    with open(path, "a") as f:
        f.write('{"schema":1,"event":"cell_e')  # the kernel died mid-write
    contents = read_log(path)
    assert [e["event"] for e in contents.events] == ["session_start", "cell_start"]
    assert len(contents.warnings) == 1 and "last line is torn" in contents.warnings[0]


def test_reader_skips_corrupt_and_future_lines_without_losing_the_rest(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([
        json.dumps({"schema": 1, "event": "session_start", "session_id": "s1"}),
        "garbage",
        json.dumps({"schema": SCHEMA_VERSION + 1, "event": "cell_end", "session_id": "s1"}),
        json.dumps([1, 2]),
        json.dumps({"schema": 1, "event": "session_end", "session_id": "s1"}),
    ]) + "\n")
    contents = read_log(path)
    assert [e["event"] for e in contents.events] == ["session_start", "session_end"]
    assert len(contents.warnings) == 3
    assert any("upgrade nbcost" in w for w in contents.warnings)


def test_find_logs_walks_folders_and_rejects_missing_paths(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.jsonl", "a/b/two.jsonl", "a/notes.txt"):
        (tmp_path / name).write_text(json.dumps({"schema": 1, "event": "session_start", "session_id": "s"}) + "\n")
    assert [p.name for p in find_logs([tmp_path / "a"])] == ["two.jsonl", "one.jsonl"]
    assert len(read_logs([tmp_path / "a"]).events) == 2
    with pytest.raises(LedgerError, match="no spend log at"):
        list(find_logs([tmp_path / "missing.jsonl"]))


def test_a_buffered_edge_is_the_line_the_whole_record_gives(tmp_path):
    """An edge queued with ``buffer`` (no dict built on the cell's thread) is written as the
    very line its whole record gives (odd values, overrides, no common fields included)."""
    from nbcost.ledger import _line

    for number, common in enumerate(({"session_id": "s1", "user": "ä \u2028", "team": None}, {},
                                      {"user": "bad \udcff"})):
        path = tmp_path / f"{number}.jsonl"
        ledger = Ledger(path, common)
        spliced = ledger._spliced_line(1, "cell_start", "2026-11-28T10:00:00.000000Z", {"a": 1})
        assert (spliced is None) == (number == 2)  # the fast path, unless a common value is odd
        edges = [("cell_start", {"window_id": "w1", "label": 'a "quoted"\nlabel', "tags": {"k": "v"},
                                 "execution_count": 3, "wall_s": 0.1 + 0.2}),
                 ("cell_end", {}),
                 ("track_end", {"label": "bad \udcff", "wall_s": float("nan")}),
                 ("track_start", {"session_id": "overrides the common one"})]
        for event, fields in edges:
            ledger.buffer(event, fields, at="2026-11-28T10:00:00.000000Z")
        ledger.close()
        lines = path.read_bytes().splitlines(keepends=True)
        assert len(lines) == len(edges)
        for line, (event, fields) in zip(lines, edges):
            logged = json.loads(line)
            expected = _line({"schema": SCHEMA_VERSION, "id": logged["id"], "event": event,
                              "ts": "2026-11-28T10:00:00.000000Z", **common, **fields})
            assert line == expected


@pytest.mark.parametrize("common", [{"session_id": "s1", "user": "ä"}, {"user": "bad \udcff"}])
def test_an_edge_queued_for_later_is_built_by_the_writer_in_its_place(tmp_path, wait_until,
                                                                       common):
    """``buffer_later`` (a usual cell's edges): the caller's thread only queues; the writer
    thread builds each line, the one ``buffer`` gives for what ``make`` returns (fields, or
    fields encoded), in the order and with the number it was queued with, also where only
    the careful path writes it. A ``make`` that fails loses its own line, said once, and the
    writer goes on."""
    from nbcost.ledger import _line, encoded_members

    at = "2026-11-28T10:00:00.000000Z"
    built_on = []

    def make(fields):
        built_on.append(threading.current_thread().name)
        return at, fields

    def broken(fields):
        raise RuntimeError("a bug")

    path = tmp_path / "s.jsonl"
    ledger = Ledger(path, common)
    ledger.buffer_later("cell_start", make, {"n": 1, "label": 'a "quoted"\nlabel'})
    ledger.buffer_later("cell_end", broken, {"n": 2})
    ledger.buffer("track_start", {"n": 3}, at=at)
    ledger.buffer_later("cell_end", make, encoded_members({"n": 4, "tags": {"k": "ä"}}))
    assert wait_until(lambda: path.read_bytes().count(b"\n") == 3, timeout=10)
    reports = ledger.take_reports()
    ledger.close()
    assert built_on == ["nbcost-ledger"] * 2  # nobody flushed: the writer built both
    lines = path.read_bytes().splitlines(keepends=True)
    logged = [json.loads(line) for line in lines]
    assert [(e["event"], e["n"]) for e in logged] == [("cell_start", 1), ("track_start", 3),
                                                     ("cell_end", 4)]
    assert [int(e["id"][16:], 16) for e in logged] == [0, 2, 3]  # numbered as queued
    for line, event in zip(lines, logged):
        fields = {k: v for k, v in event.items() if k not in ("schema", "id", "event", "ts")}
        assert line == _line({"schema": SCHEMA_VERSION, "id": event["id"],
                              "event": event["event"], "ts": at, **fields})
    assert logged[2]["tags"] == {"k": "ä"} and logged[0]["label"] == 'a "quoted"\nlabel'
    assert len(reports) == 1 and "a cell_end event could not be written" in reports[0]
    assert "RuntimeError: a bug" in reports[0]


def test_a_written_money_event_is_the_line_append_gives(tmp_path):
    """``write`` (a durable event spliced, no dict built: LLM calls with nobody listening)
    writes the very line ``append`` writes, also where it must fall back to append's path."""
    common = {"session_id": "s1", "user": "ä", "team": None}
    events = [("llm_call", {"window_ids": ["w1"], "cost_usd": "0.0012", "quantities": {"calls": 1},
                            "attributes": {"latency_s": 0.25, "provider": "openai"}}),
              ("llm_call", {"session_id": "overrides"}),
              ("budget", {"label": "bad \udcff"})]
    lines = {}
    for method in ("append", "write"):
        path = tmp_path / f"{method}.jsonl"
        ledger = Ledger(path, common)
        for event, fields in events:
            getattr(ledger, method)(event, fields, at=1_800_000_000.5)
        ledger.close()
        lines[method] = [re.sub(rb'"id":"[0-9a-f]+"', b'"id":""', line)  # ids differ per log
                         for line in path.read_bytes().splitlines()]
    assert lines["write"] == lines["append"] and len(lines["write"]) == len(events)


def test_buffered_edges_wake_the_writer_once_per_burst_not_per_cell(tmp_path, wait_until):
    """The cell's thread never signals another thread per cell: a burst of edges arms the
    writer once; the writer writes them all on its own timer."""
    path = tmp_path / "s.jsonl"
    ledger = Ledger(path, {"session_id": "s1"}, edge_flush_s=0.2)
    wakes = []
    arm = ledger._arm_writer
    ledger._arm_writer = lambda: (wakes.append(1), arm())
    for number in range(1000):
        ledger.buffer("cell_end", {"window_id": f"w{number}"}, at="2026-11-28T10:00:00.000000Z")
    assert wait_until(lambda: path.read_text().count("\n") == 1000, timeout=10)
    # 1,000 appends take a few ms; on a loaded machine a pause longer than the writer's timer
    # can split the burst, but never into anything like one wake per edge.
    assert 1 <= len(wakes) <= 10
    ledger.close()


def test_a_long_burst_of_edges_is_written_whole(tmp_path):
    """More edges queued than the ledger would hold for an unwritable log (a tight loop of
    ``track()`` blocks while the writer waits for the GIL) are all written: only a log that
    cannot be written drops its oldest held lines."""
    from nbcost.ledger import MAX_HELD

    path = tmp_path / "s.jsonl"
    ledger = Ledger(path, {"session_id": "s1"}, edge_flush_s=3600)
    count = MAX_HELD + 20_000
    for number in range(count):
        ledger.buffer("track_end", {"n": number}, at="2026-11-28T10:00:00.000000Z")
    ledger.flush()
    numbers = [json.loads(line)["n"] for line in path.read_text().splitlines()]
    assert numbers == list(range(count))
    assert ledger.take_reports() == []
    ledger.close()
