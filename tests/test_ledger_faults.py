"""The spend log under faults: a full disk, a read-only or deleted folder, a write cut short, a
write that fails while another thread holds the session's lock. Each lost or held event is
said, and nothing is lost once the disk or folder is back."""

from __future__ import annotations

import json
import os
import shutil
import threading
from decimal import Decimal

import pytest
from faults import FakeOs, fill, no_space, read_only, small_disk
from testmeters import TokenMeter

import nbcost
import nbcost.ledger
from nbcost.config import load_settings
from nbcost.ledger import Ledger, read_log
from nbcost.meters.base import Usage
from nbcost.session import Session


def calls_logged(path) -> int:
    return sum(1 for e in read_log(path).events if e["event"] == "llm_call")


def test_a_failing_write_cannot_deadlock_the_session(monkeypatch):
    """The writer thread fails to write a cell edge while another thread, inside
    ``Session.record``, holds the session's lock and waits for the ledger's. Before, the writer
    called back into the session (to warn) while holding the ledger's lock: a hang for ever."""
    fake = FakeOs()
    monkeypatch.setattr(nbcost.ledger, "os", fake)
    session = Session(load_settings(), meters=[TokenMeter()])
    in_write, recorder_done = threading.Event(), threading.Event()

    def failing_write(fd, data):
        if threading.current_thread().name != "nbcost-ledger":
            raise no_space()
        in_write.set()
        # Hold the ledger's lock until the recording thread holds the session's.
        for _ in range(1000):
            if not session._lock.acquire(blocking=False):
                break
            session._lock.release()
            recorder_done.wait(0.01)
        raise no_space()

    fake.on_write = failing_write
    session.open_window("cell")  # a cell edge: written by the writer thread
    assert in_write.wait(10)
    recorder = threading.Thread(target=lambda: session.meters["tokens"].call("m", 1000),
                                daemon=True)
    recorder.start()
    recorder.join(timeout=20)
    hung = recorder.is_alive()
    recorder_done.set()
    assert not hung, "Session.record and the ledger's writer thread deadlocked"
    fake.on_write = None
    session.close()
    events = [e["event"] for e in read_log(session.ledger_path).events]
    assert events.count("llm_call") == 1 and "cell_start" in events  # held, then written


def test_a_full_disk_is_said_and_every_event_is_saved_when_space_returns(tmp_path, monkeypatch,
                                                                         capsys):
    with small_disk(tmp_path / "disk") as disk:
        monkeypatch.setenv("NBCOST_HOME", str(disk / "home"))
        session = Session(load_settings(), meters=[TokenMeter()])
        tokens = session.meters["tokens"]
        tokens.call("m", 1)
        filler = fill(disk)
        for _ in range(30):  # the log's last page fills, then writes fail
            tokens.call("m", 1000)
        err = capsys.readouterr().err
        assert "cannot write the spend log" in err and "No space left on device" in err
        assert "free some disk space" in err and "not saved yet" in err
        assert session._ledger.unsaved > 0
        filler.unlink()
        tokens.call("m", 1)  # the next event writes everything held
        assert "writable again" in capsys.readouterr().err
        session.close()
        contents = read_log(session.ledger_path)
        assert calls_logged(session.ledger_path) == 32
        # A write cut short leaves at most one torn half, skipped and said; no event is lost.
        assert len(contents.warnings) <= 1
        logged = sum(Decimal(e["cost_usd"]) for e in contents.events if e["event"] == "llm_call")
        assert logged == session.total_usd


@pytest.mark.parametrize("method", ["append", "write"])
def test_a_write_cut_short_starts_a_fresh_line(tmp_path, monkeypatch, method):
    """Part of a line reaches the disk, then the disk is full: when space returns the next
    event must not be glued to the torn half (which would lose it to the reader)."""
    fake = FakeOs()
    monkeypatch.setattr(nbcost.ledger, "os", fake)
    path = tmp_path / "s.jsonl"
    ledger = Ledger(path, {"session_id": "s"})
    getattr(ledger, method)("llm_call", {"n": 1})
    state = {"calls": 0}

    def half_then_full(fd, data):
        state["calls"] += 1
        if state["calls"] == 1:
            return os.write(fd, bytes(data[:10]))  # the real write, of a line's first bytes
        raise no_space()

    fake.on_write = half_then_full
    getattr(ledger, method)("llm_call", {"n": 2})
    assert ledger.unsaved == 1
    fake.on_write = None
    getattr(ledger, method)("llm_call", {"n": 3})
    ledger.close()
    contents = read_log(path)
    assert [e["n"] for e in contents.events] == [1, 2, 3]
    assert len(contents.warnings) == 1 and "line 2 is corrupt" in contents.warnings[0]


