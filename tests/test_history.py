"""A long session keeps only its last windows and usages in memory (``nbcost.recent``); ``%cost``,
``%cost compare``, ``to_dataframe()`` and the panel still show all of them, older ones read back
from the spend log (``nbcost.history``), and say what they cannot show."""

from __future__ import annotations

from decimal import Decimal

import pytest
from faults import FakeOs, no_space
from llm_support import FAKE_KEY, srv  # noqa: F401
from testmeters import TokenMeter

import nbcost.ledger
from nbcost import history
from nbcost.config import load_settings
from nbcost.display import summary
from nbcost.display.payload import MAX_HISTORY, cell_history, session_totals
from nbcost.display.summary import SessionSummary, session_rows
from nbcost.meters.base import Usage
from nbcost.session import Session

KEPT = 8


@pytest.fixture
def small_memory(monkeypatch):
    """Sessions started from now on keep only KEPT windows and usages."""
    monkeypatch.setattr(Session, "recent_windows_kept", KEPT)
    monkeypatch.setattr(Session, "recent_usages_kept", KEPT)


@pytest.fixture
def session(small_memory):
    s = Session(load_settings(), meters=[TokenMeter()])
    yield s
    s.close()


def run_cells(session, count, first=1, tokens=100):
    """``count`` cells, each with one call, a nested ``track()`` with one more, and a top-level
    ``track()`` block after it; returns the top-level window ids in order."""
    meter = session.meters["tokens"]
    ids = []
    for number in range(first, first + count):
        cell = session.open_window("cell", execution_count=number)
        meter.call("model-a", tokens * number)
        inner = session.open_window("track", label="inner")
        meter.call("model-b", 7, priced=number % 5 != 0)
        session.close_window(inner.id)
        session.close_window(cell.id)
        block = session.open_window("track", label=f"block {number}")
        session.close_window(block.id)
        ids += [cell.id, block.id]
    return ids


def window_rows(rows):
    return [r for r in rows if r.name != "between cells"]


def test_memory_keeps_the_last_windows_and_usages_only(session):
    run_cells(session, 40)
    assert len(session.records) == KEPT and session.records.appended == 120
    assert len(session.usages) == KEPT and session.usages.appended == 80
    assert session.records[-1].info.label == "block 40"
    assert session.records.top_level == 80 and session.cells_finished == 40


def test_a_default_session_keeps_a_thousand_and_counts_the_rest():
    session = Session(load_settings(), meters=[TokenMeter()])
    try:
        for _ in range(1500):
            session.close_window(session.open_window("track").id)
        assert len(session.records) == 1000 and session.records.appended == 1500
        assert len(session.to_dataframe()) == 1500
    finally:
        session.close()


