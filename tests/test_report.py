"""``nbcost report``: every table's rows add up to its total line, or the table says why not."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from test_rows import HeldMeter
from testmeters import TokenMeter

from nbcost.cli import main
from nbcost.config import Settings
from nbcost.display.summary import format_usd
from nbcost.ledger import read_logs
from nbcost.report import GROUPINGS, build_report
from nbcost.rows import rows_from_events
from nbcost.session import Session

FIGURES = ("cost_usd", "windows", "wall_s", "gpu_held_s", "llm_calls", "llm_tokens")


def _session(tmp_path, who: str, notebook: str, held: HeldMeter | None = None) -> Session:
    settings = Settings(data_dir=tmp_path, user=who, team=f"team-{who}", project=f"p-{who}")
    meters = [TokenMeter()] + ([held] if held else [])
    return Session(settings, meters=meters,
                   notebook={"notebook_path": notebook, "notebook_id": notebook})


@pytest.fixture
def log(tmp_path):
    """Two sessions, two notebooks, two people; one GPU held between cells, tags mixed."""
    first = _session(tmp_path, "ann", "a.ipynb", HeldMeter())
    tokens = first.meters["tokens"]
    tokens.call("m", 250)  # outside any cell: untagged spend
    both = first.open_window("cell", execution_count=1, tags={"team": "ml", "run": "7"})
    tokens.call("m", 1000)
    first.close_window(both.id)
    plain = first.open_window("cell", execution_count=2)
    tokens.call("m", 500)
    first.close_window(plain.id)
    first.close()
    second = _session(tmp_path, "bob", "b.ipynb")
    one = second.open_window("cell", execution_count=1, tags={"team": "ml"})
    second.meters["tokens"].call("m", 100)
    second.close_window(one.id)
    second.close()
    return tmp_path / "spend"


def test_the_fixture_spans_two_of_every_grouping(log):
    rows = rows_from_events(read_log_events(log))
    for by in GROUPINGS:
        if by != "day":  # one test runs within a day
            assert len(build_report(rows, by).groups) >= 2, by


def read_log_events(folder):
    return read_logs([folder]).events


def _session_totals(folder):
    return [Decimal(e["cost_usd"]) for e in read_log_events(folder) if e["event"] == "session_end"]


def sums(report) -> dict:
    return {f: sum(getattr(g, f) for g in report.groups) for f in FIGURES}


@pytest.mark.parametrize("by", [b for b in GROUPINGS if b != "tag"])
def test_rows_add_up_to_the_total_for_every_grouping_but_tag(log, by):
    report = build_report(rows_from_events(read_log_events(log)), by)
    total = {f: getattr(report.total, f) for f in FIGURES}
    assert sums(report) == pytest.approx(total, abs=Decimal("1e-9"))
    assert report.total.cost_usd == sum(_session_totals(log))
    assert report.total.gpu_held_s > 0  # the held GPU, between cells too
    assert report.notes == []


def test_by_tag_says_how_much_the_rows_count_twice_and_keeps_untagged_spend(log):
    rows = rows_from_events(read_log_events(log))
    report = build_report(rows, "tag")
    cost = {json.loads(r["tags"]).get("run", r["user"]): r["cost_usd"] for r in rows
            if r["kind"] == "cell" and r["tags"] != "{}"}  # "7": ann's cell 1, "bob": bob's
    groups = {g.key: g.cost_usd for g in report.groups}
    untagged = report.total.cost_usd - cost["7"] - cost["bob"]  # cell 2, the rest, the GPU
    assert groups == {"team=ml": cost["7"] + cost["bob"], "run=7": cost["7"],
                      "(untagged)": untagged}
    assert untagged > Decimal("0.0015")
    assert sum(groups.values()) - report.total.cost_usd == cost["7"]  # in two rows
    (note,) = report.notes
    assert "1 window carries more than one tag" in note
    assert f"{format_usd(cost['7'])} counted more than once" in note
    assert note in repr(report.table())
    assert note in report.table()._repr_html_()


def test_the_cli_shows_the_note_under_the_table_and_in_json(log, capsys):
    assert main(["report", str(log), "--by", "tag"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("The rows add up to more than the total")
    assert main(["report", str(log), "--by", "tag", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"]
    assert main(["report", str(log), "--by", "tag", "--format", "csv"]) == 0
    assert "counted more than once" in capsys.readouterr().err
