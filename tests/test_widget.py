"""What the live ``%%cost`` widget draws (``nbcost.display.widget``), without a kernel: the lines
come from the summary's code, the budget shows its true share. The kernel round trip is in
``test_live.py``."""

from __future__ import annotations

import os
import re
import time
from decimal import Decimal
from pathlib import Path

from fake_nvml import FakeGpu, live_meter
from testmeters import TokenMeter

from nbcost.config import Settings
from nbcost.display import widget
from nbcost.display.summary import record_lines
from nbcost.display.widget import CostWidget, widget_state, window_budget
from nbcost.records import Budget, MeterTotals, WindowInfo, compact_record
from nbcost.session import Session


def test_the_es_module_is_the_file_beside_the_module():
    source = (Path(widget.__file__).parent / "widget.js").read_text("utf-8")
    assert CostWidget()._esm == source
    assert "export default" in source


def test_a_running_gpu_cell_leads_with_what_its_waste_costs(tmp_path, wait_until):
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
    meter = live_meter(gpu, checkpoint_s=5)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    try:
        info = session.open_window("cell", cell_id="g1", execution_count=1, label="train")
        now = time.time()
        gpu.busy(now, now + 0.2)
        time.sleep(1.0)
        live = session.live_totals(info.id)
        session.close_window(info.id)
    finally:
        session.close()
    state = widget_state(live, running=True)
    assert state["title"] == "nbcost · train · running"
    assert state["lines"][0][0] == "Wall time"
    label, lead = state["lines"][1]
    assert label == "GPU"
    assert re.fullmatch(r"\d+ % busy · \$0\.\d{4} of \$0\.\d{4} idle or stalled", lead), lead
    assert dict(state["lines"])["Largest waste"].startswith("stalled")
    assert state["lines"] == [list(line) for line in record_lines(live)]
    assert state["budget"] is None


def record_over_budget(budget: Budget) -> dict:
    info = WindowInfo(id="w", kind="cell", start=time.time() - 3, execution_count=2)
    llm = MeterTotals({"calls": 5, "input_tokens": 500, "output_tokens": 100}, Decimal("0.05"),
                      by_key={"gpt-4o": {"calls": 5, "input_tokens": 500, "output_tokens": 100,
                                         "cost_usd": Decimal("0.05")}})
    return compact_record(info, 3.0, "running", {"llm": llm}, "s", budget=budget)


def test_the_budget_bar_says_the_true_share_and_the_overshoot():
    state = widget_state(record_over_budget(Budget(Decimal("0.001"), False, "cell")), True)
    assert state["budget"] == {"text": "5,000 % of the $0.0010 cell budget, $0.0490 over",
                               "fill": 1.0, "level": "over"}
    assert "Budget" not in dict(state["lines"]), "the bar's text says it once"
    assert dict(state["lines"])["  gpt-4o"] == (
        "5 calls, 600 tokens (500 input, 100 output), $0.0500")


def test_a_session_budget_measures_the_session_spend():
    record = record_over_budget(Budget(Decimal("1"), True, "session"))
    state = widget_state(record, True, session_spent_usd=Decimal("0.5"))
    assert state["budget"] == {"text": "50 % of the $1.00 hard session budget", "fill": 0.5,
                               "level": "ok"}


def test_the_budget_a_cell_runs_under_comes_from_the_session_until_records_carry_it():
    session = Session(meters=[TokenMeter()])
    try:
        window = session.open_window("cell")
        assert window_budget(session, window) is None
        session.settings.budget_usd, session.settings.budget_hard = Decimal("2"), True
        assert window_budget(session, window) == {"usd": "2", "hard": True, "scope": "session"}
        session.annotate_window(window.id, budget_usd=Decimal("0.001"))
        assert window_budget(session, window) == {"usd": "0.001", "hard": False, "scope": "cell"}
        session.close_window(window.id)
    finally:
        session.close()
