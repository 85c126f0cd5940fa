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
