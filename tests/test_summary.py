"""The static summaries (``nbcost.display.summary``): a cell's record, ``t.gpu`` / ``t.llm`` and
the ``%cost`` session table, on records built here and on a real Session (fake NVML for GPUs)."""

from __future__ import annotations

import os
import re
import time
from decimal import Decimal

import pytest
from fake_nvml import FakeGpu, live_meter
from testmeters import TokenMeter

from nbcost.config import Settings
from nbcost.display.format import format_usd
from nbcost.display.summary import (RecordSummary, SessionSummary, budget_view, record_lines,
                                    session_rows)
from nbcost.records import Budget, MeterTotals, WindowInfo, WindowRecord
from nbcost.session import Session


def record(meters, wall_s=2.1, **kwargs) -> WindowRecord:
    info = WindowInfo(id="w1", kind="cell", start=1_700_000_000.0, end=1_700_000_000.0 + wall_s,
                      execution_count=7, label=kwargs.pop("label", None))
    return WindowRecord(info=info, wall_s=wall_s, status="ok", meters=meters, session_id="s",
                        **kwargs)


def gpu_totals(held=2.1, busy=0.92, sm=0.5, cost="0.0061", stall=("1.18", "0.0034"),
               underfill=("0.42", "0.0012"), uncertainty=0.4, unpriced=False) -> MeterTotals:
    return MeterTotals(
        {"held_s": held, "busy_s": busy, "sm_s": sm, "energy_j": 1234.0,
         "mem_peak_bytes": float(3 << 30), "stall_s": float(stall[0]),
         "underfill_s": float(underfill[0]), "gpus": 1},
        Decimal(cost), unpriced=unpriced,
        detail={"uncertainty_s": uncertainty,
                "waste_s": {"stall": float(stall[0]), "underfill": float(underfill[0])},
                "waste_usd": {"idle_between": None if unpriced else "0",
                              "stall": None if unpriced else stall[1],
                              "underfill": None if unpriced else underfill[1]}})


def llm_totals() -> MeterTotals:
    return MeterTotals(
        {"calls": 3, "input_tokens": 5000, "output_tokens": 1450}, Decimal("0.0273"),
        by_key={"gpt-4o": {"calls": 3, "input_tokens": 5000, "output_tokens": 1450,
                           "cost_usd": Decimal("0.0273")}})


# -- GPU waste in dollars ---------------------------------------------------------------------

def test_a_gpu_cell_leads_with_what_its_waste_cost_and_names_the_largest():
    lines = record_lines(record({"gpu": gpu_totals()}).compact())
    labels = [label for label, _ in lines]
    assert labels.index("GPU") == 1, "GPU waste comes right after the wall time"
    gpu = dict(lines)
    assert gpu["GPU"] == "44 % busy · $0.0034 of $0.0061 idle or stalled"
    assert gpu["Largest waste"] == "stalled 1.18 s, $0.0034 (the GPU waited on the host)"


def test_underfill_is_named_when_it_is_the_largest_waste():
    lines = dict(record_lines(record({"gpu": gpu_totals(
        busy=2.0, sm=0.4, stall=("0.1", "0.0003"), underfill=("1.6", "0.0046"))}).compact()))
    assert lines["GPU"] == "95 % busy · $0.0003 of $0.0061 idle or stalled"
    assert lines["Largest waste"].startswith("underfilled 1.60 s, $0.0046")


def test_a_gpu_without_a_rate_shows_its_waste_in_seconds_and_says_unpriced():
    lines = dict(record_lines(record({"gpu": gpu_totals(cost="0", unpriced=True)}).compact()))
    assert lines["GPU"] == "44 % busy · 1.18 s of 2.10 s idle or stalled · unpriced"
    assert lines["Largest waste"] == "stalled 1.18 s (the GPU waited on the host)"


def test_a_short_cell_shows_the_busy_times_uncertainty_and_a_long_one_does_not():
    short = dict(record_lines(record({"gpu": gpu_totals(held=0.5, busy=0.3, sm=0.2,
                                                        stall=("0.2", "0.0001"))},
                                     wall_s=0.5).compact()))
    figures = next(v for k, v in short.items() if k == "")
    assert "busy 0.3 s ± 0.4 s" in figures and "SM-weighted 0.2 s ± 0.4 s" in figures
    long = dict(record_lines(record({"gpu": gpu_totals(held=60.0, busy=30.0, sm=20.0)},
                                    wall_s=60.0).compact()))
    assert "±" not in "".join(long.values())


