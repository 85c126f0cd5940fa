"""``nbcost run`` when a run goes wrong: a kernel that dies, a cell past ``--timeout``, a
``%cost reset`` mid-run (several spend logs for one run). Real kernels through nbclient; the
spend log, the executed notebook and the printed table are checked against each other."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal

import nbformat
import pytest
from test_cli import run_cli
from test_kernel import KERNEL_METER

from nbcost.ledger import read_log
from nbcost.run_logs import find_run_logs


def make_notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(KERNEL_METER)]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def no_traceback(done) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr


def table_line(stdout: str, text: str) -> str:
    return next(line for line in stdout.splitlines() if text in line)


def run_dying(tmp_path, *cells):
    """``nbcost run`` of a notebook whose kernel dies in one of ``cells``: the run's result
    (status 1, no traceback) and the executed notebook."""
    path = make_notebook(tmp_path / "dies.ipynb", *cells)
    out = tmp_path / "out.ipynb"
    done = run_cli("run", path, "-o", out)
    assert done.returncode == 1, done.stderr
    no_traceback(done)
    return done, nbformat.read(out, as_version=4)


def test_a_dead_kernel_still_gives_the_notebook_the_table_and_the_dead_cells_spend(
        tmp_path, nbcost_home):
    done, executed = run_dying(
        tmp_path, "tokens.call('model-a', 1000)",
        # the call is logged at once (with the cell's start) before the kill
        "tokens.call('model-b', 500)\nimport os; os.kill(os.getpid(), 9)", "never_run = 1")
    # nbclient numbers the cell when its execute_input arrives, which a kernel killed at once
    # may never send: either name points at the third cell.
    assert re.search(r"the kernel died while running cell (\[3\]|3 of the notebook)",
                     done.stderr), done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("nbcost")]) == 1

    assert "(kernel died)" in table_line(done.stdout, "tokens.call('model-b', 500)")
    assert "$0.0030" in table_line(done.stdout, "total")  # both calls: none lost

    dead = executed.cells[2].metadata["nbcost"]
    assert dead["status"] == "interrupted" and "interrupted" in dead["flags"]
    assert dead["cost_usd"] == "0.001" and dead["execution_count"] == 3
    assert executed.cells[1].metadata["nbcost"]["cost_usd"] == "0.002"
    assert executed.cells[3].get("execution_count") is None and "nbcost" not in executed.cells[3].metadata


def test_a_kernel_killed_before_its_cell_reached_the_log_is_still_marked(tmp_path, nbcost_home):
    done, executed = run_dying(tmp_path, "import os; os.kill(os.getpid(), 9)")
    assert "the kernel died while running" in done.stderr
    assert "(kernel died)" in table_line(done.stdout, "os.kill")
    assert executed.cells[1].metadata["nbcost"]["status"] == "interrupted"
    assert executed.cells[0].metadata["nbcost"]["status"] == "ok"


def test_a_cell_past_the_timeout_is_interrupted_marked_and_keeps_its_spend(tmp_path, nbcost_home):
    path = make_notebook(tmp_path / "slow.ipynb",
                         "tokens.call('model-a', 1000)\nimport time\ntime.sleep(900)",
                         "never_run = 1")
    out = tmp_path / "out.ipynb"
    # Generous: the meter cell must not time out on a loaded machine.
    done = run_cli("run", path, "-o", out, "--timeout", 20)
    assert done.returncode == 1
    no_traceback(done)
    assert "cell [2] ran past --timeout 20 s" in done.stderr
    assert "(timed out)" in table_line(done.stdout, "tokens.call('model-a', 1000)")
    assert "$0.0020" in table_line(done.stdout, "total")

    executed = nbformat.read(out, as_version=4)
    slow = executed.cells[1].metadata["nbcost"]
    assert slow["status"] == "timeout" and "timeout" in slow["flags"]
    assert slow["cost_usd"] == "0.002"
    assert "nbcost" not in executed.cells[2].metadata
    # The kernel was interrupted, not killed: it ended the cell and the session itself.
    (log,) = nbcost_home.glob("spend/*/*.jsonl")
    events = read_log(log).events
    assert events[-1]["event"] == "session_end"


def test_with_allow_errors_a_timed_out_cell_does_not_stop_the_run(tmp_path, nbcost_home):
    path = make_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(900)",
                         "tokens.call('model-b', 500)")
    out = tmp_path / "out.ipynb"
    done = run_cli("run", path, "-o", out, "--timeout", 20, "--allow-errors")
    assert done.returncode == 1  # a timeout is never a clean run
    no_traceback(done)
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[1].metadata["nbcost"]["status"] == "timeout"
    assert executed.cells[2].metadata["nbcost"]["cost_usd"] == "0.001"


def test_cells_after_a_reset_keep_their_metadata_and_rows(tmp_path, nbcost_home):
    path = make_notebook(tmp_path / "reset.ipynb", "tokens.call('model-a', 1000)", "%cost reset",
                         "tokens.call('model-b', 500)", "'after the reset'")
    out = tmp_path / "out.ipynb"
    done = run_cli("run", path, "-o", out)
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    executed = nbformat.read(out, as_version=4)
    meta = [c.metadata.get("nbcost") for c in executed.cells]
    assert all(m is not None for m in meta)
    assert meta[3]["cost_usd"] == "0.001" and meta[4]["status"] == "ok"
    assert meta[1]["session_id"] != meta[3]["session_id"] == meta[4]["session_id"]
    notebook_meta = executed.metadata["nbcost"]
    assert notebook_meta["session_ids"] == [meta[1]["session_id"], meta[3]["session_id"]]

    assert table_line(done.stdout, "tokens.call('model-b', 500)")
    assert table_line(done.stdout, "'after the reset'")
    assert "$0.0030" in table_line(done.stdout, "total")
    assert done.stdout.count("Spend log:") == 2
    report = json.loads(run_cli("report", nbcost_home, "--format", "json").stdout)
    assert Decimal(report["total_usd"]) == Decimal("0.003")


# -- finding a run's spend logs, whatever the session side names them -----------------------


def _session_log(home, name, day="2026-11-28", **fields):
    folder = home / "spend" / day
    folder.mkdir(parents=True, exist_ok=True)
    start = {"schema": 1, "event": "session_start", "session_id": name,
             "started_at": f"{day}T10:00:00.000000Z", "ts": f"{day}T10:00:00.000000Z", **fields}
    (folder / f"{name}.jsonl").write_text(json.dumps(start) + "\n")
    return folder / f"{name}.jsonl"


def test_find_run_logs_by_run_id_session_id_parent_or_kernel(tmp_path):
    home = tmp_path / "home"
    since = 1795860000.0  # 2026-11-28T10:00:00Z
    first = _session_log(home, "first", pid=41, notebook_id="nb")
    by_run_id = _session_log(home, "reset1", run_id="run-1", pid=99, notebook_id="other")
    by_parent = _session_log(home, "reset2", parent_session_id="reset1", notebook_id="x")
    by_kernel = _session_log(home, "reload", pid=41, notebook_id="nb")
    _session_log(home, "same-notebook-other-kernel", pid=42, notebook_id="nb")
    _session_log(home, "other-run", run_id="run-2", pid=43, notebook_id="nb")
    _session_log(home, "earlier-day", day="2026-11-27", pid=41, notebook_id="nb")
    (home / "spend" / "2026-11-28" / "torn.jsonl").write_text('{"sche')
    found = find_run_logs(home, run_id="run-1", session_ids={"first"}, notebook_id="nb",
                          kernel_pid=None, since=since)
    assert set(found) == {first, by_run_id, by_parent, by_kernel}
    # A session side that ignores NBCOST_SESSION_ID and writes no run id: the kernel's pid
    # (from nbclient) and the notebook id still find every session of the run.
    found = find_run_logs(home, run_id="run-3", notebook_id="nb", kernel_pid=41, since=since)
    assert set(found) == {first, by_kernel}


def test_find_run_logs_without_a_data_dir(tmp_path):
    assert find_run_logs(tmp_path / "missing", run_id="r") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_a_read_only_data_dir_is_refused_before_the_run(tmp_path, nbcost_home, monkeypatch):
    nbcost_home.mkdir()
    nbcost_home.chmod(0o555)
    try:
        path = make_notebook(tmp_path / "n.ipynb", "1")
        done = run_cli("run", path)
    finally:
        nbcost_home.chmod(0o755)
    assert done.returncode == 2
    no_traceback(done)
    assert "is not writable" in done.stderr and "NBCOST_HOME" in done.stderr


def test_a_kernel_without_nbcost_gets_no_empty_table_but_the_reason(tmp_path, nbcost_home,
                                                                      monkeypatch, capsys):
    from nbcost.cli import main

    broken = tmp_path / "site" / "nbcost"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('nbcost is broken in this kernel')\n")
    path = make_notebook(tmp_path / "n.ipynb", "1 + 1")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))  # the kernel's, not this process's
    assert main(["run", str(path)]) == 1
    captured = capsys.readouterr()
    assert "cost per cell" not in captured.out  # no table that reads "it cost nothing"
    assert "nbcost is broken in this kernel" in captured.err
    assert "the kernel wrote no spend log" in captured.err and "Traceback" not in captured.err


def test_a_cell_that_fails_without_a_traceback_says_its_error(tmp_path, nbcost_home):
    """An IPython UsageError has no traceback: the error's own message, not a rule line."""
    path = make_notebook(tmp_path / "usage.ipynb", "print('hi')\n%cost budget abc")
    done = run_cli("run", path)
    assert done.returncode == 1
    no_traceback(done)
    assert ("nbcost run: a cell failed: UsageError: %cost budget must be a number of US "
            "dollars") in done.stderr, done.stderr
    assert "---" not in done.stderr


