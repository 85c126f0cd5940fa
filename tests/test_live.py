"""The live display in a real kernel (jupyter_client): the ``nbcost`` comm and the %%cost widget.

The test client plays the part of the JupyterLab extension: it answers the kernel's ``hello`` and
reads what arrives on iopub while the cell runs.

What "while the cell runs" means here is what the messaging protocol promises, never when this
client happened to read a message: iopub and shell are separate sockets, so an ``execute_reply``
may be read before or after the iopub messages sent ahead of it. On iopub, messages keep the
order the kernel sent them in; each carries the request it belongs to (``parent_header``) and
the kernel's send time (``header.date``, the clock the records' ``start``/``end`` use).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from decimal import Decimal

import pytest
from jupyter_client.manager import start_new_kernel

# Inside the kernel: load nbcost and add a meter that charges one cent per second, so the cost
# grows while a cell runs (the kernel has no GPU and makes no LLM calls here).
LOAD = """
%load_ext nbcost
import nbcost
from decimal import Decimal
from nbcost.meters.base import Meter, Measurement

class PennyMeter(Meter):
    name = "penny"
    def measure(self, start, end):
        seconds = max(end - start, 0.0)
        return Measurement({"seconds": seconds}, cost_usd=Decimal("0.01") * Decimal(str(round(seconds, 6))))

nbcost.session().add_meter(PennyMeter())
"""

BUSY_2S = """%%cost --label two-seconds
import time
started = time.time()
while time.time() - started < 2:
    sum(range(1000))
"""


@pytest.fixture
def kernel(nbcost_home):
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})
    yield kc
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=True)


def run(kc, code, cell_id=None, timeout=60):
    """Execute like JupyterLab (cellId in the metadata); return (iopub messages, reply).

    The iopub messages are in the kernel's order, up to this request's ``status: idle``.
    """
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    request = kc.session.msg("execute_request", content,
                             metadata={"cellId": cell_id} if cell_id else {})
    kc.shell_channel.send(request)
    msg_id = request["header"]["msg_id"]
    messages, reply, idle = [], None, False
    deadline = time.monotonic() + timeout
    while not (reply and idle):
        assert time.monotonic() < deadline, "the cell did not finish"
        if reply is None and kc.shell_channel.msg_ready():
            msg = kc.get_shell_msg(timeout=1)
            if msg["parent_header"].get("msg_id") == msg_id:
                reply = msg
            continue
        try:
            msg = kc.get_iopub_msg(timeout=0.02)
        except Exception:  # queue.Empty
            continue
        messages.append(msg)
        if (msg["msg_type"] == "status" and msg["parent_header"].get("msg_id") == msg_id
                and msg["content"]["execution_state"] == "idle"):
            idle = True
    assert reply["content"]["status"] == "ok", reply["content"]
    return messages, reply


def during(messages, reply, sent):
    """Assert that ``sent`` (some of ``messages``) came while ``reply``'s cell ran: each belongs
    to that execute_request and the kernel sent it between the cell's ``busy`` and ``idle``."""
    request_id = reply["parent_header"]["msg_id"]
    status = [i for i, m in enumerate(messages) if m["msg_type"] == "status"
              and m["parent_header"].get("msg_id") == request_id]
    busy = next(i for i in status if messages[i]["content"]["execution_state"] == "busy")
    idle = next(i for i in status if messages[i]["content"]["execution_state"] == "idle")
    for m in sent:
        assert m["parent_header"]["msg_id"] == request_id
        assert busy < messages.index(m) < idle