def test_a_cell_on_the_fake_gpu_shows_its_waste_in_dollars(tmp_path):
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
    meter = live_meter(gpu, checkpoint_s=5)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    try:
        info = session.open_window("cell", cell_id="g1", execution_count=1)
        now = time.time()
        gpu.busy(now, now + 0.3)
        time.sleep(1.2)
        done = session.close_window(info.id)
    finally:
        session.close()
    compact = done.compact()["gpu"]
    stall_usd = Decimal(compact["waste"]["stall"]["usd"])
    assert stall_usd > 0
    text = repr(RecordSummary(done))
    lead = re.search(r"GPU\s+(\d+) % busy · (\S+) of (\S+) idle or stalled", text)
    assert lead, text
    assert lead.group(2) == format_usd(stall_usd)
    assert lead.group(3) == format_usd(Decimal(compact["cost_usd"]))
    assert "Largest waste  stalled" in text
    assert "idle or stalled" in RecordSummary(done)._repr_html_()
    assert "busy" in repr(done.gpu) and "MeterTotals(" not in repr(done.gpu)


# -- budgets ----------------------------------------------------------------------------------

def test_the_summary_keeps_the_budget_line_with_the_true_share_and_the_overshoot():
    over = record({"llm": MeterTotals({"calls": 4}, Decimal("0.04"))},
                  budget=Budget(Decimal("0.001"), False, "cell"))
    lines = dict(RecordSummary(over).lines())
    assert lines["Budget"] == "4,000 % of the $0.0010 cell budget, $0.0390 over"
    view = budget_view(over.compact(), over.compact()["budget"])
    assert view == {"text": lines["Budget"], "fill": 1.0, "level": "over"}


def test_a_session_budget_reads_against_the_session_or_says_it_is_this_cells_share():
    cell = record({"llm": MeterTotals({"calls": 1}, Decimal("0.1"))})
    budget = Budget(Decimal("1"), True, "session").to_json()
    assert dict(record_lines(cell.compact(), budget))["Budget"] == (
        "this cell: 10 % of the $1.00 hard session budget")
    live = budget_view(cell.compact(), budget, spent_usd=Decimal("0.85"))
    assert live == {"text": "85 % of the $1.00 hard session budget", "fill": 0.85,
                    "level": "near"}
    # A record without a budget of its own takes the one it ran under.
    ran_under = Budget(Decimal("1"), True, "session")
    assert "Budget" in dict(RecordSummary(cell, budget=ran_under).lines())
    assert "Budget" not in dict(RecordSummary(cell).lines())


# -- readable meter totals --------------------------------------------------------------------

def test_llm_totals_print_calls_and_tokens_in_words():
    totals = llm_totals()
    text = repr(totals)
    assert "MeterTotals(" not in text and "×" not in text
    assert "gpt-4o" in text and "3 calls, 6,450 tokens" in text and "$0.0273" in text
    html = totals._repr_html_()
    assert "3 calls, 6,450 tokens" in html and "<table>" in html
    lines = dict(RecordSummary(record({"llm": totals})).lines())
    assert lines["  gpt-4o"].startswith("3 calls, 6,450 tokens")


def test_meter_totals_escape_what_users_and_apis_name():
    totals = MeterTotals({"calls": 1, "input_tokens": 1, "output_tokens": 1}, Decimal("0.01"),
                         by_key={"<img src=x>": {"calls": 1, "cost_usd": Decimal("0.01")}})
    assert "<img" not in totals._repr_html_() and "&lt;img" in totals._repr_html_()


def test_gpu_totals_without_a_gpu_say_so():
    assert "no GPU visible" in repr(MeterTotals({}, flags=("no_gpu",)))


# -- the %cost table adds up ------------------------------------------------------------------

@pytest.fixture
def token_session():
    tokens = TokenMeter()
    session = Session(meters=[tokens])
    session.tokens = tokens
    yield session
    session.close()


