"""``nbcost audit``: one offline HTML file whose figures are the engine's, whose every section is
there, and in which no user's string becomes markup. The spend logs come from real Sessions
(``audit_logs.make_logs``)."""

from __future__ import annotations

import json
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from audit_logs import EVIL_MODEL, HOSTILE, IMG, NOTEBOOK_RECORDS_USD, QUOTE, SCRIPT, make_logs
from nbcost.report import load_spend

from nbcost.cli import main
from nbcost.ledger import read_logs
from nbcost.pricing.llm import shared_price_book
from nbcost.report.audit import AuditOptions, render_audit, write_audit
from nbcost.report.audit_queries import by_model, prepare
from nbcost.report.audit_whatif import what_if
from nbcost.rows import rows_from_events


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return make_logs(tmp_path_factory.mktemp("audit"))


@pytest.fixture(scope="module")
def page(logs) -> str:
    return render_audit(load_spend([logs]), AuditOptions(sources=[str(logs)]))


def _data(page: str, element: str = "nbcost-audit-data") -> dict:
    start = page.index(f'<script type="application/json" id="{element}">')
    start = page.index(">", start) + 1
    return json.loads(page[start:page.index("</script>", start)])


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text outside scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._raw = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._raw += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._raw -= tag in ("script", "style") and self._raw > 0

    def handle_data(self, data):
        if not self._raw:
            self.text.append(data)