@pytest.mark.parametrize("method", ["append", "write"])
def test_failures_are_said_again_with_a_count_not_once_only(tmp_path, monkeypatch, method):
    """A first, harmless oddity (a date tag) must not hide a later full disk; a failure that
    lasts is said again (rate-limited) with the number of events not saved."""
    import datetime as dt

    fake = FakeOs()
    monkeypatch.setattr(nbcost.ledger, "os", fake)
    now = [0.0]
    ledger = Ledger(tmp_path / "s.jsonl", {"session_id": "s"}, report_every_s=60, clock=lambda: now[0])
    ledger.append("cell_start", {"tags": {"day": dt.date(2026, 1, 1)}, "label": b"bytes"})
    assert ledger.take_reports() == []  # written, as text
    fake.on_write = lambda fd, data: (_ for _ in ()).throw(no_space())
    for _ in range(5):
        getattr(ledger, method)("llm_call", {})
    first = ledger.take_reports()
    assert len(first) == 1 and "1 event not saved yet" in first[0]
    now[0] = 61.0
    getattr(ledger, method)("llm_call", {})
    again = ledger.take_reports()
    assert len(again) == 1 and "still cannot write" in again[0] and "6 events not saved" in again[0]
    ledger.close()
    lost = ledger.take_reports()
    assert len(lost) == 1 and "6 events could not be written" in lost[0] and "lost" in lost[0]


@pytest.mark.parametrize("method", ["append", "write"])
def test_too_many_held_events_drop_the_oldest_and_say_how_many(tmp_path, monkeypatch, method):
    fake = FakeOs()
    monkeypatch.setattr(nbcost.ledger, "os", fake)
    monkeypatch.setattr(nbcost.ledger, "MAX_HELD", 3)
    now = [0.0]
    ledger = Ledger(tmp_path / "s.jsonl", {"session_id": "s"}, report_every_s=10, clock=lambda: now[0])
    fake.on_write = lambda fd, data: (_ for _ in ()).throw(no_space())
    for n in range(5):
        getattr(ledger, method)("llm_call", {"n": n})
    now[0] = 11.0
    getattr(ledger, method)("llm_call", {"n": 5})
    assert "3 lost" in ledger.take_reports()[-1]
    fake.on_write = None
    getattr(ledger, method)("llm_call", {"n": 6})
    assert "4 older events were lost" in ledger.take_reports()[-1]  # 0-3: only 3 are held
    ledger.close()
    assert [e["n"] for e in read_log(tmp_path / "s.jsonl").events] == [4, 5, 6]


