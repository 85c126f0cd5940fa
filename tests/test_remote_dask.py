"""Dask: LLM calls inside tasks on a real LocalCluster (worker processes) land in the window
that submitted them, through the worker plugin and distributed's event channel."""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import pytest

distributed = pytest.importorskip("distributed")

import remote_tasks  # noqa: E402
from llm_support import srv  # noqa: E402,F401 - fixture
from remote_support import CALLS, base_urls, cost_of, tokens_of  # noqa: E402

import nbcost.dask  # noqa: E402
from nbcost.ledger import read_log  # noqa: E402
from nbcost.meters.llm import LlmMeter  # noqa: E402
from nbcost.rows import rows_from_events  # noqa: E402
from nbcost.session import Session  # noqa: E402

pytestmark = pytest.mark.remote


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture
def session(nbcost_home):
    session = Session(meters=[LlmMeter()])
    yield session
    session.close()


@pytest.fixture
def attached(client, session):
    detach = nbcost.dask.attach(client, session)
    yield client
    detach()


def llm(record) -> dict:
    q = record.llm.quantities
    return {k: q[k] for k in ("input_tokens", "output_tokens", "calls")}


def test_llm_calls_in_tasks_land_in_the_cell_that_submitted_them(attached, session, srv):  # noqa: F811
    calls = CALLS[:4]
    window = session.open_window("cell", execution_count=1)
    assert all(attached.gather(attached.map(remote_tasks.ask, base_urls(srv, calls))))
    record = session.close_window(window.id)
    assert llm(record) == tokens_of(calls)
    assert record.llm.cost_usd == cost_of(calls)
    session.flush()
    events = read_log(session.ledger_path).events
    logged = [e for e in events if e["event"] == "llm_call"]
    assert len(logged) == 4 and all(e["window_ids"] == [window.id] for e in logged)
    assert {e["origin"]["kind"] for e in logged} == {"dask"}
    assert {e["origin"]["worker"] for e in logged} <= set(attached.scheduler_info()["workers"])
    assert not any(e.get("late") for e in logged)


def test_tasks_submitted_outside_a_window_bill_the_session_only(attached, session, srv):  # noqa: F811
    assert attached.submit(remote_tasks.ask, base_urls(srv, CALLS[:1])[0]).result()
    window = session.open_window("cell", execution_count=1)
    record = session.close_window(window.id)
    assert record.llm is None
    assert session.totals()["llm"].cost_usd == cost_of(CALLS[:1])


def test_two_cells_are_kept_apart_and_a_task_still_running_amends_its_cell(
        attached, session, srv, wait_until):  # noqa: F811
    first_calls, second_calls = CALLS[:1], CALLS[1:3]
    gate = distributed.Event("nbcost-gate", client=attached)
    first = session.open_window("cell", execution_count=1)
    pending = attached.submit(remote_tasks.ask_when, base_urls(srv, first_calls)[0],
                              "nbcost-gate", pure=False)
    first_record = session.close_window(first.id)  # the task still waits
    assert first_record.llm is None
    second = session.open_window("cell", execution_count=2)
    futures = attached.map(remote_tasks.ask, base_urls(srv, second_calls), pure=False)
    gate.set()
    assert all(attached.gather(futures)) and pending.result()
    second_record = session.close_window(second.id)
    assert llm(second_record) == tokens_of(second_calls)  # not the first cell's task
    assert wait_until(lambda: session.totals()["llm"].quantities["calls"] == 3)
    session.flush()
    events = read_log(session.ledger_path).events
    (amended,) = [e for e in events if e["event"] == "window_amended"]
    assert amended["window_id"] == first.id
    assert Decimal(amended["cost_usd"]) == cost_of(first_calls)
    rows = {r["window_id"]: r for r in rows_from_events(events)}
    assert rows[first.id]["cost_usd"] == cost_of(first_calls)
    assert rows[second.id]["cost_usd"] == cost_of(second_calls)


