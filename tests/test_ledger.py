"""The spend log: flushed as it happens, read back even when torn."""

from __future__ import annotations

import json
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
