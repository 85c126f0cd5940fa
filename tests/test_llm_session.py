"""The LLM meter inside a real Session: windows, the spend log, budgets, nested calls."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest
from llm_support import FAKE_KEY, expected_cost, llm, llm_calls, messages, srv  # noqa: F401

import nbcost
from nbcost.api import set_session
from nbcost.meters.llm.recorder import INSIDE_CALL


def client(srv, **scenario):
    return openai.OpenAI(base_url=srv.base_url("openai", **scenario), api_key=FAKE_KEY, max_retries=0)


def ledger_events(session):
    session.flush()
    return [json.loads(line) for line in session.ledger_path.read_text().splitlines() if line]


def test_track_window_and_spend_log(srv, llm):
    old = set_session(llm)
    try:
        with nbcost.track("summarise") as t:
            client(srv, input_tokens=1000, output_tokens=50).chat.completions.create(
                model="gpt-4o-mini", messages=messages())
    finally:
        set_session(old)
    cost = expected_cost("gpt-4o-mini", "openai", input_tokens=1000, output_tokens=50)
    assert t.cost_usd == cost
    assert t.llm.quantities["input_tokens"] == 1000 and t.llm.quantities["calls"] == 1
    events = [e for e in ledger_events(llm) if e.get("event") == "llm_call"]
    assert len(events) == 1
    assert Decimal(events[0]["cost_usd"]) == cost and events[0]["key"] == "gpt-4o-mini"
    assert events[0]["attributes"]["usage_source"] == "api"


def test_soft_then_hard_budget(srv, llm, capsys):
    c = client(srv, input_tokens=1_000_000, output_tokens=0)
    one = expected_cost("gpt-4o-mini", "openai", input_tokens=1_000_000)
    llm.settings.budget_usd = one * Decimal("1.5")
    c.chat.completions.create(model="gpt-4o-mini", messages=messages())
    c.chat.completions.create(model="gpt-4o-mini", messages=messages())  # past the budget: warned
    llm.settings.budget_hard = True
    before = len(srv.requests)
    with pytest.raises(nbcost.BudgetExceeded):
        c.chat.completions.create(model="gpt-4o-mini", messages=messages())
    assert len(srv.requests) == before and len(llm_calls(llm)) == 2
    assert any(e.get("event") == "budget" and e.get("action") == "refused" for e in ledger_events(llm))


def test_nested_call_is_not_recorded_twice(srv, llm):
    """What litellm does: an outer tracked call makes an SDK call underneath."""
    c = client(srv)
    token = INSIDE_CALL.set(True)
    try:
        c.chat.completions.create(model="gpt-4o", messages=messages())
    finally:
        INSIDE_CALL.reset(token)
    assert llm_calls(llm) == []
    c.chat.completions.create(model="gpt-4o", messages=messages())
    assert len(llm_calls(llm)) == 1


def test_an_nbcost_fault_never_breaks_the_call(srv, llm, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("nbcost bug")

    monkeypatch.setattr(llm.meters["llm"]._patcher.recorder.prices, "price", broken)
    reply = client(srv).chat.completions.create(model="gpt-4o", messages=messages())
    assert reply.choices[0].message.content == "word0 word1 word2 word3 "
    assert "internal error" in capsys.readouterr().err


LATE_IMPORT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from llm_support import RecordingSink, FAKE_KEY
import nbcost.testing
from nbcost.meters.llm import LlmMeter

assert "openai" not in sys.modules
sink = RecordingSink()
meter = LlmMeter()
meter.start(sink)
assert "openai" not in sys.modules  # starting the meter imports no SDK
import openai  # patched as it is imported
with nbcost.testing.llm_server() as srv:
    client = openai.OpenAI(base_url=srv.base_url("openai"), api_key=FAKE_KEY)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    meter.stop()
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    meter.start(sink)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
print(len(sink.usages), [u.quantities["input_tokens"] for u in sink.usages])
"""


def test_sdk_imported_after_start_is_patched_and_stop_start_cycles(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    tests_dir = str(Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", LATE_IMPORT, tests_dir], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "2 [21, 21]"