def test_tasks_submitted_by_tasks_bill_the_cell_of_the_outer_task(attached, session, srv,  # noqa: F811
                                                                   wait_until):
    fanned, single = CALLS[:2], CALLS[2:3]
    first = session.open_window("cell", execution_count=1)
    assert attached.submit(remote_tasks.ask_in_dask_subtasks, base_urls(srv, fanned),
                           pure=False).result()
    assert attached.submit(remote_tasks.ask_in_a_dask_subtask, base_urls(srv, single)[0],
                           pure=False).result()
    session.close_window(first.id)
    second = session.open_window("cell", execution_count=2)
    session.close_window(second.id)

    def rows():
        session.flush()
        return {r["window_id"]: r for r in rows_from_events(read_log(session.ledger_path).events)}

    # In the cell's record, whether the calls came in time or amended it.
    assert wait_until(lambda: rows()[first.id]["cost_usd"] == cost_of(fanned + single),
                      timeout=60)
    made = [e for e in read_log(session.ledger_path).events if e["event"] == "llm_call"]
    assert len(made) == 3 and all(e["window_ids"] == [first.id] for e in made)
    assert rows()[second.id]["cost_usd"] == 0


def test_a_cell_budget_counts_its_tasks_spend_as_it_arrives(attached, session, srv,  # noqa: F811
                                                             capsys, wait_until):
    from nbcost.errors import BudgetExceeded

    calls = CALLS[:2]
    budget = cost_of(calls[:1])  # the cheaper call alone spends all of it
    window = session.open_window("cell", execution_count=1)
    session.annotate_window(window.id, budget_usd=budget, budget_hard=True)
    assert all(attached.gather(attached.map(remote_tasks.ask, base_urls(srv, calls), pure=False)))

    def warnings():
        session.flush()
        return [e for e in read_log(session.ledger_path).events
                if e["event"] == "budget" and e["action"] == "warning"]

    # Warned as the tasks' calls reach the kernel, while the cell still runs...
    assert wait_until(lambda: any(w["threshold"] == "1" for w in warnings()), timeout=60)
    assert session.is_open(window.id)
    (crossed,) = [w for w in warnings() if w["threshold"] == "1"]
    assert (crossed["scope"], crossed["window_id"]) == ("cell", window.id)
    assert Decimal(crossed["spent_usd"]) >= budget
    assert "cell budget" in capsys.readouterr().err
    # ...and the hard budget refuses the kernel's own next call (workers are never stopped).
    with pytest.raises(BudgetExceeded):
        remote_tasks.ask(base_urls(srv, CALLS[2:3])[0])
    session.close_window(window.id)


def test_a_killed_worker_keeps_what_it_sent(attached, session, srv, tmp_path, wait_until):  # noqa: F811
    url = base_urls(srv, CALLS[:1])[0]
    window = session.open_window("cell", execution_count=1)
    future = attached.submit(remote_tasks.ask_then_hang_once, url, str(tmp_path / "hung"),
                             pure=False)
    # The call was made and reached the kernel while the task still runs...
    assert wait_until(lambda: session.live_totals(window.id).get("llm", {}).get("calls") == 1,
                      timeout=60)
    session.flush()
    (call,) = [e for e in read_log(session.ledger_path).events if e["event"] == "llm_call"]
    worker = call["origin"]["worker"]  # where the task runs, as the worker itself said
    pid = attached.run(remote_tasks.pid, workers=[worker])[worker]
    assert pid == call["origin"]["pid"]
    os.kill(pid, signal.SIGKILL)  # ...then its worker dies; the task runs again elsewhere
    assert future.result(timeout=120)
    record = session.close_window(window.id)
    assert llm(record) == tokens_of(CALLS[:1] * 2)  # two calls were made, both are billed
    assert record.llm.cost_usd == cost_of(CALLS[:1] * 2)


def test_load_ext_with_a_live_client_offers_attach(client, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        distributed.Client.current()  # the module's client is this process's default
        shell.run_line_magic("load_ext", "nbcost")
        out = capsys.readouterr().out
        assert "nbcost.dask.attach(client)" in out
        assert out.count("nbcost.dask.attach") == 1
    finally:
        shell.run_line_magic("unload_ext", "nbcost")
        InteractiveShell.clear_instance()


def test_no_hint_and_no_dask_import_without_a_client():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", (
        "import sys, nbcost.dask\n"
        "print(nbcost.dask.attach_hint(), 'distributed' in sys.modules)\n"
        "import distributed\n"
        "print(nbcost.dask.attach_hint())")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False", "None"]