def _parse(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    return parser


# -- the figures are the engine's --------------------------------------------------------------

def test_the_headline_totals_are_the_reports_and_the_logs_exactly(logs, page):
    data = _data(page)
    report = load_spend([logs]).report("user").total
    assert Decimal(data["total_usd"]) == report["cost_usd"]
    assert Decimal(data["gpu_usd"]) == report["gpu_cost_usd"] > 0
    assert Decimal(data["llm_usd"]) == report["llm_cost_usd"] > 0
    events = read_logs([logs / "spend"]).events
    rows = [r for r in rows_from_events(events) if not r["parent_id"]]
    session_totals = sum(Decimal(e["cost_usd"]) for e in events if e["event"] == "session_end")
    assert sum(r["cost_usd"] for r in rows) == session_totals
    assert Decimal(data["total_usd"]) == session_totals + NOTEBOOK_RECORDS_USD
    assert Decimal(data["gpu_usd"]) == sum(r.get("gpu_cost_usd") or 0 for r in rows)
    assert data["unpriced"] is True  # the model nobody prices
    assert data["sessions"] == 4 and data["llm_calls"] == 5  # 2 logged, 2 from notebooks
    assert data["budget_events"] == {
        a: sum(e["event"] == "budget" and e["action"] == a for e in events)
        for a in ("warning", "refused")}
    assert data["budget_events"]["warning"] >= 1 and data["budget_events"]["refused"] == 1


def test_the_gpu_wastes_are_priced_and_shown(page):
    data = _data(page)
    waste = {k: Decimal(v) for k, v in data["waste_usd"].items()}
    assert waste["idle_between"] > 0 and waste["stall"] > 0
    assert Decimal(data["wasted_usd"]) == sum(waste.values())


def test_every_section_and_chart_is_there(page):
    tags = _parse(page)
    ids = {attrs.get("id") for _, attrs in tags.tags}
    for section in ("headline", "time", "who", "models", "gpu", "cells", "budgets", "usage",
                    "notebooks"):
        assert section in ids, section
    figures = _data(page, "nbcost-audit-figures")
    assert set(figures) == {"chart-time", "chart-user", "chart-team", "chart-project",
                            "chart-model-tokens", "chart-model-costs", "chart-gpu",
                            "chart-pareto", "chart-budgets"}
    assert figures.keys() <= ids  # a div for each
    text = " ".join(" ".join(tags.text).split())
    for words in ("Period:", "Currency: USD", "genai-prices", "total spend", "Top cells",
                  "Cells run without a record", "idle between cells", "cheapest acceptable"):
        assert words in text, words


def test_the_root_keeps_mathjax_off_the_dollars(page):
    tags = _parse(page)
    html_tag = next(attrs for tag, attrs in tags.tags if tag == "html")
    assert {"mathjax_ignore", "tex2jax_ignore"} <= set(html_tag["class"].split())


def test_time_chart_stacks_gpu_and_llm_with_budget_lines_and_burn(page):
    figure = _data(page, "nbcost-audit-figures")["chart-time"]
    names = [trace.get("name") for trace in figure["data"]]
    assert names[:3] == ["GPU", "LLM", "cumulative burn"]
    assert "budget warning" in names and "budget refused" in names
    burn = figure["data"][2]["y"]
    assert burn == sorted(burn) and burn[-1] == pytest.approx(float(_data(page)["total_usd"]))


def test_unrecorded_cells_are_counted_from_the_notebooks(page):
    assert _data(page)["cells_without_record"] == 2  # an execution count, no metadata.nbcost
    text = " ".join(_parse(page).text)
    assert "broken.ipynb" in text  # the engine's summary of what it could not read


# -- the what-if ------------------------------------------------------------------------------

def _per_call(logs, candidate: str) -> dict[str, Decimal]:
    """Each model's calls priced one by one on ``candidate`` (the reference)."""
    book, totals = shared_price_book(), {}
    for e in read_logs([logs / "spend"]).events:
        if e["event"] == "llm_call" and not e["quantities"].get("errors"):
            q = e["quantities"]
            counts = {u: q[u] for u in ("input_tokens", "cache_read_tokens", "cache_write_tokens",
                                        "output_tokens") if q.get(u)}
            price = book.price(counts, [candidate], None, None, None).cost_usd
            totals[e["key"]] = totals.get(e["key"], Decimal(0)) + price
    return totals


def test_the_cheapest_acceptable_model_is_priced_like_each_call_apart(logs):
    spend = load_spend([logs])
    candidates = ["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "no-such-model"]
    prepare(spend.con)
    result = what_if(spend.con, candidates)
    assert result.unknown == ["no-such-model"]
    references = {c: _per_call(logs, c) for c in candidates[:3]}
    by_model = {m.model: m for m in result.models}
    for model in ("gpt-4o", "gpt-4o-mini"):
        options = {c: references[c][model] for c in candidates[:3]}
        options[model] = _per_call(logs, model)[model]
        cheapest = min(options, key=options.get)
        assert by_model[model].cheapest == cheapest
        assert by_model[model].cheapest_usd == options[cheapest]
    assert by_model["gpt-4o"].saving_usd > 0
    assert result.saving_usd is None  # the unpriced model's calls: the saving is unknown


def test_tiered_prices_are_exact_across_the_tier():
    """gemini-2.5-pro prices a whole call higher once its input exceeds 200,000 tokens."""
    con = duckdb.connect()
    con.execute("""CREATE TABLE audit_models AS SELECT 'm' AS model, 1 AS calls, i AS input_tokens,
        (i // 10) AS cache_read_tokens, 0 AS cache_write_tokens, 1000 + i % 7 AS output_tokens,
        0 AS reasoning_tokens, 0 AS errors, 0 AS estimated_calls,
        0.5::DECIMAL(38,18) AS cost_usd, false AS unpriced
        FROM (SELECT unnest([1, 150000, 199999, 200000, 200001, 350000, 999]) AS i)""")
    book = shared_price_book()
    calls = con.execute("SELECT input_tokens, cache_read_tokens, output_tokens FROM audit_models"
                        ).fetchall()
    expected = {c: sum(book.price({"input_tokens": i, "cache_read_tokens": r, "output_tokens": o},
                                  [c], None, None, None).cost_usd for i, r, o in calls)
                for c in ("gemini-2.5-pro", "claude-sonnet-4-5", "gpt-4o")}
    result = what_if(con, list(expected))
    (entry,) = result.models
    cheapest = min(expected, key=expected.get)
    assert (entry.cheapest, entry.cheapest_usd) == (cheapest, expected[cheapest])
    for candidate, cost in expected.items():  # each alone, so each is "the cheapest"
        assert what_if(con, [candidate]).models[0].cheapest_usd == cost


# -- no user string becomes markup ------------------------------------------------------------

def test_hostile_strings_appear_only_escaped(page):
    for raw in (*HOSTILE, EVIL_MODEL):
        assert raw not in page, raw
    tags = _parse(page)
    assert not [t for t, _ in tags.tags if t in ("img", "svg", "iframe", "object")]
    assert not [a for _, attrs in tags.tags for a in attrs if a.startswith("on")]
    assert sum(t == "script" for t, _ in tags.tags) == 4  # data, figures, plotly.js, renderer
    text = " ".join(tags.text)
    for raw in (IMG, SCRIPT, QUOTE):  # shown as typed, as text
        assert raw in text, raw
    figures = json.dumps(_data(page, "nbcost-audit-figures"))
    assert "&lt;img src=x onerror=alert(1)&gt;" in figures  # plotly shows entities as typed


def test_logs_without_local_generation_never_read_every_llm_call(logs, monkeypatch):
    """The Local models section compares self-hosted generation with the API calls: where no
    window generated locally there is nothing to compare, and the API calls (every llm_call
    line of every log: seconds at a million cells) are not read for it."""
    from nbcost.report import local_models

    def refuse(spend):
        raise AssertionError("the API calls were read with no local generation to compare")

    monkeypatch.setattr(local_models, "api_call_events", refuse)
    page = render_audit(load_spend([logs]), AuditOptions(sources=[str(logs)]))
    assert _data(page)["total_usd"]


def test_the_page_loads_nothing_from_a_network(page):
    tags = _parse(page)
    for tag, attrs in tags.tags:
        assert tag != "link", attrs
        for name in ("src", "href", "data", "action", "srcset", "poster"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "javascript:")), (tag, attrs)
        if tag == "script":
            assert "src" not in attrs
    assert "@import" not in page
    assert "url(http" not in page.replace(" ", "")


def test_the_audit_is_one_file(logs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    path = write_audit(load_spend([logs]), out / "audit.html")
    assert [p.name for p in out.iterdir()] == ["audit.html"]
    assert path.stat().st_size > 1_000_000  # plotly.js is inside
    assert path.read_text(encoding="utf-8").count("Plotly") > 10


# -- the command ------------------------------------------------------------------------------

def test_the_command_writes_the_audit_with_the_chosen_models(logs, tmp_path, capsys):
    out = tmp_path / "team.html"
    assert main(["audit", str(logs), "-o", str(out), "--compare-models", "gpt-4o-mini, o3",
                 "--top", "2"]) == 0
    said = capsys.readouterr()
    assert f"Audit written to {out}" in said.out
    assert "broken.ipynb" in said.err  # what could not be read, in one line
    page = out.read_text(encoding="utf-8")
    data = _data(page)
    assert data["compare_models"] == ["gpt-4o-mini", "o3"]
    assert Decimal(data["total_usd"]) == load_spend([logs]).report("user").total["cost_usd"]
    assert f"and {data['cells'] - 2} more not shown." in " ".join(_parse(page).text)  # --top 2


def test_an_empty_period_still_makes_a_page(logs, tmp_path):
    out = tmp_path / "empty.html"
    assert main(["audit", str(logs), "-o", str(out), "--since", "2030-01-01"]) == 0
    data = _data(out.read_text(encoding="utf-8"))
    assert Decimal(data["total_usd"]) == 0 and data["cells"] == 0


@pytest.mark.parametrize("args, message", [
    (["--since", "last tuesday"], "--since takes a date like 2026-11-01"),
    (["--top", "0"], "--top takes a number"),
    (["-o", "/no/such/folder/a.html"], "the folder /no/such/folder does not exist"),
])
def test_bad_options_say_what_to_do(logs, args, message, capsys):
    assert main(["audit", str(logs), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_nothing_readable_is_an_error(tmp_path, capsys):
    (tmp_path / "junk.jsonl").write_text("not json\n")
    assert main(["audit", str(tmp_path), "-o", str(tmp_path / "a.html")]) == 2
    err = capsys.readouterr().err
    assert "nothing readable" in err or "skipped" in err
    assert not (tmp_path / "a.html").exists()


def test_a_page_with_nothing_in_the_period_renders(logs):
    """What a --since after every record leaves: the engine's tables, empty."""
    spend = load_spend([logs])
    con = spend.con
    for name in ("windows", "llm_calls", "budget_events", "notebook_cells"):
        con.execute(f"CREATE TEMP TABLE empty_{name} AS SELECT * FROM {name} WHERE false")
        (is_view,) = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?",
                                 [name]).fetchone()
        con.execute(f"DROP {'VIEW' if is_view else 'TABLE'} {name}")
        con.execute(f"ALTER TABLE empty_{name} RENAME TO {name}")
    page = render_audit(spend)
    data = _data(page)
    assert Decimal(data["total_usd"]) == 0 and data["cells"] == 0 and data["llm_calls"] == 0
    assert _data(page, "nbcost-audit-figures") == {}
    assert "None." in " ".join(_parse(page).text)


def test_the_model_lines_add_up_to_the_llm_total(logs):
    spend = load_spend([logs])
    prepare(spend.con)
    models = by_model(spend.con)
    assert sum(m["cost_usd"] for m in models) == spend.report("model").total["llm_cost_usd"]
    assert {m["model"] for m in models} == {"gpt-4o", "gpt-4o-mini", EVIL_MODEL}
    evil = next(m for m in models if m["model"] == EVIL_MODEL)
    assert evil["unpriced_calls"] == 1 and evil["cost_usd"] == 0
    assert sum(m["estimated_calls"] for m in models) == 1
