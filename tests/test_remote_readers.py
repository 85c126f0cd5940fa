"""Every reader takes what remote work adds to a spend log: llm_call with origin and late,
gpu_usage (remote_gpu), window_amended. Written by a real Session's fold_remote."""

from __future__ import annotations

from decimal import Decimal

from nbcost.focus import focus_table
from nbcost.ledger import read_log
from nbcost.logcheck import event_problem
from nbcost.meters.base import Usage
from nbcost.report import load_spend
from nbcost.report.audit import render_audit
from nbcost.rows import rows_from_events
from nbcost.session import Session

LATE_CALL = Usage(meter="llm", event="llm_call", key="gpt-4o-mini",
                  quantities={"calls": 1, "input_tokens": 1000, "output_tokens": 200},
                  cost_usd=Decimal("0.00027"), attributes={"provider": "openai"})
TASK_GPU = Usage(meter="remote_gpu", event="gpu_usage", key="tcp://10.0.0.7:4000 (NVIDIA H200)",
                 quantities={"held_s": 2.0, "busy_s": 1.5, "energy_j": 900.0},
                 cost_usd=Decimal("0.002"), attributes={"devices": ["NVIDIA H200"]})


def logged_session(nbcost_home):
    session = Session(meters=[])
    cell = session.open_window("cell", execution_count=1)
    session.fold_remote(TASK_GPU, cell.id, {"kind": "dask", "worker": "tcp://10.0.0.7:4000"})
    session.close_window(cell.id)
    session.fold_remote(LATE_CALL, cell.id, {"kind": "process", "pid": 4321})
    later = session.open_window("cell", execution_count=2)
    session.close_window(later.id)
    session.close()
    return session, cell, later


def test_every_reader_puts_remote_and_late_usage_in_the_cell(nbcost_home):
    session, cell, later = logged_session(nbcost_home)
    contents = read_log(session.ledger_path)
    assert contents.warnings == []
    assert all(event_problem(e) is None for e in contents.events)
    kinds = [e["event"] for e in contents.events]
    assert kinds.count("window_amended") == 1 and kinds.count("gpu_usage") == 1

    rows = {r["window_id"]: r for r in rows_from_events(contents.events)}
    assert rows[cell.id]["cost_usd"] == Decimal("0.00227")
    assert rows[cell.id]["remote_gpu_busy_s"] == 1.5 and rows[cell.id]["llm_calls"] == 1
    assert rows[later.id]["cost_usd"] == 0 and None not in rows

    with load_spend([str(session.ledger_path)]) as spend:
        assert spend.report("user").total["cost_usd"] == Decimal("0.00227")
        windows = dict(spend.sql("SELECT window_id, cost_usd FROM windows").fetchall())
        assert windows[cell.id] == Decimal("0.00227") and windows[later.id] == 0
        assert "<html" in render_audit(spend).lower()

    focus = focus_table(contents.events)  # the late call is charged to the cell it amends
    llm_rows = [r for r in focus.rows if r["ServiceCategory"] != "Compute"]
    assert sum(Decimal(str(r["BilledCost"])) for r in llm_rows) == Decimal("0.00027")
    assert {r["x_WindowId"] for r in llm_rows} == {cell.id}


def test_a_bad_origin_or_amendment_is_skipped_with_its_reason():
    base = {"schema": 1, "event": "llm_call", "session_id": "s", "ts": "2026-11-28T10:00:00Z"}
    assert event_problem({**base, "origin": "dask"}) == '"origin" must be an object'
    assert "true or false" in event_problem({**base, "late": "yes"})
    assert "window_id" in event_problem({**base, "event": "window_amended"})