def test_the_session_table_rows_sum_to_its_total_with_calls_outside_cells(token_session):
    session = token_session
    session.tokens.call("m", 500)  # outside any cell
    first = session.open_window("cell", execution_count=1)
    session.tokens.call("m", 1000)
    session.close_window(first.id)
    rows, total, notes = session_rows(session)
    assert [r.name for r in rows] == ["[1]", "between cells"]
    assert sum((r.cost_usd for r in rows), Decimal(0)) == total.cost_usd == session.total_usd
    assert rows[1].cost_usd == Decimal("0.001")
    assert total.wall_s == pytest.approx(sum(r.wall_s for r in rows))
    assert any("tokens $0.0010 outside any cell" in note for note in notes)
    text = repr(SessionSummary(session)).splitlines()
    assert text[-1 - len(notes)].split()[-1] == "$0.0030"
    assert any(line.startswith("between cells") and line.endswith("$0.0010") for line in text)
    assert any(line.startswith("Session elapsed") for line in text)


def test_the_session_wall_time_is_the_sum_of_its_rows_and_elapsed_is_said_apart(token_session):
    session = token_session
    cell = session.open_window("cell", execution_count=1)
    time.sleep(0.1)
    session.close_window(cell.id)
    time.sleep(0.3)  # between cells
    rows, total, notes = session_rows(session)
    assert total.wall_s == pytest.approx(sum(r.wall_s for r in rows))
    assert rows[0].wall_s == pytest.approx(session.records[0].wall_s, abs=1e-5)
    assert rows[-1].name == "between cells" and rows[-1].wall_s >= 0.25
    assert notes[0].startswith("Session elapsed")


def test_the_cell_running_percent_cost_is_a_row_of_its_own(token_session):
    session = token_session
    running = session.open_window("cell", execution_count=4)
    session.tokens.call("m", 250)
    rows, total, _ = session_rows(session)
    assert [r.name for r in rows][0] == "[4] (running)"
    assert rows[0].cost_usd == Decimal("0.0005") == total.cost_usd
    session.close_window(running.id)


def test_the_idle_gpu_between_cells_is_a_row_and_the_table_adds_up(tmp_path):
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
    meter = live_meter(gpu, checkpoint_s=5)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    try:
        time.sleep(0.6)  # held before the cell: idle between cells
        info = session.open_window("cell", cell_id="c1", execution_count=1)
        now = time.time()
        gpu.busy(now, now + 0.3)
        time.sleep(0.5)
        session.close_window(info.id)
        session.close()
        rows, total, notes = session_rows(session)
        table = repr(SessionSummary(session))
    finally:
        session.close()
    between = rows[-1]
    assert between.name == "between cells"
    assert between.held_s == pytest.approx(session.totals()["gpu"].quantities["idle_between_s"],
                                           abs=0.05)
    assert between.cost_usd > 0
    assert sum((r.cost_usd for r in rows), Decimal(0)) == total.cost_usd == session.total_usd
    assert total.held_s == pytest.approx(session.totals()["gpu"].quantities["held_s"])
    assert any("GPU was held" in note and "no cell running" in note for note in notes)
    assert "between cells" in table


# -- in IPython (the terminal path: no widgets) -----------------------------------------------

@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    from nbcost.ipython import extension_for

    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext nbcost", store_history=True)
    tokens = TokenMeter()
    extension_for(ip).session.add_meter(tokens)
    ip.user_ns["tokens"] = tokens
    yield ip
    ip.run_cell("%unload_ext nbcost", store_history=True)


def test_a_cost_cell_over_its_budget_ends_with_the_budget_line(shell, capsys):
    shell.run_cell("%%cost --label over --budget 0.001\ntokens.call('m', 1000)",
                   store_history=True)
    out = capsys.readouterr().out
    assert re.search(r"^  Budget\s+200 % of the \$0\.0010 cell budget, \$0\.0010 over$", out,
                     re.MULTILINE), out


def test_percent_cost_has_a_between_cells_row_and_a_total_that_adds_up(shell, capsys):
    shell.run_cell("tokens.call('m', 500)", store_history=True)  # a plain cell
    shell.run_cell("%%cost --label embed\ntokens.call('m', 1000)", store_history=True)
    capsys.readouterr()
    shell.run_cell("%cost", store_history=True)
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line.split()[-1] for line in out.splitlines() if "$" in line}
    assert lines["embed"] == "$0.0020" and lines["session total"] == "$0.0030"
    assert sum(Decimal(v.lstrip("<$")) for k, v in lines.items()
               if k != "session total") == Decimal("0.0030")
