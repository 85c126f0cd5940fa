"""Child processes of a kernel: their LLM calls land in the cell (or block) that started them.

Real parts throughout: a real kernel, ``subprocess`` of ``python``, multiprocessing's spawn and
fork pools, the real openai SDK against the loopback server, and the start-up hook the wheel
installs (``nbcost_child.pth``).
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import site
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import tomllib
import kernel_support
from kernel_support import kernel  # noqa: F401 - fixture
from llm_support import srv  # noqa: F401 - fixture
from remote_support import CALLS, MODEL, base_urls, cost_of, tokens_of, worker_module

import nbcost
from nbcost.ledger import read_log
from nbcost.meters.llm import LlmMeter
from nbcost.remote import environment, spawn
from nbcost.report import load_spend
from nbcost.rows import rows_from_events
from nbcost.session import Session

pytestmark = pytest.mark.remote

ROOT = Path(__file__).resolve().parents[1]


def llm_figures(end: dict) -> dict:
    q = end["meters"]["llm"]["quantities"]
    return {k: q[k] for k in ("input_tokens", "output_tokens", "calls")}


def execute(kc, code, cell_id):
    return kernel_support.execute(kc, code, cell_id, timeout=120)


def test_a_subprocess_and_a_spawn_pool_bill_their_llm_calls_to_the_cell_that_started_them(
        kernel, srv, nbcost_home, tmp_path, wait_until):  # noqa: F811
    _, kc = kernel
    folder = worker_module(tmp_path)
    one, pooled = CALLS[:1], CALLS[1:5]
    execute(kc, "%load_ext nbcost", "load")
    child_code = f"import nbcost_remote_work as w; w.ask({base_urls(srv, one)[0]!r})"
    execute(kc, f"import subprocess, sys\n"
                f"subprocess.run([sys.executable, '-c', {child_code!r}], cwd={str(folder)!r}, "
                f"check=True)", "subprocess")
    execute(kc, f"import multiprocessing, sys\nsys.path.insert(0, {str(folder)!r})\n"
                f"import nbcost_remote_work as w\n"
                f"with multiprocessing.get_context('spawn').Pool(2) as pool:\n"
                f"    assert all(pool.map(w.ask, {base_urls(srv, pooled)!r}))", "pool")
    execute(kc, "1 + 1", "after")
    (log,) = sorted(nbcost_home.glob("spend/*/*.jsonl"))

    def ends():  # cell edges reach the log within ~50 ms (a writer thread batches them)
        return {e["cell_id"]: e for e in read_log(log).events if e["event"] == "cell_end"}

    assert wait_until(lambda: {"subprocess", "pool", "after"} <= set(ends()))
    events = read_log(log).events
    ends = ends()
    assert llm_figures(ends["subprocess"]) == tokens_of(one)
    assert Decimal(ends["subprocess"]["cost_usd"]) == cost_of(one)
    assert llm_figures(ends["pool"]) == tokens_of(pooled)
    assert Decimal(ends["pool"]["meters"]["llm"]["cost_usd"]) == cost_of(pooled)
    assert "llm" not in ends["after"]["meters"]

    # Each child's call is in the kernel's own log once, with where it came from.
    calls = [e for e in events if e["event"] == "llm_call"]
    assert len(calls) == 5
    kernel_pid = next(e["pid"] for e in events if e["event"] == "session_start")
    for call in calls:
        assert call["origin"]["kind"] == "process" and call["origin"]["pid"] != kernel_pid
        assert call["window_ids"] == [ends[call["cell_id"]]["window_id"]]
        assert call["key"] == MODEL and not call.get("late")
    pool_pids = {c["origin"]["pid"] for c in calls if c["cell_id"] == "pool"}
    assert 1 <= len(pool_pids) <= 2
    session_end = next(e for e in events if e["event"] == "session_end") if any(
        e["event"] == "session_end" for e in events) else None
    assert session_end is None  # still running: the report rebuilds the total from the log
    rows = rows_from_events(events)
    assert sum(r["cost_usd"] for r in rows if not r["parent_id"]) == cost_of(one + pooled)


def _forked_call(url: str) -> bool:
    import nbcost_remote_work as work  # the test's module, found on the copied sys.path

    return work.ask(url)


def test_a_fork_pool_inside_a_track_block_bills_the_block(srv, nbcost_home, tmp_path,  # noqa: F811
                                                          monkeypatch):
    monkeypatch.syspath_prepend(str(worker_module(tmp_path)))
    session = Session(meters=[LlmMeter()])
    nbcost.api.set_session(session)
    try:
        with nbcost.track("fan out") as block:
            with multiprocessing.get_context("fork").Pool(2) as pool:
                assert all(pool.map(_forked_call, base_urls(srv, CALLS[:3])))
        record = block.record
        assert {k: record.llm.quantities[k] for k in ("input_tokens", "output_tokens", "calls")} \
            == tokens_of(CALLS[:3])
        assert record.llm.cost_usd == cost_of(CALLS[:3])
    finally:
        nbcost.api.set_session(None)
        session.close()
    events = read_log(session.ledger_path).events
    calls = [e for e in events if e["event"] == "llm_call"]
    assert len(calls) == 3 and all(c["origin"]["pid"] != os.getpid() for c in calls)
    # The forked copies never ended the kernel's session: one session_end, written here.
    assert [e["event"] for e in events].count("session_end") == 1


def test_a_child_that_finishes_after_its_cell_amends_that_cell(srv, nbcost_home, tmp_path):  # noqa: F811
    folder = worker_module(tmp_path)
    go = tmp_path / "go"
    session = Session(meters=[LlmMeter()])
    try:
        first = session.open_window("cell", execution_count=1)
        child = subprocess.Popen([sys.executable, "-c", (
            "import os, time, nbcost_remote_work as w\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
            f"w.ask({base_urls(srv, CALLS[:1])[0]!r})")], cwd=folder)
        first_record = session.close_window(first.id)
        assert first_record.llm is None  # the child had not called yet
        second = session.open_window("cell", execution_count=2)
        go.touch()
        assert child.wait(60) == 0
        second_record = session.close_window(second.id)
        assert second_record.llm is None  # not the cell that started the child
        assert session.totals()["llm"].cost_usd == cost_of(CALLS[:1])
        # Folded: later cells read no child log (the beacon has not moved since).
        assert not session._children.pending()
        reads = []
        session._children.inbox.take = lambda: reads.append(1) or iter(())
        third = session.open_window("cell", execution_count=3)
        session.close_window(third.id)
        assert reads == []
    finally:
        session.close()
    events = read_log(session.ledger_path).events
    assert not (nbcost_home / "children" / session.id).exists()  # folded, then removed
    (call,) = [e for e in events if e["event"] == "llm_call"]
    assert call["late"] is True and call["window_ids"] == [first.id]
    (amended,) = [e for e in events if e["event"] == "window_amended"]
    assert amended["window_id"] == first.id and amended["reason"] == "late"
    assert Decimal(amended["cost_usd"]) == cost_of(CALLS[:1])
    # Readers put the late call in the cell that started it, not between cells.
    rows = {r["window_id"]: r for r in rows_from_events(events)}
    assert rows[first.id]["cost_usd"] == cost_of(CALLS[:1])
    assert rows[first.id]["llm_calls"] == 1
    assert rows[second.id]["cost_usd"] == 0
    assert None not in rows  # no between-cells row: nothing was spent outside the cells
    assert "amended" in rows[first.id]["flags"]
    # So does the report engine (a log with an amendment is read line by line).
    with load_spend([str(session.ledger_path)]) as spend:
        windows = dict(spend.sql("SELECT window_id, cost_usd FROM windows").fetchall())
        assert windows[first.id] == cost_of(CALLS[:1]) and windows[second.id] == 0
        assert spend.report("user").total["cost_usd"] == cost_of(CALLS[:1])
        assert spend.sql("SELECT window_id, origin, late FROM llm_calls").fetchall() == [
            (first.id, "process", True)]


READ_WINDOW = ("from nbcost.remote.environment import ParentContext; "
               "print(ParentContext.from_environ().window_id)")


def billed_to(**kwargs) -> str | None:
    """The window a Python child started now reads."""
    out = subprocess.run([sys.executable, "-c", READ_WINDOW], capture_output=True, text=True,
                         check=True, **kwargs).stdout.strip()
    return None if out == "None" else out


def test_the_environment_follows_the_innermost_window_and_is_removed_at_the_end(nbcost_home):
    session = Session(meters=[])
    try:
        assert os.environ[environment.SESSION] == session.id
        outer = session.open_window("cell")
        inner = session.open_window("track")
        assert billed_to() == inner.id
        session.close_window(inner.id)
        assert billed_to() == outer.id
        session.close_window(outer.id)
        assert billed_to() == outer.id  # one write per window: left as it was
        folder = Path(os.environ[environment.FOLDER])
        assert folder.is_dir()
    finally:
        session.close()
    for name in (environment.SESSION, environment.FOLDER, environment.WINDOW):
        assert name not in os.environ
    assert not folder.exists()  # no child wrote: nothing is left behind


def test_a_window_writes_nothing_to_the_environment_until_a_process_starts(nbcost_home):
    """The cell path does not touch the environment (glibc's setenv cost every cell several
    µs); every way Python starts a process writes the window first, explicit environments
    copied from os.environ windows ago included."""
    session = Session(meters=[])
    try:
        first = session.open_window("cell")
        copied = dict(os.environ)  # a notebook's `env = {**os.environ, ...}`, kept for later
        session.close_window(first.id)
        window = session.open_window("cell")
        assert os.environ[environment.WINDOW] == ""  # nothing started yet: nothing written

        assert billed_to() == window.id  # subprocess (Popen._execute_child)
        nested = session.open_window("track")
        assert billed_to(env=copied) == nested.id
        assert billed_to(close_fds=False) == nested.id  # subprocess's os.posix_spawn path
        session.close_window(nested.id)

        def started_by(start) -> str | None:
            out = Path(os.environ[environment.FOLDER]) / "started.out"
            start(out)
            return out.read_text().strip()

        code = ("import sys; from nbcost.remote.environment import ParentContext; "
                "open(sys.argv[1], 'w').write(str(ParentContext.from_environ().window_id))")
        command = shlex.join([sys.executable, "-c", code])
        assert started_by(lambda out: os.system(f"{command} {out}")) == window.id
        track = session.open_window("track")
        assert started_by(lambda out: os.waitpid(os.posix_spawn(
            sys.executable, [sys.executable, "-c", code, str(out)], copied), 0)) == track.id

        def forked(out):
            pid = os.fork()
            if pid == 0:  # the child: what it inherited
                try:
                    out.write_text(str(environment.ParentContext.from_environ().window_id))
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)

        inner = session.open_window("track")
        assert started_by(forked) == inner.id
        session.close_window(inner.id)
        session.close_window(track.id)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            assert pool.apply(_window_of_this_process) == window.id
        session.reset()  # a new session: an environment copied before it names the new one
        after_reset = session.open_window("cell")
        assert billed_to(env=copied) == after_reset.id
    finally:
        session.close()
    assert spawn._before_start is None  # nothing is written for a closed session


def _window_of_this_process() -> str | None:
    return environment.ParentContext.from_environ().window_id


def test_a_python_child_without_a_kernel_loads_nothing(nbcost_home):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NBCOST_PARENT")}
    out = subprocess.run([sys.executable, "-c", "import sys; print('nbcost' in sys.modules)"],
                         capture_output=True, text=True, check=True, env=environ)
    assert out.stdout.strip() == "False"


def test_the_start_up_hook_is_installed_and_shipped_in_the_wheel():
    installed = [Path(d) / "nbcost_child.pth" for d in site.getsitepackages()]
    assert any(p.exists() for p in installed), (
        "nbcost_child.pth is not in site-packages: reinstall nbcost (pip install -e .)")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert shipped["src/nbcost_child.pth"] == "nbcost_child.pth"
    assert next(p for p in installed if p.exists()).read_text() == \
        (ROOT / "src/nbcost_child.pth").read_text()


def test_a_running_childs_calls_show_in_the_live_figures(srv, nbcost_home, tmp_path,  # noqa: F811
                                                         wait_until):
    folder = worker_module(tmp_path)
    done = tmp_path / "done"
    session = Session(meters=[LlmMeter()])
    try:
        window = session.open_window("cell", execution_count=1)
        child = subprocess.Popen([sys.executable, "-c", (
            "import os, time, nbcost_remote_work as w\n"
            f"w.ask({base_urls(srv, CALLS[:1])[0]!r})\n"
            f"while not os.path.exists({str(done)!r}): time.sleep(0.02)")], cwd=folder)
        # The child still runs; the panel's figures already carry its call.
        assert wait_until(lambda: session.live_totals(window.id).get("llm", {}).get("calls") == 1)
        assert child.poll() is None
        live = session.live_totals(window.id)
        assert live["llm"]["input_tokens"] == CALLS[0][0]
        assert Decimal(live["cost_usd"]) == cost_of(CALLS[:1])
        done.touch()
        assert child.wait(60) == 0
        record = session.close_window(window.id)
        assert record.llm.quantities["calls"] == 1  # counted once, live and at the end
    finally:
        session.close()


def test_the_environment_takes_a_bounded_set_of_values_however_many_windows(nbcost_home):
    """glibc keeps every value ever set in the environment: a million windows' ids would be
    ~76 MiB kept for ever. The variable cycles through 1,024 slot numbers instead."""
    session = Session(meters=[])
    seen = set()
    try:
        for _ in range(environment.SLOTS + 100):
            window = session.open_window("track")
            session._children.slots.write()  # what each process start does
            seen.add(os.environ[environment.WINDOW])
            assert environment.ParentContext.from_environ().window_id == window.id
            session.close_window(window.id)
    finally:
        session.close()
    assert len(seen) == environment.SLOTS