def test_ctrl_c_keeps_the_cells_that_ran_and_marks_the_interrupted_one(tmp_path, nbcost_home):
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "cell-3-started"
    path = make_notebook(tmp_path / "slow.ipynb", "tokens.call('model-a', 1000)",
                         f"open({str(marker)!r}, 'w').close()\nimport time\ntime.sleep(120)",
                         "never_run = 1")
    out = tmp_path / "out.ipynb"
    run = subprocess.Popen([sys.executable, "-m", "nbcost.cli", "run", str(path), "-o", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # into the sleep
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    done = subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)
    assert done.returncode == 130, done.stderr
    no_traceback(done)
    assert [line for line in done.stderr.splitlines() if line.startswith("nbcost")] == [
        "nbcost run: interrupted (Ctrl-C) in cell [3]; the cells after it did not run"]
    assert "$0.0020" in table_line(done.stdout, "tokens.call('model-a', 1000)")
    assert "(interrupted)" in table_line(done.stdout, "open(")
    assert "kernel died" not in done.stdout

    executed = nbformat.read(out, as_version=4)
    assert executed.cells[1].metadata["nbcost"]["cost_usd"] == "0.002"
    cut = executed.cells[2].metadata["nbcost"]
    assert cut["status"] == "interrupted" and cut["wall_s"] >= 0.5
    assert "nbcost" not in executed.cells[3].metadata
    report = run_cli("report", out)
    assert report.returncode == 0 and "skipped" not in report.stdout + report.stderr


def test_a_kernel_dead_right_after_a_cell_keeps_that_cell_and_a_record_the_report_reads(
        tmp_path, nbcost_home):
    # The kernel dies before the finished cells' ends reach the spend log (50 ms): their
    # records come from the kernel's final messages, and so must their table rows.
    done, executed = run_dying(tmp_path, "x = 1", "import os; os._exit(3)")
    assert table_line(done.stdout, "x = 1")
    assert "(kernel died)" in table_line(done.stdout, "os._exit(3)")
    session = executed.cells[1].metadata["nbcost"]["session_id"]
    assert executed.cells[2].metadata["nbcost"]["session_id"] == session
    report = run_cli("report", tmp_path / "out.ipynb")
    assert report.returncode == 0 and "skipped" not in report.stdout + report.stderr, report


def test_a_dead_cell_ran_until_its_kernel_died(tmp_path, nbcost_home):
    done, executed = run_dying(tmp_path, "import os, time\ntime.sleep(1)\nos._exit(3)")
    dead = executed.cells[1].metadata["nbcost"]
    assert dead["status"] == "interrupted"
    # nbclient looks at the kernel once a second: the death is seen a little late (more on a
    # loaded machine); what matters is the time it ran, not 0
    assert 1.0 <= dead["wall_s"] < 60
    assert " ms" not in table_line(done.stdout, "import os, time")


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_a_data_dir_nobody_can_write_is_refused_before_the_run_even_as_root(
        tmp_path, monkeypatch):
    monkeypatch.setenv("NBCOST_HOME", "/proc/nbcost_x")  # root passes os.access, not mkdir
    marker = tmp_path / "ran"
    path = make_notebook(tmp_path / "n.ipynb", f"open({str(marker)!r}, 'w').close()")
    done = run_cli("run", path)
    assert done.returncode == 2
    no_traceback(done)
    assert "is not writable" in done.stderr and "NBCOST_HOME" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not marker.exists()
