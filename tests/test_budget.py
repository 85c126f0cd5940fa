"""Budgets: warnings at the crossing (not at the cell's end), with the true share, and the budget
every window ran under in its record and in the live totals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from testmeters import PennyMeter, TokenMeter

from nbcost.budget import Budgets, describe
from nbcost.config import load_settings
from nbcost.ledger import read_log
from nbcost.records import Budget
from nbcost.session import Session


@pytest.fixture
def session():
    s = Session(load_settings(), meters=[TokenMeter()])
    yield s
    s.close()


def events(session):
    session.flush()
    return read_log(session.ledger_path).events


@pytest.mark.parametrize("usd, spent, text", [
    ("0.001", "0.04", "cell budget $0.0010: 4,000 % spent, $0.0390 over"),
    ("0.01", "0.008", "cell budget $0.0100: 80 % spent"),
    ("5", "5", "cell budget $5.00: 100 % spent"),
    ("0.001", "0.006175", "cell budget $0.0010: 618 % spent, $0.0052 over"),
])
def test_a_warning_names_the_true_share_and_the_overshoot(usd, spent, text):
    assert describe(Budget(Decimal(usd), False, "cell"), Decimal(spent)) == text


def test_a_cell_budget_warns_at_the_call_that_crosses_it_not_at_the_end(session, capsys):
    tokens = session.meters["tokens"]
    cell = session.open_window("cell", execution_count=3)
    session.annotate_window(cell.id, budget_usd=Decimal("0.001"))
    tokens.call("m", 400)  # $0.0008: 80 %
    assert capsys.readouterr().err == "nbcost: cell budget $0.0010: 80 % spent.\n"
    for _ in range(4):
        tokens.call("m", 5000)  # $0.01 each
    err = capsys.readouterr().err
    assert err == "nbcost: cell budget $0.0010: 1,080 % spent, $0.0098 over.\n"  # once, at the first
    record = session.close_window(cell.id)
    assert capsys.readouterr().err == ""  # nothing more at the end
    log = events(session)
    kinds = [e["event"] for e in log if e["event"] in ("llm_call", "budget", "cell_end")]
    assert kinds == ["llm_call", "budget", "llm_call", "budget", "llm_call", "llm_call", "llm_call",
                     "cell_end"]
    warnings = [e for e in log if e["event"] == "budget"]
    assert [(w["threshold"], w["spent_usd"], w["scope"], w["window_id"]) for w in warnings] == [
        ("0.8", "0.0008", "cell", cell.id), ("1", "0.0108", "cell", cell.id)]
    assert record.budget == Budget(Decimal("0.001"), False, "cell")
    assert record.compact()["budget"] == {"usd": "0.001", "hard": False, "scope": "cell"}


def test_continuous_spend_warns_on_a_live_tick(session, capsys, wait_until):
    """GPU-like spend grows with the clock: the ticker's live totals are where it crosses."""
    session.add_meter(PennyMeter())  # $0.01 a second
    cell = session.open_window("cell", execution_count=1)
    session.annotate_window(cell.id, budget_usd=Decimal("0.0002"))  # crossed after 20 ms
    live = session.live_totals(cell.id)
    assert live["budget"] == {"usd": "0.0002", "hard": False, "scope": "cell"}

    def ticked_and_warned() -> bool:
        session.live_totals(cell.id)  # what the ticker does ~4×/s
        return any(e["event"] == "budget" for e in events(session))

    assert wait_until(ticked_and_warned, timeout=10)
    assert session.is_open(cell.id)  # warned while the cell still runs
    assert "cell budget $0.0002: " in capsys.readouterr().err
    session.close_window(cell.id)


def test_a_gpu_checkpoint_checks_the_session_budget(session, capsys, wait_until):
    session.add_meter(PennyMeter())
    session.settings.budget_usd = Decimal("0.0001")
    assert wait_until(lambda: session.total_usd > Decimal("0.0001"), timeout=10)
    session.log("gpu_checkpoint", {"held_s": 1.0})  # what the GPU meter's sampler thread does
    warnings = [e for e in events(session) if e["event"] == "budget"]
    assert [(w["scope"], w["threshold"]) for w in warnings] == [("session", "1")]
    assert "session budget $0.0001: " in capsys.readouterr().err


def test_a_window_without_its_own_budget_runs_under_the_session_budget(session):
    session.settings.budget_usd, session.settings.budget_hard = Decimal("2"), True
    cell = session.open_window("cell")
    session.meters["tokens"].call("m", 10)
    assert session.live_totals(cell.id)["budget"] == {"usd": "2", "hard": True,
                                                       "scope": "session"}
    assert session.live_totals()["budget"]["scope"] == "session"
    assert session.close_window(cell.id).budget == Budget(Decimal("2"), True, "session")
    session.settings.budget_usd = None
    unbudgeted = session.close_window(session.open_window("track").id)
    assert unbudgeted.budget is None and "budget" not in unbudgeted.compact()


def test_a_new_session_budget_warns_afresh(session, capsys):
    budgets = Budgets(session.settings, lambda event, fields: None)
    session.settings.budget_usd = Decimal("1")
    budgets.check("session", Decimal("2"), {})
    budgets.check("session", Decimal("3"), {})
    assert capsys.readouterr().err.count("session budget") == 1
    budgets.session_changed()
    budgets.check("session", Decimal("3"), {})
    assert "300 % spent" in capsys.readouterr().err