def test_gpu_time_of_tasks_on_gpu_workers_adds_up_in_the_submitting_cell(
        client, session, wait_until):
    detach = nbcost.dask.attach(client, session, nvml="remote_tasks:worker_nvml")
    try:
        window = session.open_window("cell", execution_count=1)
        assert all(client.gather(client.map(remote_tasks.gpu_busy, [1.0, 1.0], pure=False)))
        session.close_window(window.id)

        def gpu_events():
            session.flush()
            return [e for e in read_log(session.ledger_path).events if e["event"] == "gpu_usage"]

        assert wait_until(lambda: len(gpu_events()) == 2, timeout=60)
    finally:
        detach()
    events = gpu_events()
    assert {e["origin"]["kind"] for e in events} == {"dask"}
    assert all(e["window_ids"] == [window.id] for e in events)
    for event in events:  # each task: about its second of busy GPU, on its worker's GPU
        assert event["quantities"]["busy_s"] == pytest.approx(1.0, abs=0.45)
        assert event["quantities"]["held_s"] >= event["quantities"]["busy_s"] - 0.05
        assert event["key"].startswith(event["origin"]["worker"])
        assert Decimal(event["cost_usd"]) > 0
    rows = {r["window_id"]: r for r in rows_from_events(read_log(session.ledger_path).events)}
    row = rows[window.id]  # in the cell's record, whether it came in time or amended it
    assert row["remote_gpu_busy_s"] == pytest.approx(sum(e["quantities"]["busy_s"]
                                                         for e in events))
    assert row["remote_gpu_cost_usd"] == sum(Decimal(e["cost_usd"]) for e in events)
    # The summary shows the workers' GPUs apart from the kernel's own.
    from nbcost.display.summary import meter_lines
    from nbcost.records import compact_meter

    lines = meter_lines("remote_gpu", compact_meter("remote_gpu", session.totals()["remote_gpu"]))
    assert lines[0][0] == "Remote GPU" and "busy" in lines[0][1]


def test_in_a_real_kernel_a_cell_that_maps_llm_calls_shows_their_cost(srv, nbcost_home,  # noqa: F811
                                                                        tmp_path, wait_until):
    """The notebook path end to end: the cluster is the kernel's child (its workers inherit the
    kernel's environment, so the child hook must step aside: each call counted once), the
    window reaches tasks through the cell's annotations."""
    import os
    from pathlib import Path

    from jupyter_client.manager import start_new_kernel

    tests = str(Path(__file__).resolve().parent)
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})
    try:
        def run(code, cell_id):
            msg = kc.session.msg("execute_request", {
                "code": code, "silent": False, "store_history": True, "user_expressions": {},
                "allow_stdin": False, "stop_on_error": True}, metadata={"cellId": cell_id})
            kc.shell_channel.send(msg)
            reply = kc.get_shell_msg(timeout=120)
            while reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                reply = kc.get_shell_msg(timeout=120)
            assert reply["content"]["status"] == "ok", reply["content"]

        run("%load_ext nbcost", "load")
        run(f"import sys; sys.path.insert(0, {tests!r})\n"
            "import distributed, nbcost.dask, remote_tasks\n"
            "cluster = distributed.LocalCluster(processes=True, n_workers=1, threads_per_worker=1,"
            " dashboard_address=None, silence_logs=40)\n"
            "client = distributed.Client(cluster)\n"
            "detach = nbcost.dask.attach(client)", "attach")
        run(f"assert all(client.gather(client.map(remote_tasks.ask, "
            f"{base_urls(srv, CALLS[:2])!r})))", "fan-out")
        run("detach(); client.close(); cluster.close()", "close")
        (log,) = sorted(nbcost_home.glob("spend/*/*.jsonl"))

        def ends():
            return {e["cell_id"]: e for e in read_log(log).events if e["event"] == "cell_end"}

        assert wait_until(lambda: "close" in ends())
        fan_out = ends()["fan-out"]
        q = fan_out["meters"]["llm"]["quantities"]
        assert {k: q[k] for k in ("input_tokens", "output_tokens", "calls")} == tokens_of(CALLS[:2])
        assert Decimal(fan_out["meters"]["llm"]["cost_usd"]) == cost_of(CALLS[:2])
        calls = [e for e in read_log(log).events if e["event"] == "llm_call"]
        assert len(calls) == 2 and {c["origin"]["kind"] for c in calls} == {"dask"}
        assert not list((nbcost_home / "children").glob("*/*.childlog"))  # not twice
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
