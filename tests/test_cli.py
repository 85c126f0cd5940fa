"""The ``nbcost`` command: run a notebook headless, then report on its spend log."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from decimal import Decimal

import nbformat
import pytest
from test_kernel import KERNEL_METER

from nbcost.cli import main
from nbcost.ledger import read_log


@pytest.fixture
def notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A costly notebook"),
        nbformat.v4.new_code_cell(KERNEL_METER),
        nbformat.v4.new_code_cell("%%cost --label embed --tag team=ml\ntokens.call('model-a', 1000)"),
        nbformat.v4.new_code_cell("tokens.call('model-b', 500)\n'done'"),
    ]
    path = tmp_path / "costly.ipynb"
    nbformat.write(nb, path)
    return path


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbcost.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=240)


def test_run_writes_cell_metadata_prints_the_table_and_report_totals_match(
        notebook, tmp_path, nbcost_home):
    out = tmp_path / "out.ipynb"
    done = run_cli("run", notebook, "-o", out)
    assert done.returncode == 0, done.stderr
    assert "nbcost · cost per cell" in done.stdout and "embed" in done.stdout
    assert "$0.0030" in done.stdout  # the total of both calls

    executed = nbformat.read(out, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    meta = [c.metadata.get("nbcost") for c in code]
    assert all(m is not None for m in meta)
    assert [m["execution_count"] for m in meta] == [c.execution_count for c in code]
    assert meta[1]["label"] == "embed" and meta[1]["cost_usd"] == "0.002"
    assert meta[2]["cost_usd"] == "0.001" and meta[2]["status"] == "ok"
    assert executed.metadata["nbcost"]["notebook_id"]
    for m in meta:  # ISO 8601 UTC strings, as the kernel and the lab extension write them
        start, end = (dt.datetime.fromisoformat(m[k].replace("Z", "+00:00")) for k in ("start", "end"))
        assert m["start"].endswith("Z") and start.tzinfo and start <= end
    session_id = executed.metadata["nbcost"]["session_id"]
    assert all(m["session_id"] == session_id for m in meta)

    (log,) = sorted(nbcost_home.glob(f"spend/*/{session_id}.jsonl"))
    session_end = read_log(log).events[-1]
    assert session_end["event"] == "session_end"
    assert session_end["notebook_path"] == str(notebook)

    report = run_cli("report", nbcost_home, "--format", "json")
    assert report.returncode == 0, report.stderr
    totals = json.loads(report.stdout)
    assert Decimal(totals["total_usd"]) == Decimal(session_end["cost_usd"]) == Decimal("0.003")
    assert totals["groups"][0]["key"] == str(notebook)

    by_tag = json.loads(run_cli("report", nbcost_home, "--by", "tag", "--format", "json").stdout)
    assert {g["key"]: g["cost_usd"] for g in by_tag["groups"]}["team=ml"] == "0.002"


def test_run_reports_a_failing_cell_and_keeps_the_cells_before_it(notebook, tmp_path):
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('model diverged')"))
    nbformat.write(nb, notebook)
    out = tmp_path / "out.ipynb"
    done = run_cli("run", notebook, "-o", out)
    assert done.returncode == 1 and "model diverged" in done.stderr
    assert "\x1b[" not in done.stderr + done.stdout  # a pipe gets no colour codes
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[-1].metadata["nbcost"]["status"] == "error"
    assert executed.cells[2].metadata["nbcost"]["cost_usd"] == "0.002"


def test_report_formats_and_bad_input(tmp_path, nbcost_home, capsys):
    assert main(["report", str(tmp_path / "nothing.jsonl")]) == 2
    assert "no spend log at" in capsys.readouterr().err
    log = tmp_path / "s.jsonl"
    log.write_text(json.dumps({"schema": 1, "event": "session_start", "session_id": "s"}) + "\n"
                   + '{"torn')
    assert main(["report", str(log), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    # One CSV column per grouping key, then the figures (the report of issue 9).
    assert "last line is torn" in captured.err and captured.out.startswith("notebook,cells,")
    assert main(["report", str(log), "--since", "yesterday"]) == 2
    assert "--since takes a date" in capsys.readouterr().err


def test_prices_lists_gpu_rates(capsys):
    assert main(["prices"]) == 0
    out = capsys.readouterr().out
    assert "H100" in out and "A100 80GB" in out


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_colour_only_for_a_terminal_that_wants_it(monkeypatch):
    from nbcost.cli import _for

    coloured = "\x1b[31mRuntimeError\x1b[39m: boom"
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert _for(io.StringIO(), coloured) == "RuntimeError: boom"
    assert _for(_Terminal(), coloured) == coloured
    monkeypatch.setenv("NO_COLOR", "1")
    assert _for(_Terminal(), coloured) == "RuntimeError: boom"


# -- bad input: one message, a non-zero status, never a traceback ----------------------------


def _bad_inputs(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('hello')\n")
    not_a_notebook = tmp_path / "data.json"
    not_a_notebook.write_text('{"rows": [1, 2, 3]}\n')
    binary = tmp_path / "binary.ipynb"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    listed = tmp_path / "list.ipynb"
    listed.write_text("[1, 2]\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    return [
        (["run", tmp_path], {}, "is a folder"),
        (["run", script], {}, "is not a Jupyter notebook"),
        (["run", not_a_notebook], {}, "is not a Jupyter notebook"),
        (["run", binary], {}, "is not a Jupyter notebook"),
        (["run", listed], {}, "is not a Jupyter notebook"),
        (["run", tmp_path / "missing.ipynb"], {}, "no notebook at"),
        # a data dir that cannot exist (a file where a folder must be): unwritable for root too
        (["run", "NOTEBOOK"], {"NBCOST_HOME": str(a_file / "home")}, "NBCOST_HOME"),
        (["run", "NOTEBOOK", "-o", tmp_path / "no-such-folder" / "out.ipynb"], {},
         "does not exist"),
        (["run", "NOTEBOOK", "-o", tmp_path], {}, "is a folder"),
        (["run", "NOTEBOOK", "--kernel", "no-such-kernel"], {}, "no kernel named"),
        (["run", "NOTEBOOK", "--timeout", "0"], {}, "above 0"),
        (["run", "NOTEBOOK", "--timeout", "soon"], {}, "above 0"),
    ]


def test_run_bad_input_gets_one_clear_message(notebook, tmp_path, monkeypatch):
    for args, env, message in _bad_inputs(tmp_path):
        args = [notebook if a == "NOTEBOOK" else a for a in args]
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            done = run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout, (args, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith(("nbcost run:", "usage:", "nbcost: error")) and len(
            [line for line in lines if line.startswith("nbcost")]) == 1, (args, done.stderr)
    assert not list(tmp_path.glob("**/out.ipynb"))  # nothing ran, nothing written


def _closed_pipe():
    import os

    read, write = os.pipe()
    os.close(read)  # the reader left before the first line, as `| head -0` would
    return write


def test_a_closed_pipe_ends_the_command_quietly(notebook, tmp_path, nbcost_home):
    import os

    out = tmp_path / "out.ipynb"
    for args in (["prices"], ["run", notebook, "-o", out]):
        pipe = _closed_pipe()
        try:
            done = subprocess.run([sys.executable, "-m", "nbcost.cli", *map(str, args)],
                                  stdout=pipe, stderr=subprocess.PIPE, text=True, timeout=240)
        finally:
            os.close(pipe)
        assert done.returncode == 1 and done.stderr == "", (args, done.stderr)
    assert nbformat.read(out, as_version=4).cells[2].metadata["nbcost"]["cost_usd"] == "0.002"


def test_nbcosts_own_bug_is_one_line_unless_debugging(monkeypatch, capsys):
    import nbcost.cli

    def broken(args):
        raise KeyError("oops")

    monkeypatch.setattr(nbcost.cli, "_cmd_prices", broken)
    assert main(["prices"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("nbcost prices: internal error (KeyError: 'oops')") and "NBCOST_DEBUG" in err
    monkeypatch.setenv("NBCOST_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["prices"])


# -- -o never destroys a spend log, nor a file the command reads -----------------------------


def _spend_log(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": 1, "event": "session_start", "session_id": "s"}) + "\n")
    return path


def test_no_command_writes_over_a_spend_log(notebook, tmp_path, nbcost_home, capsys):
    own = _spend_log(nbcost_home / "spend" / "2026-12-01" / "own.jsonl")
    copy = _spend_log(tmp_path / "copy" / "spend" / "team.jsonl")  # a copy of a data dir
    kept = {path: path.read_bytes() for path in (own, copy)}
    for log, said in ((own, "is inside nbcost's spend log folder"), (copy, "is a spend log")):
        for argv in (["report", "-o", log], ["report", copy, "--format", "csv", "-o", log],
                     ["export", "--format", "jsonl", copy, "-o", log],
                     ["audit", copy, "-o", log], ["run", notebook, "-o", log]):
            assert main([str(a) for a in argv]) == 2, argv
            err = capsys.readouterr().err
            assert said in err and err.count("\n") == 1, (argv, err)
    assert {path: path.read_bytes() for path in kept} == kept


def test_no_command_writes_over_a_file_it_reads(notebook, tmp_path, nbcost_home, capsys):
    logs = tmp_path / "logs"
    log = _spend_log(logs / "s.jsonl")
    table = logs / "old.csv"
    assert main(["export", "--format", "csv", str(log), "-o", str(table)]) == 0
    export = logs / "old.jsonl"  # an export (no event): read by `nbcost export logs/` all the same
    export.write_text(json.dumps({"window_id": "w", "kind": "cell", "session_id": "s"}) + "\n")
    kept = {path: path.read_bytes() for path in (table, export, notebook)}
    capsys.readouterr()
    for argv in (["report", logs, "-o", table], ["report", log, table, "-o", table],
                 ["export", "--format", "jsonl", logs, "-o", export]):
        assert main([str(a) for a in argv]) == 2, argv
        err = capsys.readouterr().err
        assert "is one of the files this command reads" in err and err.count("\n") == 1, (
            argv, err)
    for target in (notebook, table):  # the audit writes one HTML page, nothing else
        assert main(["audit", str(log), str(notebook), "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert "the audit is one HTML page; give a .html name" in err and err.count("\n") == 1
    assert {path: path.read_bytes() for path in kept} == kept


def test_export_says_it_reads_local_logs_only(tmp_path, capsys):
    assert main(["export", "--format", "csv", "s3://bucket/x/", "-o", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "s3://bucket/x/: export reads local spend logs only" in err and "s3:/bucket" not in err


def test_export_refuses_a_format_its_output_name_contradicts(tmp_path, capsys):
    log = _spend_log(tmp_path / "logs" / "s.jsonl")
    out = tmp_path / "x.csv"
    assert main(["export", "--format", "jsonl", str(log), "-o", str(out)]) == 2
    assert "--format jsonl but 'x.csv' names csv" in capsys.readouterr().err
    assert not out.exists()