def test_a_deleted_data_dir_is_made_again_and_later_events_are_kept(tmp_path, monkeypatch,
                                                                    capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("NBCOST_HOME", str(home))
    session = Session(load_settings(), meters=[TokenMeter()])
    tokens = session.meters["tokens"]
    tokens.call("m", 1000)
    shutil.rmtree(home)
    tokens.call("m", 1000)
    tokens.call("m", 1000)
    assert "was deleted while in use" in capsys.readouterr().err
    session.close()
    assert calls_logged(session.ledger_path) == 2  # those after the deletion
    assert (session.ledger_path.stat().st_mode & 0o777) == 0o600
    assert (session.ledger_path.parent.stat().st_mode & 0o777) == 0o700


def test_reset_with_a_read_only_folder_keeps_its_events_until_it_is_writable(tmp_path,
                                                                             monkeypatch, capsys):
    """``%cost reset`` starts a new log in a folder that cannot take new files now: no error,
    one warning, and the new session's events are written once the folder is writable."""
    from IPython.core.interactiveshell import InteractiveShell

    from nbcost.ipython import extension_for

    monkeypatch.setenv("NBCOST_HOME", str(tmp_path / "home"))
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext nbcost", store_history=True)
    try:
        session = extension_for(shell).session
        session.add_meter(TokenMeter())
        folder = session.ledger_path.parent
        with read_only(folder):
            result = shell.run_cell("%cost reset", store_history=True)
            assert result.success, result.error_in_exec
            assert "cannot write the spend log" in capsys.readouterr().err
            session.meters["tokens"].call("m", 1000)
            assert not session.ledger_path.exists()
        session.meters["tokens"].call("m", 1000)
        assert "writable again" in capsys.readouterr().err
        shell.run_cell("x = 1", store_history=True)
    finally:
        shell.run_cell("%unload_ext nbcost", store_history=True)
    events = [e["event"] for e in read_log(session.ledger_path).events]
    assert events[0] == "session_start" and events.count("llm_call") == 2
    assert events[-1] == "session_end" and "cell_end" in events


def test_reset_refuses_while_events_wait_in_memory_and_keeps_them(tmp_path, monkeypatch, capsys):
    """``%cost reset`` while the log cannot be written (the disk is full): ending that log
    would lose the events held for it, so the reset is refused with what to do, and nothing
    changes; once the log is writable, the same reset works and every event is in the log."""
    from IPython.core.interactiveshell import InteractiveShell

    from nbcost.ipython import extension_for

    monkeypatch.setenv("NBCOST_HOME", str(tmp_path / "home"))
    fake = FakeOs()
    monkeypatch.setattr(nbcost.ledger, "os", fake)
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext nbcost", store_history=True)
    try:
        session = extension_for(shell).session
        session.add_meter(TokenMeter())
        first_id, first_log = session.id, session.ledger_path
        fake.on_write = lambda fd, data: (_ for _ in ()).throw(no_space())
        shell.run_cell("import nbcost; nbcost.session().meters['tokens'].call('m', 1000)",
                       store_history=True)
        result = shell.run_cell("%cost reset", store_history=True)
        assert not result.success and session.id == first_id
        said = capsys.readouterr()
        assert "not reset" in said.out + said.err and "Make its folder writable" in said.out + said.err
        assert session.unsaved_events > 0
        fake.on_write = None  # space again
        assert shell.run_cell("%cost reset", store_history=True).success
        assert session.id != first_id
    finally:
        shell.run_cell("%unload_ext nbcost", store_history=True)
    events = [e["event"] for e in read_log(first_log).events]
    assert events.count("llm_call") == 1 and events[-1] == "session_end"


def test_events_are_never_written_through_a_usage_of_the_closed_ledger(tmp_path):
    ledger = Ledger(tmp_path / "s.jsonl", {"session_id": "s"})
    ledger.close()
    with pytest.raises(nbcost.LedgerError, match="closed"):
        ledger.append("llm_call", {})


def test_usage_the_session_logs_while_failing_is_still_in_its_totals(tmp_path, monkeypatch):
    fake = FakeOs()
    monkeypatch.setattr(nbcost.ledger, "os", fake)
    session = Session(load_settings(), meters=[TokenMeter()])
    fake.on_write = lambda fd, data: (_ for _ in ()).throw(no_space())
    session.record(Usage(meter="tokens", event="llm_call", key="m", quantities={"calls": 1},
                         cost_usd=Decimal("0.5")))
    assert session.total_usd == Decimal("0.5")
    fake.on_write = None
    session.close()
    assert calls_logged(session.ledger_path) == 1
    assert json.loads(session.ledger_path.read_text().splitlines()[-1])["event"] == "session_end"


def test_export_while_the_log_cannot_be_written_says_so_and_works_after(tmp_path, monkeypatch,
                                                                        capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from nbcost.ipython import extension_for

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data dir's parent should be")
    monkeypatch.setenv("NBCOST_HOME", str(blocker / "home"))
    shell = InteractiveShell.instance()
    assert shell.run_cell("%load_ext nbcost", store_history=True).success
    try:
        extension_for(shell).session.add_meter(TokenMeter())
        extension_for(shell).session.meters["tokens"].call("m", 1000)
        result = shell.run_cell(f"%cost export {tmp_path / 'out.csv'}", store_history=True)
        assert type(result.error_in_exec).__name__ == "UsageError"
        assert "could not be written" in str(result.error_in_exec)
        blocker.unlink()
        assert shell.run_cell(f"%cost export {tmp_path / 'out.csv'}", store_history=True).success
    finally:
        shell.run_cell("%unload_ext nbcost", store_history=True)
    assert "Traceback" not in capsys.readouterr().err
    assert (tmp_path / "out.csv").read_text().count("\n") >= 2
