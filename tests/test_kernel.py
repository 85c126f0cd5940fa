"""The extension in a real kernel (jupyter_client), including one killed mid-cell."""

from __future__ import annotations

import os
import re
import signal
from decimal import Decimal
from pathlib import Path

from kernel_support import execute, kernel  # noqa: F401 - fixture

from nbcost.ledger import read_log
from nbcost.report import build_report
from nbcost.rows import rows_from_events

# A discrete test meter, defined inside the kernel: $0.000002 a token.
KERNEL_METER = """
import nbcost
from decimal import Decimal
from nbcost.meters.base import Meter, Usage

class TokenMeter(Meter):
    name = "tokens"
    def start(self, sink):
        self.sink = sink
    def call(self, model, tokens):
        self.sink.record(Usage(meter="tokens", event="llm_call", key=model,
                               quantities={"calls": 1, "tokens": tokens},
                               cost_usd=Decimal("0.000002") * tokens))

tokens = TokenMeter()
nbcost.session().add_meter(tokens)
"""


def ledger_files(home: Path) -> list[Path]:
    return sorted(home.glob("spend/*/*.jsonl"))


def test_cells_in_a_real_kernel_carry_the_front_end_cell_id(kernel, nbcost_home):
    _, kc = kernel
    execute(kc, "%load_ext nbcost")
    execute(kc, KERNEL_METER)
    reply = execute(kc, "tokens.call('model-a', 1500)", cell_id="cell-abc")
    (log,) = ledger_files(nbcost_home)
    events = read_log(log).events
    end = [e for e in events if e["event"] == "cell_end"][-1]
    assert end["cell_id"] == "cell-abc"
    assert end["execution_count"] == reply["execution_count"]
    assert end["meters"]["tokens"]["cost_usd"] == "0.003"
    call = [e for e in events if e["event"] == "llm_call"][-1]
    assert call["cell_id"] == "cell-abc"


def test_a_kernel_killed_mid_cell_leaves_finished_cells_and_the_started_one(
        kernel, nbcost_home, wait_until):
    km, kc = kernel
    execute(kc, "%load_ext nbcost")
    execute(kc, KERNEL_METER)
    execute(kc, "tokens.call('model-a', 1000)", cell_id="first")
    kc.execute("tokens.call('model-b', 250)\nimport time\ntime.sleep(120)")
    (log,) = ledger_files(nbcost_home)
    assert wait_until(lambda: any(e.get("key") == "model-b" for e in read_log(log).events))
    os.kill(km.provisioner.process.pid, signal.SIGKILL)
    assert wait_until(lambda: not km.is_alive())

    contents = read_log(log)
    events = contents.events
    kinds = [e["event"] for e in events]
    assert "session_end" not in kinds
    finished = [e for e in events if e["event"] == "cell_end"]
    assert any(e["cell_id"] == "first" and e["meters"]["tokens"]["cost_usd"] == "0.002"
               for e in finished)
    started = [e for e in events if e["event"] == "cell_start"]
    running = started[-1]
    assert running["window_id"] not in {e["window_id"] for e in finished}
    calls = [e for e in events if e["event"] == "llm_call"]
    assert calls[-1]["key"] == "model-b" and running["window_id"] in calls[-1]["window_ids"]

    # Readers turn the unfinished cell into an "interrupted" row that keeps its LLM spend,
    # and the session's total (rebuilt without session_end) is still whole.
    rows = rows_from_events(events)
    interrupted = [r for r in rows if r["status"] == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["cost_usd"] == Decimal("0.0005")
    report = build_report(rows)
    assert report.total.cost_usd == Decimal("0.0025")


def run_and_collect(kc, code, timeout=60):
    """Execute ``code``; the reply and the iopub messages of this request up to idle."""
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return reply["content"], messages


def test_a_cost_cell_in_a_kernel_awaits_and_a_hard_stop_shows_the_users_frames(kernel):
    _, kc = kernel
    execute(kc, "%load_ext nbcost")
    execute(kc, KERNEL_METER.replace("    def call(self, model, tokens):\n",
                                     "    def call(self, model, tokens):\n"
                                     "        self.sink.check_budget('tokens')\n"))
    reply, messages = run_and_collect(
        kc, "%%cost --label aw --quiet\nimport asyncio\nawait asyncio.sleep(0)\n'awaited'")
    assert reply["status"] == "ok"
    results = [m["content"]["data"]["text/plain"] for m in messages
               if m["msg_type"] == "execute_result"]
    assert results == ["'awaited'"]

    reply, messages = run_and_collect(
        kc, "%%cost --budget 0.002 --hard --quiet\ntokens.call('m', 1000)\ntokens.call('m', 1)")
    assert reply["status"] == "error" and reply["ename"] == "BudgetExceeded"
    (error,) = [m["content"] for m in messages if m["msg_type"] == "error"]
    trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))
    assert "tokens.call('m', 1)" in trace and "cell budget of $0.0020" in trace
    assert not re.search(r"nbcost[/\\][\w/\\]+\.py", trace), trace