def test_the_session_table_shows_every_window_from_the_log(session):
    ids = run_cells(session, 40)
    rows, total, notes = session_rows(session)
    shown = window_rows(rows)
    assert len(shown) == 80
    assert [r.name for r in shown[:4]] == ["[1]", "block 1", "[2]", "block 2"]
    assert shown[-1].name == "block 40"
    # Each row's figures are its window's, as the export (a separate reader) has them.
    frame = session.to_dataframe()
    assert len(frame[frame.kind != "between_cells"]) == 120  # nested blocks too
    cost_of = dict(zip(frame.window_id, frame.cost_usd))
    assert [r.cost_usd for r in shown] == [cost_of[i] for i in ids]
    assert [r.unpriced for r in shown] == [i % 2 == 0 and (i // 2 + 1) % 5 == 0
                                           for i in range(80)]
    assert total.cost_usd == sum((r.cost_usd for r in rows), Decimal(0)) == session.total_usd
    assert not any("missing" in note for note in notes)
    assert len(repr(SessionSummary(session)).splitlines()) > 80


def test_the_log_gives_exactly_the_rows_memory_gives(monkeypatch):
    """While memory holds every window the table comes from memory; read from the log instead,
    each row's compact record is the same, figure for figure."""
    session = Session(load_settings(), meters=[TokenMeter()])
    try:
        run_cells(session, 12)
        assert session.records.complete
        from_memory = history.finished_top_level(session)
        from_log = history.read_finished(session)
        assert [w.compact for w in from_log.windows] == [w.compact for w in from_memory.windows]
        assert [(w.id, w.kind) for w in from_log.windows] == [(w.id, w.kind)
                                                              for w in from_memory.windows]
        assert [w.start for w in from_log.windows] == pytest.approx(
            [w.start for w in from_memory.windows], abs=1e-6)
        assert from_log.missing == from_memory.missing == 0
    finally:
        session.close()


def test_the_cell_count_and_the_panel_history_stay_right_past_memory(session, monkeypatch):
    run_cells(session, 30)
    assert session_totals(session)["cells"] == 30
    history_ = cell_history(session)
    assert [c["execution_count"] for c in history_] == list(range(1, 31))  # < MAX_HISTORY
    run_cells(session, MAX_HISTORY, first=31)
    history_ = cell_history(session)
    assert len(history_) == MAX_HISTORY
    assert history_[-1]["execution_count"] == 30 + MAX_HISTORY
    assert session_totals(session)["cells"] == 30 + MAX_HISTORY
    session.reset()
    assert session_totals(session)["cells"] == 0 and cell_history(session) == []


def test_the_just_finished_cell_is_found_for_the_panel(session):
    run_cells(session, 20)
    cell = session.open_window("cell", execution_count=99)
    record = session.close_window(cell.id)
    assert session.finished_window(cell.id) is record
    assert session.finished_window("no-such-window") is None


def test_llm_calls_of_a_long_session_come_back_from_the_log(session):
    for number in range(30):
        session.record(Usage(meter="llm", event="llm_call", key="gpt-4o",
                             quantities={"calls": 1, "input_tokens": 100 + number,
                                         "output_tokens": 3},
                             cost_usd=None if number % 4 == 0 else Decimal("0.0012") * number,
                             attributes={"request_hash": f"h{number % 3}"}))
    session.meters["tokens"].call("model-a", 5)  # another meter's usage: not an LLM call
    assert len(session.usages) == KEPT
    calls = history.llm_calls(session)
    assert [u.quantities["input_tokens"] for u in calls.usages] == list(range(100, 130))
    assert [u.cost_usd for u in calls.usages] == [
        None if n % 4 == 0 else Decimal("0.0012") * n for n in range(30)]
    assert calls.usages[5].attributes == {"request_hash": "h2"} and calls.missing == 0


def test_an_unwritable_log_shows_what_memory_has_and_says_what_is_missing(session, monkeypatch,
                                                                         capsys):
    fake = FakeOs()
    monkeypatch.setattr(nbcost.ledger, "os", fake)
    run_cells(session, 10)  # 20 top-level windows, in the log
    session.flush()
    fake.on_write = lambda fd, data: (_ for _ in ()).throw(no_space())
    run_cells(session, 10, first=11)  # 20 more: the log cannot take them; memory has the last
    rows, total, notes = session_rows(session)
    shown = window_rows(rows)
    in_memory = [r.info.label or f"[{r.info.execution_count}]" for r in session.records
                 if r.info.parent_id is None]
    logged = [name for n in range(1, 11) for name in (f"[{n}]", f"block {n}")]
    assert [r.name for r in shown] == logged + in_memory
    assert len(shown) == 20 + len(in_memory) < 40
    missing = 40 - len(shown)
    (note,) = [n for n in notes if "missing" in n]
    assert note.startswith(f"{missing} earlier windows missing from this table")
    assert "cannot be written now" in note and "not saved yet" in note
    assert total.cost_usd == session.total_usd  # their cost is in the total, between cells
    assert "cannot write the spend log" in capsys.readouterr().err
    fake.on_write = None  # the disk is back: the held events are written, nothing is missing
    rows, _, notes = session_rows(session)
    assert len(window_rows(rows)) == 40 and not any("missing" in n for n in notes)


def test_a_log_that_cannot_be_read_still_shows_the_windows_in_memory(session):
    run_cells(session, 10)
    session.flush()
    session.ledger_path.unlink()
    session.ledger_path.mkdir()  # a folder where the log was: neither readable nor writable
    try:
        rows, total, notes = session_rows(session)
    finally:
        session.ledger_path.rmdir()
    in_memory = [r for r in session.records if r.info.parent_id is None]
    assert len(window_rows(rows)) == len(in_memory)
    (note,) = [n for n in notes if "missing" in n]
    assert note.startswith(f"{20 - len(in_memory)} earlier windows missing")
    assert str(session.ledger_path) in note
    assert total.cost_usd == session.total_usd


def test_percent_cost_compare_prices_every_call_of_a_long_session(srv, small_memory,  # noqa: F811
                                                                 capsys):
    import openai
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext nbcost", store_history=True)
    try:
        shell.user_ns["client"] = openai.OpenAI(
            base_url=srv.base_url("openai", input_tokens=1000, output_tokens=10),
            api_key=FAKE_KEY, max_retries=0)
        result = first = shell.run_cell(
            "for n in range(12):  # not `_`: IPython leaves a user's `_` alone after\n"
            "    client.chat.completions.create(model='gpt-4o-mini', messages=[])\n",
            store_history=True)
        assert result.success, result.error_in_exec
        for _ in range(KEPT + 2):
            shell.run_cell("client.chat.completions.create(model='gpt-4o-mini', messages=[])",
                           store_history=True)
        capsys.readouterr()
        result = shell.run_cell("%cost compare --models gpt-4o", store_history=True)
        assert result.success, result.error_in_exec
        out = capsys.readouterr().out
        assert "22 LLM calls, 22,000 input and 220 output tokens" in out
        result = shell.run_cell("%cost", store_history=True)
        out = capsys.readouterr().out
        assert f"[{first.execution_count}]" in out  # the first cells, from the log
        assert "missing" not in out
        shell.user_ns.pop("client").close()
        shell.user_ns.pop("n", None)
    finally:
        shell.run_cell("%unload_ext nbcost", store_history=True)


def test_a_long_sessions_table_sums_its_older_windows_in_one_row(session, monkeypatch):
    """``%cost`` lists the latest windows; the older ones are one row that adds them up, so
    the rows still add up to the total (100,000 cells are not 100,000 lines of output)."""
    monkeypatch.setattr(summary, "SHOWN_WINDOWS", 6)
    run_cells(session, 10)  # 20 top-level windows, most of them only in the log
    rows, total, _ = session_rows(session)
    windows, earlier = window_rows(rows), window_rows(rows)[:14]
    table = SessionSummary(session)
    assert [cells[0] for cells in table.rows] == ["14 earlier windows",
                                                   *(r.name for r in windows[-6:]),
                                                   "between cells"]
    assert all(r.calls is None and r.held_s is None for r in earlier)  # "-": no LLM, no GPU
    assert table.rows[0][1:] == summary.SummaryRow(
        "", sum(r.wall_s for r in earlier), None, None, None,
        sum((r.cost_usd for r in earlier), Decimal(0)), any(r.unpriced for r in earlier)
    ).cells()[1:]
    assert any(r.unpriced for r in earlier)  # so the cost says "unpriced" too
    # The total is every window's, as before (its wall time grows with the live session's).
    assert table.footer[2:] == total.cells()[2:]
    assert any("first 14 windows are summed" in note for note in table.notes)
    assert "14 earlier windows" in table._repr_html_()
