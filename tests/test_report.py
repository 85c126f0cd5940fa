"""``nbcost report`` over a team's real spend logs: every grouping and filter, totals exact.

The oracle is :func:`nbcost.rows.rows_from_events` (the export table, tested on its own) over
the same logs: every report total must equal what it says, to the last Decimal digit.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import genai_prices
import pytest
from report_support import Cell, run_session

import nbcost.testing
from nbcost.ledger import read_logs
from nbcost.report import DIMENSIONS, build, build_report, load_spend
from nbcost.rows import rows_from_events

ZERO = Decimal(0)
ADDITIVE = ("cost_usd", "llm_cost_usd", "gpu_cost_usd", "llm_calls", "llm_input_tokens",
            "llm_cache_read_tokens", "llm_output_tokens", "gpu_idle_between_usd",
            "gpu_stall_usd", "gpu_underfill_usd")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Three people's sessions: ann with a GPU (two tags on one cell, a failing cell), bob
    without (an unpriced model), cid's kernel killed inside a cell."""
    home = tmp_path_factory.mktemp("team")
    with nbcost.testing.llm_server() as srv:
        run_session(srv, home, [
            Cell([("gpt-4o-mini", 1000, 50, 400)], {"exp": "a"}, label="embed"),
            Cell([("gpt-4o", 500, 20, 0), ("gpt-4o-mini", 100, 10, 0)], {"exp": "b", "run": "7"}),
            Cell([], fail=True),
        ], user="ann", team="ml", project="search", notebook_path="work/a.ipynb")
        run_session(srv, home, [
            Cell([("gpt-4o-mini", 300, 30, 0)], {"exp": "a"}),
            Cell([("my-local-model", 100, 10, 0)]),
        ], user="bob", team="ml", project="ads", notebook_path="/home/bob/b.ipynb", gpu=False)
        run_session(srv, home, [
            Cell([("gpt-4o-mini", 200, 20, 0)]),
            Cell([("gpt-4o", 700, 20, 0)], {"exp": "b"}),
        ], user="cid", team="infra", project="search", notebook_path="c.ipynb",
            kill_in_last=True)
    return home / "spend"


@pytest.fixture(scope="module")
def oracle(team):
    """The export table's top-level rows of the same logs."""
    return [r for r in rows_from_events(read_logs([team]).events) if not r.get("parent_id")]


@pytest.fixture(scope="module")
def spend(team):
    with load_spend([team], cache=False) as loaded:
        yield loaded


def total(rows, column="cost_usd"):
    return sum((r.get(column) or ZERO for r in rows), ZERO)


def test_the_team_is_what_the_tests_assume(oracle):
    assert {r["user"] for r in oracle} == {"ann", "bob", "cid"}
    assert {r["status"] for r in oracle} == {"ok", "error", "interrupted"}
    assert any(r["unpriced"] for r in oracle)
    assert total(oracle) > 0 and total(oracle, "gpu_cost_usd") > 0


def test_the_total_is_the_logs_to_the_last_digit(spend, oracle):
    report = build(spend, "user")
    assert report.total["cost_usd"] == total(oracle)
    assert report.total["gpu_cost_usd"] == total(oracle, "gpu_cost_usd")
    assert report.total["llm_cost_usd"] == total(oracle, "llm_cost_usd")
    assert report.total["cells"] == sum(r["kind"] != "between_cells" for r in oracle)
    assert report.total["sessions"] == 3


@pytest.mark.parametrize("by", [d for d in DIMENSIONS if d != "tag"] + ["tag:exp", "user,project",
                                                                       "user,model,day"])
def test_every_grouping_adds_up_to_the_total(spend, by):
    report = build(spend, by)
    assert len(report.rows) >= (2 if by not in ("gpu", "day", "week", "month") else 1), by
    for figure in ADDITIVE:
        assert total(report.rows, figure) == (report.total[figure] or ZERO), (by, figure)
    if not any(k in ("model", "provider") for k in report.by):
        assert sum(r["cells"] for r in report.rows) == report.total["cells"]
    assert not any(n.startswith("The rows add up") for n in report.notes)


