"""``nbcost report``'s outputs: every format written with -o and read back, the same figures;
--top; --help explains every option with an example; bad options are one clear message."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from decimal import Decimal
from html.parser import HTMLParser

import pyarrow.parquet as pq
import pytest
from report_support import Cell, run_session

import nbcost.testing
from nbcost.cli import main
from nbcost.display.format import format_usd

HOSTILE = "<script>alert('x')</script> | a"


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    home = tmp_path_factory.mktemp("formats")
    with nbcost.testing.llm_server() as srv:
        run_session(srv, home, [Cell([("gpt-4o-mini", 1000, 50, 400)], {"exp": "a"}, label=HOSTILE),
                                Cell([("gpt-4o", 500, 20, 0)])], user="ann")
        run_session(srv, home, [Cell([("gpt-4o-mini", 300, 30, 0)])], user="bob", gpu=False)
    return home / "spend"


def as_json(logs, capsys, *args):
    assert main(["report", str(logs), "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_format_reads_back_with_the_same_figures(logs, tmp_path, capsys):
    truth = as_json(logs, capsys, "--by", "user,model")
    groups = {tuple(g["keys"].values()): g for g in truth["groups"]}
    assert Decimal(truth["total_usd"]) == sum(Decimal(g["cost_usd"]) for g in truth["groups"])

    out = tmp_path / "r.csv"
    assert main(["report", str(logs), "--by", "user,model", "--format", "csv", "-o", str(out)]) == 0
    with open(out, newline="") as src:
        rows = list(csv.DictReader(src))
    assert list(rows[0])[:3] == ["user", "model", "cells"]
    for row in rows:
        group = groups[row["user"], row["model"]]
        assert Decimal(row["cost_usd"]) == Decimal(group["cost_usd"])
        assert row["llm_input_tokens"] == ("" if group["llm_input_tokens"] is None
                                           else str(group["llm_input_tokens"]))

    out = tmp_path / "r.parquet"
    assert main(["report", str(logs), "--by", "user,model", "--format", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out)
    assert str(table.schema.field("cost_usd").type) == "decimal128(38, 18)"
    for row in table.to_pylist():
        assert row["cost_usd"] == Decimal(groups[row["user"], row["model"]]["cost_usd"])

    out = tmp_path / "r.json"
    assert main(["report", str(logs), "--by", "user,model", "--format", "json", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == truth

    out = tmp_path / "r.md"
    assert main(["report", str(logs), "--by", "user,model", "--format", "markdown", "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    table_lines = [line for line in lines if line.startswith("|")]
    assert table_lines[0].startswith("| user | model | cells | total |")
    assert len(table_lines) == 2 + len(truth["groups"]) + 1  # header, rule, rows, total
    assert any(line.startswith("| **total**") for line in table_lines)


def test_html_is_a_page_that_escapes_what_users_wrote(logs, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(logs), "--by", "cell", "--format", "html", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!doctype html>") and "<script>" not in text
    cells = []

    class Cells(HTMLParser):
        def handle_data(self, data):
            cells.append(data)

    Cells().feed(text)
    assert any(HOSTILE in c for c in cells)


def test_the_table_format_and_its_columns(logs, capsys):
    assert main(["report", str(logs), "--by", "user", "--columns", "gpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("nbcost report by user")
    for header in ("idle between", "idle between $", "stall", "stall $", "underfill $", "GPU waste"):
        assert header in out[1]
    assert out[-1].startswith("total") or any(line.startswith("total") for line in out)
    assert main(["report", str(logs), "--columns", "nonsense"]) == 2
    assert "--columns takes" in capsys.readouterr().err


def test_top_lists_the_most_expensive_cells(logs, capsys):
    data = as_json(logs, capsys, "--top", "2")
    costs = [Decimal(g["cost_usd"]) for g in data["groups"]]
    assert len(costs) == 2 and costs == sorted(costs, reverse=True)
    everything = as_json(logs, capsys, "--top", "100")
    assert Decimal(everything["groups"][0]["cost_usd"]) == costs[0]
    assert len(everything["groups"]) == 3  # every cell, the time between cells is none


def test_bad_options_are_one_clear_message(logs, tmp_path, capsys):
    for args, message in ((["--by", "colour"], "--by takes"), (["--since", "yesterday"], "--since takes"),
                          (["--until", "soon"], "--until takes"), (["--format", "parquet"], "-o FILE"),
                          (["--tag", "=x"], "--tag takes"), (["--top", "0"], "--top takes"),
                          (["-o", str(tmp_path / "no" / "such.csv")], "does not exist")):
        assert main(["report", str(logs), *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)


def test_help_explains_every_option_with_an_example():
    done = subprocess.run([sys.executable, "-m", "nbcost.cli", "report", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    from nbcost.cli import parser

    report = next(a for a in parser()._subparsers._group_actions[0].choices.items()
                  if a[0] == "report")[1]
    for action in report._actions:
        if action.option_strings and action.dest != "help":
            assert "e.g." in (action.help or ""), action.dest
    for key in ("user", "team", "project", "notebook", "cell", "label", "model", "provider", "gpu",
                "status", "day", "week", "month", "tag:KEY"):
        assert key in text
    assert "examples:" in text and "nbcost report /shared/team-spend --by user,project" in text


def test_a_group_with_unpriced_spend_never_shows_a_bare_dollar_total(tmp_path, capsys):
    """The money rule of every nbcost figure: "unpriced", or "$x + unpriced", never $0.00 or a
    dollar total that reads as the whole cost."""
    with nbcost.testing.llm_server() as srv:
        run_session(srv, tmp_path, [Cell([("no-such-model-xyz", 1000, 50, 0)]),
                                    Cell([("no-such-model-xyz", 500, 20, 0),
                                          ("gpt-4o-mini", 300, 30, 0)])], gpu=False)
    priced = as_json(tmp_path / "spend", capsys, "--by", "model")
    mini = next(g for g in priced["groups"] if g["key"] == "gpt-4o-mini")["cost_usd"]
    assert main(["report", str(tmp_path / "spend"), "--by", "model"]) == 0
    lines = capsys.readouterr().out.splitlines()
    unknown = next(line for line in lines if line.startswith("no-such-model-xyz")).split()
    total = next(line for line in lines if line.startswith("total"))
    assert unknown[2] == "unpriced" and "$0.00" != unknown[2]
    assert f"{format_usd(Decimal(mini))} + unpriced" in total


def test_the_format_comes_from_the_output_name(logs, tmp_path, capsys):
    checks = {"spend.csv": lambda text: text.startswith("notebook,cells,"),
              "r.json": lambda text: "groups" in json.loads(text),
              "r.md": lambda text: text.startswith("**nbcost report"),
              "r.html": lambda text: text.startswith("<!doctype html>"),
              "r.txt": lambda text: text.startswith("nbcost report")}
    for name, check in checks.items():
        out = tmp_path / name
        assert main(["report", str(logs), "-o", str(out)]) == 0, name
        assert check(out.read_text(encoding="utf-8")), (name, out.read_text()[:200])
    out = tmp_path / "r.parquet"
    assert main(["report", str(logs), "-o", str(out)]) == 0
    assert pq.read_table(out).num_rows == 1
    capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["-o", "r.xlsx"], "csv (.csv), json (.json), parquet (.parquet), markdown (.md)"),
    (["-o", "r.jsonl"], "cannot tell which format -o r.jsonl wants"),
    (["--format", "json", "-o", "r.csv"], "--format json but -o r.csv names csv"),
    (["--format", "table", "-o", "r.parquet"], "--format table but -o r.parquet names parquet"),
])
def test_an_output_name_that_names_no_format_or_another_is_refused(logs, tmp_path, capsys,
                                                                    args, message):
    args = [str(tmp_path / a) if a.startswith("r.") else a for a in args]
    assert main(["report", str(logs), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())
