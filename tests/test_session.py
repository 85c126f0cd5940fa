"""The Session through the meter interface, with meters defined in tests/testmeters.py."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from decimal import Decimal

import pytest
from testmeters import PennyMeter, TokenMeter

import nbcost
from nbcost import BudgetExceeded, api
from nbcost.config import load_settings
from nbcost.ledger import read_log
from nbcost.meters.base import Meter
from nbcost.session import Session


@pytest.fixture
def session():
    s = Session(load_settings(), meters=[PennyMeter(), TokenMeter()])
    yield s
    s.close()


def events(session, kind=None):
    session.flush()
    found = read_log(session.ledger_path).events
    return [e for e in found if kind is None or e["event"] == kind]


def test_discrete_usage_goes_to_every_open_window_and_the_log(session):
    tokens = session.meters["tokens"]
    outer = session.open_window("cell", execution_count=1)
    tokens.call("model-a", 1000)
    inner = session.open_window("track", label="inner")
    tokens.call("model-b", 500)
    inner_record = session.close_window(inner.id)
    outer_record = session.close_window(outer.id)

    assert inner_record.info.parent_id == outer.id
    assert inner_record.meters["tokens"].quantities == {"calls": 1, "tokens": 500}
    assert inner_record.meters["tokens"].cost_usd == Decimal("0.001")
    assert outer_record.meters["tokens"].quantities == {"calls": 2, "tokens": 1500}
    assert outer_record.meters["tokens"].cost_usd == Decimal("0.003")
    assert set(outer_record.meters["tokens"].by_key) == {"model-a", "model-b"}
    calls = events(session, "llm_call")
    assert [c["key"] for c in calls] == ["model-a", "model-b"]
    assert calls[0]["cost_usd"] == "0.002" and calls[0]["execution_count"] == 1
    assert calls[1]["window_ids"] == [outer.id, inner.id]


def test_continuous_meter_is_measured_over_the_window(session):
    window = session.open_window("track")
    time.sleep(0.2)
    record = session.close_window(window.id)
    seconds = record.meters["penny"].quantities["seconds"]
    assert seconds == pytest.approx(record.info.end - record.info.start)
    assert 0.2 <= seconds < 1.0
    assert record.meters["penny"].cost_usd == (Decimal("0.01") * Decimal(str(seconds))).quantize(
        Decimal("1e-9"))
    assert isinstance(record.cost_usd, Decimal)


def test_unpriced_usage_is_never_zero_dollars(session):
    window = session.open_window("cell")
    session.meters["tokens"].call("mystery", 100, priced=False)
    record = session.close_window(window.id)
    assert record.meters["tokens"].unpriced and record.unpriced
    assert events(session, "llm_call")[0]["cost_usd"] is None
    assert record.compact()["unpriced"] is True


def test_events_carry_schema_ids_utc_and_who(session):
    window = session.open_window("cell", cell_id="abc", execution_count=3, tags={"run": "7"})
    session.close_window(window.id)
    written = events(session)
    assert [e["event"] for e in written] == ["session_start", "cell_start", "cell_end"]
    assert len({e["id"] for e in written}) == 3
    for event in written:
        assert event["schema"] == 1 and event["ts"].endswith("Z")
        assert event["session_id"] == session.id and event["user"]
    end = written[-1]
    assert end["cell_id"] == "abc" and end["execution_count"] == 3 and end["tags"] == {"run": "7"}


def test_session_total_includes_usage_outside_windows(session):
    session.meters["tokens"].call("model-a", 1000)  # no window open
    assert session.totals()["tokens"].cost_usd == Decimal("0.002")
    assert session.total_usd >= Decimal("0.002")


def test_session_totals_are_reused_until_usage_or_a_reset_changes_them():
    """The status bar asks for the session's totals at every cell's end: with no usage since
    and meters that measured the same figures, the last ones are reused; never stale."""
    tokens = TokenMeter()
    session = Session(load_settings(), meters=[tokens])
    try:
        tokens.call("m", 1000)
        first = session.totals()
        assert session.totals()["tokens"] is first["tokens"]  # reused, not frozen again
        tokens.call("m", 500)
        assert session.totals()["tokens"].quantities == {"calls": 2, "tokens": 1500}
        assert session.total_usd == TokenMeter.PRICE_PER_TOKEN * 1500
        session.reset()
        assert session.totals() == {}
        tokens.call("m", 10)
        assert session.totals()["tokens"].quantities == {"calls": 1, "tokens": 10}
    finally:
        session.close()


def test_soft_budget_warns_once_at_80_and_100_percent(session, capsys):
    session.settings.budget_usd = Decimal("0.01")
    tokens = session.meters["tokens"]
    session.remove_meter("penny")  # keep the spend exactly the tokens'
    tokens.call("m", 3000)  # $0.006
    tokens.call("m", 1000)  # $0.008 -> 80%
    tokens.call("m", 500)   # $0.009
    tokens.call("m", 1000)  # $0.011 -> 100%
    err = capsys.readouterr().err
    assert err.count("session budget $0.0100: 80 % spent.") == 1
    assert err.count("session budget $0.0100: 110 % spent, $0.0010 over.") == 1
    warnings = [e for e in events(session, "budget") if e["action"] == "warning"]
    assert [w["threshold"] for w in warnings] == ["0.8", "1"]


def test_hard_budget_refuses_before_the_call_and_logs_it(session):
    session.remove_meter("penny")
    session.settings.budget_usd, session.settings.budget_hard = Decimal("0.002"), True
    tokens = session.meters["tokens"]
    tokens.call("m", 1000)
    with pytest.raises(BudgetExceeded) as caught:
        tokens.call("m", 1)
    assert caught.value.budget_usd == Decimal("0.002")
    assert len(events(session, "llm_call")) == 1  # the refused call was never recorded
    assert events(session, "budget")[-1]["action"] == "refused"


class BrokenMeter(Meter):
    name = "broken"

    def measure(self, start, end):
        raise RuntimeError("sensor on fire")


def test_a_failing_meter_flags_the_record_warns_once_and_never_raises(capsys):
    session = Session(load_settings(), meters=[BrokenMeter(), PennyMeter()])
    try:
        for _ in range(3):
            window = session.open_window("cell")
            record = session.close_window(window.id)
            assert "internal_error" in record.flags
            assert "penny" in record.meters  # the other meters still measured
    finally:
        session.close()
    assert capsys.readouterr().err.count("sensor on fire") == 1


class EdgeCounter(Meter):
    """Counts the window edges it is told of; watches windows only when ``watching``."""

    name = "edges"

    def __init__(self, watching: bool) -> None:
        self.watching, self.edges = watching, 0

    @property
    def watches_windows(self) -> bool:
        return self.watching

    def window_started(self, window) -> None:
        self.edges += 1

    def window_ended(self, window) -> None:
        self.edges += 1


@pytest.mark.parametrize("watching", [True, False])
def test_a_meter_that_watches_no_windows_is_not_told_of_them(watching, nbcost_home):
    """A GPU meter without a GPU says so after start: no cell pays for its empty edge calls."""
    meter = EdgeCounter(watching)
    session = Session(load_settings(), meters=[meter])
    try:
        for _ in range(3):
            session.close_window(session.open_window("cell").id)
    finally:
        session.close()
    assert meter.edges == (6 if watching else 0)


class SameFigures(Meter):
    """Measures every window the same, and says whether its figures may vary."""

    name = "same"

    def __init__(self, varies: bool) -> None:
        self.varies, self.asked = varies, 0

    @property
    def measures_windows(self) -> bool:
        return self.varies

    def measure(self, start, end):
        from nbcost.meters.base import Measurement

        self.asked += 1
        return Measurement({"widgets": 1.0}, Decimal(0))


@pytest.mark.parametrize("varies", [True, False])
def test_a_meter_whose_figures_never_vary_is_asked_once(varies, nbcost_home):
    """A GPU meter without a GPU gives every window the same figures: windows without usage
    reuse them; its figures are in every record and line all the same."""
    meter = SameFigures(varies)
    session = Session(load_settings(), meters=[meter, TokenMeter()])
    try:
        records = []
        for calls in (0, 0, 1, 0):
            window = session.open_window("cell")
            for _ in range(calls):
                session.meters["tokens"].call("m", 10)
            records.append(session.close_window(window.id))
        asked = meter.asked  # (session_end measures the session too)
        ends = events(session, "cell_end")
    finally:
        session.close()
    assert asked == (4 if varies else 2)  # (the window with a call is measured anew)
    assert [r.meters["same"].quantities for r in records] == [{"widgets": 1.0}] * 4
    assert [e["meters"]["same"]["quantities"] for e in ends] == [{"widgets": 1.0}] * 4
    assert [sorted(e["meters"]) for e in ends] == [["same"], ["same"], ["same", "tokens"], ["same"]]


def test_the_usual_cell_logs_the_lines_and_keeps_the_record_of_the_general_path(nbcost_home):
    """open_cell/close_cell build a plain cell's lines themselves: the same bytes, keys in the
    same order and the same record as open_window/close_window give the same cell (ids and
    times aside), and a cell that is not plain (a call, a label) takes the general path."""
    from nbcost.ledger import _line

    session = Session(load_settings(), meters=[SameFigures(False), TokenMeter()])
    general_path = session.open_window, session.close_window
    try:
        window = session.open_window("cell", cell_id='say "hi"\\', execution_count=1)
        general = session.close_window(window.id)  # (it also finds the figures that never vary)
        session.open_window = session.close_window = None  # a plain cell needs neither
        plain_id = session.open_cell('say "hi"\\', 2)
        session.close_cell(plain_id, "error")
        plain = session.finished_window(plain_id)
        session.open_window, session.close_window = general_path
        called = session.open_cell(None, 3)
        session.meters["tokens"].call("m", 10)
        session.close_cell(called, "ok")
        labelled = session.open_cell("c4", 4)
        session.annotate_window(labelled, label="tuned")
        session.close_cell(labelled, "ok")
        session.close_cell(session.open_cell("\ud800", 5), "ok")  # only the careful path writes it
        session.flush()
        raw = [line for line in session.ledger_path.read_bytes().splitlines(keepends=True)
               if b'"event":"cell_' in line]
        order = [e["event"] for e in events(session)]
    finally:
        session.close()
    assert order == ["session_start"] + ["cell_start", "cell_end"] * 2 + [  # as they happened
        "cell_start", "llm_call", "cell_end", "cell_start", "cell_end", "cell_start", "cell_end"]
    lines = [json.loads(line) for line in raw]
    assert [line == _line(parsed) for line, parsed in zip(raw[:8], lines)] == [True] * 8
    general_start, general_end, plain_start, plain_end = lines[:4]
    assert list(plain_start) == list(general_start) and list(plain_end) == list(general_end)
    mutable = {"id", "ts", "window_id", "execution_count", "started_at", "ended_at", "wall_s",
               "status"}
    assert {k: v for k, v in plain_end.items() if k not in mutable} == \
        {k: v for k, v in general_end.items() if k not in mutable}
    assert plain_end["status"] == "error" and plain_end["execution_count"] == 2
    assert plain_start["ts"] == plain_start["started_at"] == plain_end["started_at"]
    assert plain_end["ts"] == plain_end["ended_at"]
    assert plain_end["wall_s"] == plain.wall_s and plain.status == "error"
    assert (plain.meters, plain.flags, plain.budget) == (general.meters, (), None)
    assert (plain.info.cell_id, plain.info.execution_count) == ('say "hi"\\', 2)
    assert plain.info.end is not None and plain.info.parent_id is None
    assert lines[5]["cost_usd"] != "0" and lines[5]["meters"]["tokens"]
    assert lines[6]["label"] is None and lines[7]["label"] == "tuned"  # (its start: as opened)
    assert [line["cell_id"] for line in lines[8:]] == ["\ufffd"] * 2


def test_the_usual_cell_is_noted_and_opened_only_when_something_needs_its_window(nbcost_home):
    """open_cell only notes the usual cell (its start still reaches the log); what needs its
    window (a usage from any thread, a block inside it, the running cell's fields, a live
    look, a reset) opens it from the note: same id, start and wall time as if opened at once."""
    import threading

    session = Session(load_settings(), meters=[SameFigures(False), TokenMeter()])
    try:
        session.close_window(session.open_window("cell").id)  # (finds the fixed figures)
        billed = session.open_cell("c1", 1)
        assert session._open_windows == {}  # noted, not opened
        session.flush()
        assert [e["window_id"] for e in events(session, "cell_start")][-1] == billed
        worker = threading.Thread(target=session.meters["tokens"].call, args=("m", 10))
        worker.start()
        worker.join()
        inner = session.open_window("track", label="inner")
        session.close_window(inner.id)
        session.close_cell(billed, "ok")
        billed_record = session.finished_window(billed)

        asked = session.open_cell("c2", 2)
        running = session.current_cell()
        live = session.live_totals(asked)
        session.close_cell(asked, "ok")

        interrupted = session.open_cell("c3", 3)
        session.reset()
        session.close_cell(interrupted, "ok")  # (post_run_cell after `%cost reset`)
        ends = {e["window_id"]: e for e in events(session, "cell_end")}
    finally:
        session.close()
    before_reset = read_log(session.ledger_path.parent / f"{session.parent_session_id}.jsonl")
    assert inner.parent_id == billed
    call = next(e for e in before_reset.events if e["event"] == "llm_call")
    assert call["window_ids"] == [billed] and call["cell_id"] == "c1"
    assert [(e["window_id"], e["status"]) for e in before_reset.events
            if e["event"] == "cell_end"][-1] == (interrupted, "interrupted")
    assert billed_record.meters["tokens"].quantities["calls"] == 1
    assert billed_record.info.start <= inner.start and billed_record.wall_s >= \
        billed_record.info.end - inner.start - 0.001
    assert running == {"cell_id": "c2", "execution_count": 2}
    assert live["status"] == "running" and live["execution_count"] == 2
    assert ends == {}  # the session after the reset logged no cell end


class CellLog:
    """A CellWatcher that notes what it is told (the lab extension's comm is one)."""

    def __init__(self, fail: bool = False) -> None:
        self.told, self.fail = [], fail

    def cell_started(self, info):
        self.told.append(("started", info.id, info.cell_id))
        if self.fail:
            raise RuntimeError("panel on fire")

    def cell_ended(self, record):
        self.told.append(("ended", record.info.id, record.status, record))

    def session_started(self):
        self.told.append(("session",))


def test_cell_watchers_see_every_top_level_cell_and_leave_the_usual_one_its_path(nbcost_home,
                                                                                    capsys):
    """Unlike a listener, a cell watcher does not send the usual cell down the general path;
    it is told of top-level cells on either path (not of the blocks inside them), of each
    cell's complete record and of a reset. One that fails is said once and breaks nothing."""
    session = Session(load_settings(), meters=[SameFigures(False), TokenMeter()])
    watcher, broken = CellLog(), CellLog(fail=True)
    undo = session.watch_cells(watcher)
    try:
        session.close_window(session.open_window("cell").id)  # (finds the fixed figures)
        watcher.told.clear()
        general_path = session.open_window, session.close_window
        session.open_window = session.close_window = None  # the usual cell needs neither
        usual = session.open_cell("c1", 1)
        assert session._open_windows == {}  # told from the note: the cell stays noted
        session.close_cell(usual, "error")
        session.open_window, session.close_window = general_path
        called = session.open_cell("c2", 2)
        inner = session.open_window("track", label="inner")
        session.meters["tokens"].call("m", 10)
        session.close_window(inner.id)
        session.close_cell(called, "ok")
        session.watch_cells(broken)
        session.close_cell(session.open_cell("c3", 3), "ok")
        session.reset()
        undo()
        session.close_cell(session.open_cell("c4", 4), "ok")
        logged = [(e["event"], e["cell_id"]) for e in events(session, "cell_end")]
    finally:
        session.close()
    assert [t[:3] for t in watcher.told] == [
        ("started", usual, "c1"), ("ended", usual, "error"),
        ("started", called, "c2"), ("ended", called, "ok"),
        ("started", watcher.told[4][1], "c3"), ("ended", watcher.told[4][1], "ok"),
        ("session",)]
    usual_record, called_record = watcher.told[1][3], watcher.told[3][3]
    assert usual_record.info.end is not None and usual_record.info.cell_id == "c1"
    assert called_record.meters["tokens"].quantities["calls"] == 1
    assert [t[0] for t in broken.told] == ["started", "ended", "session", "started", "ended"]
    assert capsys.readouterr().err.count("panel on fire") == 1
    assert "internal_error" in watcher.told[5][3].flags  # the cell it failed in is flagged
    assert logged == [("cell_end", "c4")]  # (the session after the reset) still logged


def test_a_quiet_window_after_a_costly_one_has_its_own_figures(session):
    """Windows that end with the figures of the one before reuse its sums: never another's."""
    tokens = session.meters["tokens"]
    session.remove_meter("penny")  # the usual cell: nothing continuous to measure
    figures = []
    for calls in (0, 1, 0, 0, 2, 0):
        window = session.open_window("cell")
        for _ in range(calls):
            tokens.call("m", 1000)
        record = session.close_window(window.id)
        figures.append((record.cost_usd, record.meters.get("tokens")))
    assert [cost for cost, _ in figures] == [0, Decimal("0.002"), 0, 0, Decimal("0.004"), 0]
    assert [t.quantities["calls"] if t else 0 for _, t in figures] == [0, 1, 0, 0, 2, 0]
    ends = events(session, "cell_end")
    assert [e["cost_usd"] for e in ends] == ["0", "0.002", "0", "0", "0.004", "0"]
    assert [sorted(e["meters"]) for e in ends] == [[], ["tokens"], [], [], ["tokens"], []]


def test_listeners_get_every_event_as_json(session):
    seen = []
    remove = session.add_listener(seen.append)
    window = session.open_window("cell")
    session.meters["tokens"].call("m", 10)
    session.close_window(window.id)
    remove()
    session.open_window("cell")
    assert [e["event"] for e in seen] == ["cell_start", "llm_call", "cell_end"]
    json.dumps(seen)


def test_live_totals_while_a_window_runs(session):
    window = session.open_window("cell", execution_count=5)
    session.meters["tokens"].call("m", 1000)
    live = session.live_totals(window.id)
    assert live["execution_count"] == 5 and live["status"] == "running"
    assert Decimal(live["tokens"]["cost_usd"]) == Decimal("0.002")
    assert Decimal(live["cost_usd"]) >= Decimal("0.002")
    assert session.live_totals()["status"] == "running"


def test_close_writes_session_end_with_totals_and_interrupts_open_windows(session):
    session.open_window("cell")
    session.meters["tokens"].call("m", 1000)
    session.close()
    written = events(session)
    assert written[-2]["event"] == "cell_end" and written[-2]["status"] == "interrupted"
    end = written[-1]
    assert end["event"] == "session_end"
    assert Decimal(end["meters"]["tokens"]["cost_usd"]) == Decimal("0.002")
    assert Decimal(end["cost_usd"]) == session.total_usd


def test_reset_starts_a_new_log(session):
    old_path, old_id = session.ledger_path, session.id
    session.meters["tokens"].call("m", 1000)
    session.reset()
    assert session.id != old_id and session.ledger_path != old_path
    assert read_log(old_path).events[-1]["event"] == "session_end"
    assert session.totals().get("tokens") is None


def test_reset_ends_open_windows_as_interrupted_innermost_first(session):
    cell = session.open_window("cell", execution_count=4)
    block = session.open_window("track", label="inner")
    session.meters["tokens"].call("m", 1000)
    old_path = session.ledger_path
    session.reset()
    ends = [e for e in read_log(old_path).events if e["event"].endswith("_end")]
    assert [(e["event"], e.get("status")) for e in ends] == [
        ("track_end", "interrupted"), ("cell_end", "interrupted"), ("session_end", None)]
    assert session.open_windows() == []
    # The code that opened them closes them later: it gets their record, no error, no warning.
    assert session.close_window(block.id).status == "interrupted"
    assert session.close_window(cell.id).meters["tokens"].cost_usd == Decimal("0.002")


def test_closing_an_unknown_window_warns_once_and_never_raises(session, capsys):
    assert session.close_window("no-such-window") is None
    assert session.close_window("another") is None
    assert capsys.readouterr().err.count("is not open") == 1
    assert session.annotate_window("no-such-window", label="x") is None


def test_reset_mid_cell_tells_the_gpu_meter_the_cell_ended(tmp_path, wait_until):
    """Idle time between cells is held time outside every cell: after a reset ends the running
    cell, the GPU meter must count it again (it read 0 when the meter still saw the cell)."""
    from fake_nvml import FakeGpu, live_meter

    from nbcost.config import Settings

    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
    meter = live_meter(gpu, checkpoint_s=10)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    try:
        session.open_window("cell", execution_count=1)
        session.reset()
        assert wait_until(lambda: session.totals()["gpu"].quantities["held_s"] > 1.2, timeout=20)
        figures = session.totals()["gpu"].quantities
    finally:
        session.close()
    assert figures["idle_between_s"] == pytest.approx(figures["held_s"])  # no cell since reset


def test_track_works_in_plain_python(nbcost_home):
    api.set_session(Session(load_settings(), meters=[PennyMeter()]))
    try:
        with nbcost.track("outer", tags={"k": "v"}) as outer:
            with nbcost.track("inner") as inner:
                time.sleep(0.05)
        assert inner.record.info.parent_id == outer.record.info.id
        assert outer.cost_usd >= inner.cost_usd > 0
        assert outer.record.info.tags == {"k": "v"}
        with pytest.raises(ZeroDivisionError):
            with nbcost.track("fails") as failed:
                1 / 0
        assert failed.record.status == "error"
        assert nbcost.session().records[-1] is failed.record
    finally:
        api.set_session(None).close()


def test_unwritable_log_location_says_what_to_do_and_keeps_the_events(tmp_path, monkeypatch,
                                                                       capsys):
    """A data dir that cannot be created is said once with what to do; the session still runs,
    and once the folder can be made its held events are all written."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NBCOST_HOME", str(blocker / "home"))
    session = Session(load_settings(), meters=[TokenMeter()])
    err = capsys.readouterr().err
    assert "cannot write the spend log" in err and "NBCOST_HOME" in err
    session.meters["tokens"].call("m", 1000)
    assert session.total_usd == Decimal("0.002")
    blocker.unlink()  # the way is clear now
    session.meters["tokens"].call("m", 1000)
    session.close()
    assert "writable again" in capsys.readouterr().err
    logged = [e["event"] for e in read_log(session.ledger_path).events]
    assert logged == ["session_start", "llm_call", "llm_call", "session_end"]


def test_track_takes_tags_as_a_dict_or_text_and_says_what_else_is_wrong(nbcost_home):
    try:
        with nbcost.track(7, tags="run=7,env=dev") as t:
            pass
        assert t.record.info.label == "7"
        assert t.record.info.tags == {"run": "7", "env": "dev"}
        with pytest.raises(nbcost.ConfigError, match="takes a dict"):
            nbcost.track("x", tags=["run=7"])
        with pytest.raises(nbcost.ConfigError, match="KEY=VALUE"):
            nbcost.track("x", tags="novalue")
    finally:
        api.set_session(None).close()


def test_a_killed_kernel_leaves_every_finished_cells_edges(tmp_path, wait_until):
    """Cell edges are buffered, not written inline: with no later event, no flush and no exit
    hook (``kill -9``), the writer still puts each finished cell's ``cell_end`` on disk."""
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", """if True:
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_cell("%load_ext nbcost", store_history=True)
        for _ in range(200):
            shell.run_cell("x = 1", store_history=True)
        from nbcost import api
        print("log:", api.session().ledger_path, flush=True)
        sys.stdin.readline()  # blocks: nothing more happens in this process
    """], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "NBCOST_HOME": str(tmp_path)})
    try:
        line = child.stdout.readline()
        while not line.startswith("log: "):  # (the no-GPU line comes first)
            line = child.stdout.readline()
        log = Path(line[5:].strip())

        def cell_ends() -> int:
            return log.read_text().count('"event":"cell_end"')

        assert wait_until(lambda: cell_ends() == 200, timeout=30)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    events = read_log(log).events
    starts = [e["window_id"] for e in events if e["event"] == "cell_start"]
    ends = [e["window_id"] for e in events if e["event"] == "cell_end"]
    assert len(ends) == 200 and set(ends) == set(starts)