def test_two_keys_make_every_pair_seen(spend, oracle):
    report = build(spend, "user,project")
    assert {tuple(r["keys"].values()) for r in report.rows} == {
        (r["user"], r["project"]) for r in oracle}
    for row in report.rows:
        mine = [r for r in oracle if (r["user"], r["project"]) == tuple(row["keys"].values())]
        assert row["cost_usd"] == total(mine)


def test_by_tag_counts_a_two_tag_cell_in_both_rows_and_says_how_much(spend, oracle):
    report = build(spend, "tag")
    two = [r for r in oracle if len(json.loads(r["tags"])) == 2]
    assert len(two) == 1
    rows = {r["keys"]["tag"]: r["cost_usd"] for r in report.rows}
    assert rows["run=7"] == two[0]["cost_usd"]
    assert rows["(untagged)"] == total([r for r in oracle if r["tags"] == "{}"])
    assert sum(rows.values()) - report.total["cost_usd"] == two[0]["cost_usd"]
    note = next(n for n in report.notes if n.startswith("The rows add up to more"))
    assert "1 window carries more than one tag" in note
    assert any('"(untagged)" row' in n for n in report.notes)


def test_by_one_tag_the_rows_add_up_and_untagged_spend_has_its_row(spend, oracle):
    report = build(spend, "tag:exp")
    rows = {r["keys"]["tag:exp"]: r["cost_usd"] for r in report.rows}
    for value in ("a", "b"):
        assert rows[value] == total([r for r in oracle if json.loads(r["tags"]).get("exp") == value])
    assert rows["(no exp tag)"] == total([r for r in oracle if "exp" not in json.loads(r["tags"])])
    assert any('"(no exp tag)" row' in n for n in report.notes)


def _calls(team):
    return [e for e in read_logs([team]).events if e["event"] == "llm_call"]


def test_by_model_gpu_spend_is_its_own_row(spend, team, oracle):
    report = build(spend, "model")
    rows = {r["keys"]["model"]: r for r in report.rows}
    calls = _calls(team)
    for model in ("gpt-4o", "gpt-4o-mini"):
        assert rows[model]["cost_usd"] == sum(Decimal(c["cost_usd"]) for c in calls if c["key"] == model)
        assert rows[model]["llm_calls"] == sum(c["key"] == model for c in calls)
    assert rows["(no model: GPU and other)"]["cost_usd"] == total(oracle) - total(oracle, "llm_cost_usd")
    assert rows["(no model: GPU and other)"]["gpu_held_s"] > 0
    assert rows["my-local-model"]["unpriced_share"] == 1 and rows["my-local-model"]["cost_usd"] == 0
    assert any("no model's" in n for n in report.notes)
    provider = {r["keys"]["provider"]: r["cost_usd"] for r in build(spend, "provider").rows}
    assert provider["openai"] == rows["gpt-4o"]["cost_usd"] + rows["gpt-4o-mini"]["cost_usd"]
    assert provider["(unknown provider)"] == 0  # my-local-model: unpriced, no provider known


def test_cache_savings_are_the_input_price_of_cached_tokens_less_their_price(spend):
    row = {r["keys"]["model"]: r for r in build(spend, "model").rows}["gpt-4o-mini"]
    assert row["llm_cache_read_tokens"] == 400
    full = genai_prices.calc_price(genai_prices.Usage(input_tokens=400), "gpt-4o-mini",
                                   provider_id="openai").total_price
    cached = genai_prices.calc_price(genai_prices.Usage(input_tokens=400, cache_read_tokens=400),
                                     "gpt-4o-mini", provider_id="openai").total_price
    assert row["cache_saved_usd"] == full - cached > 0


