"""Ray: LLM calls inside tasks and actor methods on a real local Ray (ray.init, worker
processes) land in the window that submitted them, through the runtime environment's worker
set-up hook and a named collector actor."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import remote_tasks  # noqa: E402
from llm_support import srv  # noqa: E402,F401 - fixture
from remote_support import CALLS, base_urls, cost_of, tokens_of  # noqa: E402

import nbcost.ray  # noqa: E402
from nbcost.ledger import read_log  # noqa: E402
from nbcost.meters.llm import LlmMeter  # noqa: E402
from nbcost.rows import rows_from_events  # noqa: E402
from nbcost.session import Session  # noqa: E402

pytestmark = pytest.mark.remote

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster():
    paths = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env=nbcost.ray.runtime_env({"env_vars": {"PYTHONPATH": paths}}))
    yield
    ray.shutdown()


@pytest.fixture
def session(cluster, nbcost_home):
    session = Session(meters=[LlmMeter()])
    detach = nbcost.ray.attach(session)
    yield session
    detach()
    session.close()


def llm(record) -> dict:
    q = record.llm.quantities
    return {k: q[k] for k in ("input_tokens", "output_tokens", "calls")}


def test_llm_calls_in_tasks_and_actor_methods_land_in_the_cell(session, srv):  # noqa: F811
    ask = ray.remote(remote_tasks.ask)
    asker = ray.remote(remote_tasks.Asker).remote()
    in_tasks, in_actor = CALLS[:3], CALLS[3:4]
    window = session.open_window("cell", execution_count=1)
    assert all(ray.get([ask.remote(url) for url in base_urls(srv, in_tasks)]))
    assert ray.get(asker.ask.remote(base_urls(srv, in_actor)[0]))
    record = session.close_window(window.id)
    assert llm(record) == tokens_of(in_tasks + in_actor)
    assert record.llm.cost_usd == cost_of(in_tasks + in_actor)
    session.flush()
    logged = [e for e in read_log(session.ledger_path).events if e["event"] == "llm_call"]
    assert len(logged) == 4 and all(e["window_ids"] == [window.id] for e in logged)
    assert {e["origin"]["kind"] for e in logged} == {"ray"}
    assert sum(1 for e in logged if e["origin"]["actor"]) == 1


def test_a_detach_and_a_quick_attach_keep_the_one_collector(cluster, nbcost_home, srv):  # noqa: F811
    """The collector actor dies with its last handle: a detach followed at once by an attach
    (``%unload_ext`` then ``%load_ext``) must find the same live actor, not one dying."""
    session = Session(meters=[LlmMeter()])
    try:
        nbcost.ray.attach(session)()
        first = nbcost.ray._collector(nbcost.ray._collector_name)
        detach = nbcost.ray.attach(session)
        assert nbcost.ray._collector(nbcost.ray._collector_name) is first
        ask = ray.remote(remote_tasks.ask)
        window = session.open_window("cell", execution_count=1)
        assert ray.get(ask.remote(base_urls(srv, CALLS[:1])[0]))
        record = session.close_window(window.id)
        detach()
        assert llm(record) == tokens_of(CALLS[:1])
    finally:
        session.close()


def test_a_task_gathered_in_a_later_cell_amends_the_cell_that_submitted_it(
        session, srv, tmp_path, wait_until):  # noqa: F811
    ask_later = ray.remote(remote_tasks.ask_when_file)
    gate = tmp_path / "gate"
    first = session.open_window("cell", execution_count=1)
    pending = ask_later.remote(base_urls(srv, CALLS[:1])[0], str(gate))
    assert session.close_window(first.id).llm is None
    second = session.open_window("cell", execution_count=2)
    gate.touch()
    assert ray.get(pending)
    assert session.close_window(second.id).llm is None  # not the cell that submitted it
    assert wait_until(lambda: "llm" in session.totals())
    session.flush()
    events = read_log(session.ledger_path).events
    (amended,) = [e for e in events if e["event"] == "window_amended"]
    assert amended["window_id"] == first.id
    assert Decimal(amended["cost_usd"]) == cost_of(CALLS[:1])
    rows = {r["window_id"]: r for r in rows_from_events(events)}
    assert rows[first.id]["cost_usd"] == cost_of(CALLS[:1])


def logged(session, event: str) -> list[dict]:
    session.flush()
    return [e for e in read_log(session.ledger_path).events if e["event"] == event]


def row_of(session, window_id: str) -> dict:
    session.flush()
    rows = rows_from_events(read_log(session.ledger_path).events)
    return next(r for r in rows if r["window_id"] == window_id)


@pytest.fixture
def priced_session(cluster, nbcost_home):
    """A session whose GPU rate is its own: $36 an hour, a cent a second."""
    session = Session(meters=[LlmMeter()])
    session.settings.gpu_rate_usd_per_hour = Decimal("36")
    detach = nbcost.ray.attach(session)  # (workers price with the settings given at attach)
    yield session
    detach()
    session.close()


def test_gpu_time_of_tasks_and_actor_methods_adds_up_in_the_submitting_cell(priced_session,
                                                                             wait_until):
    session = priced_session
    # Worker processes of their own (a runtime_env of their own), each holding a fake GPU of
    # its own for its whole life, as a CUDA context does; other tests' tasks never run there.
    on_gpus = {"env_vars": nbcost.ray.runtime_env(nvml="remote_tasks:worker_nvml")["env_vars"]}
    gpu_task = ray.remote(remote_tasks.gpu_busy).options(runtime_env=on_gpus)
    user = ray.remote(remote_tasks.GpuUser).options(runtime_env=on_gpus).remote()
    # (The actor's __init__ holds its GPU too, before the cell: that bills the session.)
    window = session.open_window("cell", execution_count=1)
    assert all(ray.get([gpu_task.remote(1.0), gpu_task.remote(1.0), user.work.remote(1.0)]))
    session.close_window(window.id)

    def in_the_cell():
        return [e for e in logged(session, "gpu_usage") if e["window_ids"] == [window.id]]

    # The figures are sent once each task ended: with the cell's record, or amending it.
    assert wait_until(lambda: len(in_the_cell()) == 3, timeout=60)
    events = in_the_cell()
    assert {e["origin"]["kind"] for e in events} == {"ray"}
    assert sum(1 for e in events if e["origin"]["actor"]) == 1
    for event in events:  # each task: about its second of busy GPU, on its worker's GPU
        assert event["quantities"]["busy_s"] == pytest.approx(1.0, abs=0.45), event
        assert event["quantities"]["held_s"] >= event["quantities"]["busy_s"] - 0.05
        assert event["key"] == (f"{event['origin']['host']}:{event['origin']['pid']} "
                                f"(NVIDIA H200)")
        assert event["attributes"]["mem_peak_bytes"] == remote_tasks.WORKER_GPU_MEMORY
        (rate,) = event["attributes"]["rates"].values()  # the remote GPU's rate: the kernel's
        assert Decimal(rate["usd_per_hour"]) == Decimal("36")
        held = Decimal(repr(event["quantities"]["held_s"]))
        assert Decimal(event["cost_usd"]) == pytest.approx(held / 100, abs=Decimal("1e-6"))
    row = row_of(session, window.id)
    assert row["remote_gpu_busy_s"] == pytest.approx(sum(e["quantities"]["busy_s"]
                                                         for e in events))
    assert row["remote_gpu_cost_usd"] == sum(Decimal(e["cost_usd"]) for e in events)
    # Split per worker process, as the window's figures keep them by key.
    by_key = session.totals()["remote_gpu"].by_key
    assert set(by_key) == {e["key"] for e in events}
    assert sum(k["busy_s"] for k in by_key.values()) == pytest.approx(row["remote_gpu_busy_s"],
                                                                     abs=0.05)


def test_tasks_submitted_by_tasks_bill_the_cell_of_the_outer_task(session, srv, wait_until):  # noqa: F811
    calls = CALLS[:2]
    outer = ray.remote(remote_tasks.ask_in_ray_subtasks)
    first = session.open_window("cell", execution_count=1)
    assert ray.get(outer.remote(base_urls(srv, calls), 2))  # two levels down
    session.close_window(first.id)
    second = session.open_window("cell", execution_count=2)
    session.close_window(second.id)
    assert wait_until(lambda: row_of(session, first.id)["cost_usd"] == cost_of(calls),
                      timeout=60)
    made = logged(session, "llm_call")
    assert len(made) == 2 and all(e["window_ids"] == [first.id] for e in made)
    assert row_of(session, second.id)["cost_usd"] == 0


def test_load_ext_with_ray_running_offers_attach(cluster, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "nbcost")
        out = capsys.readouterr().out
        assert out.count("nbcost.ray.attach()") == 1
    finally:
        shell.run_line_magic("unload_ext", "nbcost")
        InteractiveShell.clear_instance()


def test_attach_without_the_worker_hook_says_what_to_do(cluster, monkeypatch, nbcost_home):
    from nbcost.errors import ConfigError

    context = ray.get_runtime_context()
    monkeypatch.setattr(type(context), "runtime_env", property(lambda self: {}))
    session = Session(meters=[])
    try:
        with pytest.raises(ConfigError, match=r"runtime_env=nbcost.ray.runtime_env\(\)"):
            nbcost.ray.attach(session)
    finally:
        session.close()