def utc(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def comm_data(messages, comm_id, kind=None):
    out = [m["content"]["data"] for m in messages
           if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id]
    return [d for d in out if kind is None or d.get("type") == kind]


def load(kc, answer=True):
    """``%load_ext nbcost``; answer the kernel's hello like the lab extension; return the comm id."""
    messages, _ = run(kc, LOAD)
    opens = [m for m in messages
             if m["msg_type"] == "comm_open" and m["content"]["target_name"] == "nbcost"]
    assert len(opens) == 1
    hello = opens[0]["content"]["data"]
    assert hello["v"] == 1 and hello["type"] == "hello" and hello["session_id"]
    assert {"tick", "final", "session", "reattach"} <= set(hello["capabilities"])
    comm_id = opens[0]["content"]["comm_id"]
    if answer:
        send_comm(kc, "comm_msg", {"comm_id": comm_id,
                                   "data": {"v": 1, "type": "hello", "capabilities": ["tick"]}})
    return comm_id


def send_comm(kc, msg_type, content):
    kc.shell_channel.send(kc.session.msg(msg_type, content))


def widget_states(messages):
    """The CostWidget's state as the front end would see it after each message, in order."""
    model_id, state, history = None, {}, []
    for m in messages:
        content = m["content"]
        if m["msg_type"] == "comm_open" and content.get("target_name") == "jupyter.widget":
            opened = content["data"]["state"]
            if opened.get("_anywidget_id") == "nbcost.display.widget.CostWidget":
                model_id, state = content["comm_id"], dict(opened)
                history.append((m, dict(state)))
        elif m["msg_type"] == "comm_msg" and content["comm_id"] == model_id:
            if content["data"].get("method") == "update":
                state.update(content["data"]["state"])
                history.append((m, dict(state)))
    return model_id, history


def test_ticks_arrive_while_the_cell_runs_and_the_widget_ends_on_the_final_record(kernel):
    comm_id = load(kernel)
    messages, reply = run(kernel, BUSY_2S, cell_id="cell-live")

    ticks = [(m, m["content"]["data"]) for m in messages
             if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
             and m["content"]["data"].get("type") == "tick"]
    assert len(ticks) >= 4, "a 2-second cell ticks several times"
    during(messages, reply, [m for m, _ in ticks])
    # At most four a second (plus one for the edges).
    assert len(ticks) <= 4 * 2.6 + 1
    elapsed = [d["elapsed_s"] for _, d in ticks]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0
    for _, tick in ticks:
        assert tick["record"]["cell_id"] == "cell-live"
        assert tick["record"]["status"] == "running"
        assert tick["record"]["label"] == "two-seconds"
    costs = [Decimal(d["record"]["cost_usd"]) for _, d in ticks]
    assert costs[-1] > costs[0], "the running cost grows"
    assert Decimal(ticks[-1][1]["session"]["cost_usd"]) >= costs[-1]

    finals = [m for m in messages if m["msg_type"] == "comm_msg"
              and m["content"]["comm_id"] == comm_id and m["content"]["data"]["type"] == "final"]
    assert len(finals) == 1
    final = finals[0]["content"]["data"]
    record = final["record"]
    assert record["cell_id"] == "cell-live" and record["status"] == "ok"
    assert record["label"] == "two-seconds" and record["wall_s"] >= 2
    assert Decimal("0.02") <= Decimal(record["cost_usd"]) < Decimal("0.04")
    assert record["penny"]["seconds"] >= 2
    assert final["window_id"] == ticks[0][1]["window_id"]
    assert final["session"]["cells"] == 1
    # Every tick was sent while the cell's window was open: after it started, before its final
    # (which the kernel sends once the window has closed); nothing ticks after the final.
    final_at = messages.index(finals[0])
    assert all(messages.index(m) < final_at for m, _ in ticks)
    assert all(utc(record["start"]) <= m["header"]["date"] <= finals[0]["header"]["date"]
               for m, _ in ticks)

    model_id, states = widget_states(messages)
    assert model_id is not None, "the %%cost cell shows the live widget"
    finished_at = next(i for i, (m, s) in enumerate(states) if s.get("running") is False)
    live = [(m, s) for m, s in states[:finished_at] if s.get("running")]
    during(messages, reply, [m for m, _ in live])
    assert len({s["record"]["wall_s"] for _, s in live}) >= 3, "the widget updates while it runs"
    assert all(s["title"] == "nbcost · two-seconds · running" for _, s in live)
    assert all(dict(s["lines"])["Cost"].startswith("$") for _, s in live if s["lines"])
    last = states[-1][1]
    assert last["running"] is False
    assert last["record"] == record, "the widget's final state is the final record"
    assert last["title"] == "nbcost · two-seconds"

    # The output ends as the static summary, which every viewer renders: the same lines.
    displays = [m for m in messages if m["msg_type"] == "display_data"]
    assert displays[0]["content"]["data"]["application/vnd.jupyter.widget-view+json"][
        "model_id"] == model_id
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    assert len(updates) == 1
    summary = updates[0]["content"]["data"]
    assert "two-seconds" in summary["text/plain"] and "two-seconds" in summary["text/html"]
    assert "application/vnd.jupyter.widget-view+json" not in summary
    for label, value in last["lines"]:
        assert re.search(rf"^  {re.escape(label)}\s+{re.escape(value)}$", summary["text/plain"],
                         re.MULTILINE), (label, value)


def test_the_widget_shows_the_true_share_of_a_blown_budget_and_the_summary_keeps_it(kernel):
    load(kernel)
    code = BUSY_2S.replace("--label two-seconds", "--label over --budget 0.001")
    messages, reply = run(kernel, code, cell_id="over-budget")
    _, states = widget_states(messages)
    shares = [s["budget"] for _, s in states if s.get("running") and s.get("budget")]
    assert shares, "the widget shows the cell's budget"
    over = [b for b in shares if b["level"] == "over"]
    assert over, "a penny a second blows $0.001 within the first tick or two"
    pattern = re.compile(r"^([\d,]+) % of the \$0\.0010 cell budget, \$0\.0\d+ over$")
    percents = []
    for budget in over:
        match = pattern.match(budget["text"])
        assert match, budget["text"]
        percents.append(int(match.group(1).replace(",", "")))
        assert budget["fill"] == 1.0
    assert max(percents) > 100, "the share is not capped at 100 %"
    assert percents == sorted(percents), "the share grows with the running cost"
    final = states[-1][1]
    assert final["running"] is False and pattern.match(final["budget"]["text"])
    (update,) = [m for m in messages if m["msg_type"] == "update_display_data"]
    text = update["content"]["data"]["text/plain"]
    assert re.search(r"^  Budget\s+[\d,]+ % of the \$0\.0010 cell budget, \$\S+ over$", text,
                     re.MULTILINE), text


def test_plain_cells_get_ticks_and_finals_too(kernel):
    comm_id = load(kernel)
    messages, _ = run(kernel, "import time; time.sleep(1.2)", cell_id="plain")
    assert comm_data(messages, comm_id, "tick")
    (final,) = comm_data(messages, comm_id, "final")
    assert final["record"]["cell_id"] == "plain" and final["record"]["label"] is None
    assert not widget_states(messages)[1], "only %%cost cells get a widget"


def test_a_usual_cell_keeps_its_short_path_and_still_gets_its_final(kernel):
    """Without a meter that measures every cell (no GPU, no PennyMeter) a cell takes the
    session's short path even with the lab extension's comm open, and its final still comes."""
    messages, _ = run(kernel, "%load_ext nbcost")
    (opened,) = [m for m in messages if m["msg_type"] == "comm_open"
                 and m["content"]["target_name"] == "nbcost"]
    comm_id = opened["content"]["comm_id"]
    send_comm(kernel, "comm_msg", {"comm_id": comm_id, "data": {"v": 1, "type": "hello"}})
    run(kernel, "x = 1", cell_id="first")
    probe = ("import nbcost; s = nbcost.session(); noted = s._noted is not None; "
             "print('usual:', noted, [w.noted is not None for w in s._open.values()])")
    messages, reply = run(kernel, probe, cell_id="probe")
    printed = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    assert "usual: True [True]" in printed
    (final,) = comm_data(messages, comm_id, "final")
    record = final["record"]
    assert record["cell_id"] == "probe" and record["status"] == "ok"
    assert record["execution_count"] == reply["content"]["execution_count"]
    assert record["cost_usd"] == "0" and record["end"] >= record["start"]
    assert final["session"]["cells"] >= 2  # the cells before it ("first", the load) too


def test_ticks_flow_while_the_front_ends_answer_waits_behind_the_cells(kernel):
    # "Run all": the answer to the hello queues behind the cells it wants to watch.
    comm_id = load(kernel, answer=False)
    messages, reply = run(kernel, BUSY_2S, cell_id="run-all")
    ticks = [m for m in messages if m["msg_type"] == "comm_msg"
             and m["content"]["comm_id"] == comm_id and m["content"]["data"]["type"] == "tick"]
    assert ticks
    during(messages, reply, ticks)
    (final,) = comm_data(messages, comm_id, "final")
    assert final["record"]["cell_id"] == "run-all"
    assert not [m for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"]


def test_a_front_end_that_closes_the_comm_gets_nothing_more(kernel):
    comm_id = load(kernel)
    send_comm(kernel, "comm_close", {"comm_id": comm_id, "data": {}})
    messages, _ = run(kernel, "import time; time.sleep(0.8)", cell_id="closed")
    # (The answer to the hello may still arrive; nothing about the cell does.)
    assert comm_data(messages, comm_id, "tick") == []
    assert comm_data(messages, comm_id, "final") == []


def test_reattach_after_a_page_reload_sends_the_state(kernel):
    load(kernel)
    run(kernel, "x = 1", cell_id="first")
    # A reloaded page opens its own comm; the kernel greets it and sends the session so far.
    send_comm(kernel, "comm_open", {"comm_id": "reloaded", "target_name": "nbcost",
                                    "data": {"v": 1, "type": "reattach"}})
    messages, _ = run(kernel, "import time; time.sleep(0.8)", cell_id="second")
    hello, session = comm_data(messages, "reloaded")[:2]
    assert hello["type"] == "hello"
    assert session["type"] == "session"
    assert [c["cell_id"] for c in session["cells"]] == ["first"]
    assert session["session"]["session_id"] == hello["session_id"]
    (final,) = comm_data(messages, "reloaded", "final")
    assert final["record"]["cell_id"] == "second"
    assert comm_data(messages, "reloaded", "tick"), "the reattached page gets live ticks"


def test_unload_closes_the_comm(kernel):
    comm_id = load(kernel)
    messages, _ = run(kernel, "%unload_ext nbcost")
    closes = [m for m in messages if m["msg_type"] == "comm_close"]
    assert [m["content"]["comm_id"] for m in closes] == [comm_id]


def test_a_headless_run_saves_the_static_summary_not_the_widget(tmp_path, nbcost_home):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext nbcost"),
                nbformat.v4.new_code_cell("%%cost --label saved\nx = sum(range(1000))")]
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    (output,) = [o for o in nb.cells[1].outputs if o.output_type == "display_data"]
    assert "application/vnd.jupyter.widget-view+json" not in output.data
    assert "nbcost · saved" in output.data["text/plain"]
    assert "nbcost · saved" in output.data["text/html"]