def test_gpu_waste_in_dollars_is_what_the_logs_say(spend, team):
    """Each cell's logged waste dollars, plus what the session logged beyond its cells (the
    time between cells; never below zero, like every between-cells figure)."""
    events = [e for e in read_logs([team]).events if e.get("user") == "ann"]
    end = next(e for e in events if e["event"] == "session_end")
    cells = [e["meters"]["gpu"]["detail"]["waste_usd"] for e in events if e["event"] == "cell_end"]
    row = {r["keys"]["user"]: r for r in build(spend, "user").rows}["ann"]
    for kind in ("idle_between", "stall", "underfill"):
        in_cells = sum((Decimal(c.get(kind) or 0) for c in cells), ZERO)
        session = Decimal(end["meters"]["gpu"]["detail"]["waste_usd"][kind])
        assert row[f"gpu_{kind}_usd"] == in_cells + max(session - in_cells, ZERO), kind
    assert row["gpu_idle_between_s"] > 0 and row["gpu_idle_between_usd"] > 0


def test_status_and_errors(spend, oracle):
    rows = {r["keys"]["status"]: r for r in build(spend, "status").rows}
    assert rows["error"]["cells"] == 1 and rows["error"]["failed_cells"] == 1
    assert rows["interrupted"]["cost_usd"] == total([r for r in oracle if r["status"] == "interrupted"])
    assert rows["interrupted"]["cost_usd"] > 0  # the killed cell's LLM call, rebuilt


def _filtered(team, oracle, predicate, **options):
    with load_spend([team], cache=False, **options) as filtered:
        report = build(filtered, "user")
    assert report.total["cost_usd"] == total([r for r in oracle if predicate(r)]), options
    return report


def test_filters_keep_exactly_the_matching_spend(team, oracle):
    _filtered(team, oracle, lambda r: r["user"] == "bob", filters={"users": ["bob"]})
    _filtered(team, oracle, lambda r: r["team"] == "ml", filters={"teams": ["ml"]})
    _filtered(team, oracle, lambda r: r["project"] == "search", filters={"projects": ["search"]})
    _filtered(team, oracle, lambda r: r["notebook_path"] == "/home/bob/b.ipynb",
              filters={"notebooks": ["b.ipynb"]})
    _filtered(team, oracle, lambda r: r["notebook_path"] in ("work/a.ipynb", "c.ipynb"),
              filters={"notebooks": ["work/a.ipynb", "c.ipynb"]})
    _filtered(team, oracle, lambda r: r["notebook_path"] == "/home/bob/b.ipynb",
              filters={"notebooks": ["/home/*/b.ipynb"]})
    _filtered(team, oracle, lambda r: json.loads(r["tags"]).get("exp") == "a",
              filters={"tags": {"exp": "a"}})
    _filtered(team, oracle, lambda r: "run" in json.loads(r["tags"]), filters={"tags": {"run": None}})
    starts = sorted(r["start"] for r in oracle)
    middle = starts[len(starts) // 2]
    _filtered(team, oracle, lambda r: r["start"] >= middle, since=middle)
    _filtered(team, oracle, lambda r: r["start"] < middle, until=middle)
    _filtered(team, oracle, lambda r: False, until=starts[0] - dt.timedelta(days=1))


def test_the_model_filter_counts_that_models_llm_spend_only(team):
    calls = _calls(team)
    with load_spend([team], cache=False, filters={"models": ["gpt-4o"]}) as only:
        report = build(only, "user")
    assert report.total["cost_usd"] == sum(Decimal(c["cost_usd"]) for c in calls if c["key"] == "gpt-4o")
    assert report.total["gpu_cost_usd"] == 0
    assert any("Only LLM spend on gpt-4o" in n for n in report.notes)


def test_build_report_over_rows_in_memory(oracle):
    report = build_report(oracle, "user")
    assert report.total.cost_usd == total(oracle)
    assert {r["keys"]["user"] for r in report.rows} == {"ann", "bob", "cid"}
