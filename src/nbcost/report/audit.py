"""``nbcost audit``: one self-contained HTML file for a manager.

It opens offline, from a file or an e-mail: plotly.js is inlined once, the figures' data sits
in ``<script type="application/json">`` elements with ``<`` escaped, and the tables and text
are rendered by Jinja2 with autoescaping, so no label, tag, path or model name a user typed
can become markup. Money is Decimal throughout and written with
:func:`nbcost.display.format.format_usd`; the page's root carries the classes that keep
Jupyter's MathJax from typesetting "$1.20 … $3.40" as TeX.

The figures come from :mod:`audit_queries` (SQL over the report engine's tables), the model
what-if from :mod:`audit_whatif`, the charts from :mod:`audit_charts`. ``docs/audit.md`` explains every section to its reader.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from ..display.format import format_count, format_percent, format_seconds, format_usd, plural
from ..display.summary import NO_MATH
from . import audit_charts as charts
from . import audit_queries as q
from .audit_whatif import what_if
from .local_models import local_section

__all__ = ["AuditOptions", "render_audit", "write_audit"]

ZERO = Decimal(0)
NO_MODEL = "(model not recorded)"


@dataclass
class AuditOptions:
    """What the reader asked for; ``since``/``until`` only label the period (the engine
    already filtered by them)."""

    compare_models: list[str] | None = None
    top: int = 20
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    sources: list[str] = field(default_factory=list)  # what was read, as the user named it
    generated_at: dt.datetime | None = None
    settings: Any = None  # for the user's LLM price overrides in the what-if


def _price_data_version() -> str:
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')} (bundled price data)"


def _when(moment: dt.datetime | None) -> str:
    if moment is None:
        return "–"
    moment = moment.astimezone(dt.timezone.utc) if moment.tzinfo else moment
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _bucket(first: dt.datetime | None, last: dt.datetime | None) -> str:
    if first is None or last is None:
        return "day"
    span = last - first
    return "hour" if span <= dt.timedelta(days=2) else "day" if span <= dt.timedelta(days=120) else "week"


def _cell_name(cell: dict[str, Any]) -> str:
    where = cell["notebook"] or cell["notebook_key"] or "(no notebook)"
    what = cell["label"] or (f"[{cell['execution_count']}]" if cell["execution_count"] is not None
                             else cell["cell_id"] or "block")
    return f"{where} {what}"


def _tags(text: str | None) -> str:
    try:
        tags = json.loads(text or "{}")
    except ValueError:
        return text or ""
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) if isinstance(tags, dict) else ""


def _table(headers: list[str], rows: list[list[Any]], text: Iterable[int] = (0,),
           total: list[Any] | None = None, more: int = 0) -> dict[str, Any]:
    """A table for the template: every cell a string (escaped there); the columns not in
    ``text`` hold figures, right-aligned and never wrapped."""
    return {"headers": headers, "rows": [[str(c) for c in r] for r in rows],
            "numeric": [i not in set(text) for i in range(len(headers))],
            "total": [str(c) for c in total] if total else None, "more": more}


def _headline(h: q.Headline, saving: Decimal | None, events: list[dict], usage: dict) -> list[dict]:
    cards = [
        {"label": "total spend", "value": format_usd(h.total_usd, h.unpriced),
         "note": f"{plural(h.cells, 'cell')}, {plural(h.sessions, 'session')}, "
                 f"{plural(h.notebooks, 'notebook')}, {plural(h.people, 'person')}".replace(
                     "persons", "people")},
        {"label": "GPU", "value": format_usd(h.gpu_usd),
         "note": f"{format_percent(h.gpu_usd, h.total_usd)} of spend; "
                 f"{format_seconds(h.gpu_held_s)} held"},
        {"label": "LLM", "value": format_usd(h.llm_usd, bool(usage["unpriced_calls"])),
         "note": f"{format_percent(h.llm_usd, h.total_usd)} of spend; {plural(h.llm_calls, 'call')}"},
        {"label": "GPU idle and waste", "value": format_usd(h.wasted_usd),
         "note": f"{format_percent(h.wasted_usd, h.gpu_usd)} of GPU spend"},
        {"label": "cheapest acceptable models would save",
         "value": format_usd(saving) if saving is not None else "unknown",
         "note": "by price alone, on the listed models" if saving is not None
         else "some calls have no recorded price"},
        {"label": "budget warnings / refusals",
         "value": f"{sum(e['action'] == 'warning' for e in events)} / "
                  f"{sum(e['action'] == 'refused' for e in events)}",
         "note": f"{plural(len({e['session_id'] for e in events}), 'session')} with budget events"},
    ]
    if h.other_usd:
        cards.insert(3, {"label": "other meters", "value": format_usd(h.other_usd), "note": ""})
    return cards


def render_audit(spend, options: AuditOptions | None = None) -> str:
    """The audit page for ``spend``, what :func:`nbcost.report.load_spend` read."""
    options = options or AuditOptions()
    con = spend.con
    q.prepare(con)
    head = q.headline(con)
    events = q.budget_events(con)
    models = q.by_model(con)
    usage = {"unpriced_calls": sum(m["unpriced_calls"] for m in models),
             "estimated_calls": sum(m["estimated_calls"] for m in models),
             "unpriced_windows": q.unpriced_windows(con)}
    whatif = what_if(con, options.compare_models, options.settings)
    first, last = options.since or head.first, options.until or head.last
    bucket = _bucket(head.first, head.last)
    figures: dict[str, dict] = {}
    sections: dict[str, Any] = {}

    over_time = q.spend_over_time(con, bucket)
    if over_time:
        figures["chart-time"] = charts.spend_over_time(over_time, events, bucket)

    who = {}
    for column in q.BY_WHO:
        rows = q.by_who(con, column)
        who[column] = _table(
            [column, "cells", "sessions", "GPU", "LLM", "total", "share"],
            [[r["key"] if r["key"] is not None else f"(no {column})", format_count(r["cells"]),
              format_count(r["sessions"]), format_usd(r["gpu_usd"]), format_usd(r["llm_usd"]),
              format_usd(r["total_usd"], r["unpriced"]), format_percent(r["total_usd"], head.total_usd)]
             for r in rows],
            total=["total", format_count(head.cells), format_count(head.sessions),
                   format_usd(head.gpu_usd), format_usd(head.llm_usd),
                   format_usd(head.total_usd, head.unpriced), "100 %"] if rows else None)
        if rows:
            figures[f"chart-{column}"] = charts.by_key(rows, column)
    sections["who"] = who

    by_name = {m.model: m for m in whatif.models}
    sections["models"] = _table(
        ["model", "provider", "calls", "input tokens", "cached", "output tokens", "reasoning",
         "cost", "cheapest acceptable", "would cost", "saving"],
        [[m["model"] or NO_MODEL, _provider(m["model"]), format_count(m["calls"]),
          format_count(m["input_tokens"]), format_count(m["cache_read_tokens"]),
          format_count(m["output_tokens"]), format_count(m["reasoning_tokens"]),
          format_usd(m["cost_usd"], bool(m["unpriced_calls"])),
          *_whatif_cells(by_name.get(m["model"]))] for m in models], text=(0, 1, 8))
    sections["whatif"] = {"candidates": whatif.candidates, "unknown": whatif.unknown,
                          "saving": format_usd(whatif.saving_usd) if whatif.saving_usd is not None
                          else None}
    if models:
        figures["chart-model-tokens"] = charts.model_tokens(models)
        figures["chart-model-costs"] = charts.model_costs(whatif.models)

    local = local_section(spend, options.settings, options.compare_models)
    sections["local"] = None if local is None else {
        "table": _table(local["headers"], local["rows"], text=(0, 1, 10)), "busy": local["busy"]}

    gpu = q.gpu_by_notebook(con)
    shown = gpu[:options.top]
    sections["gpu"] = {
        "summary": _table(
            ["", "seconds", "dollars", "share of GPU spend"],
            [["held (billed)", format_seconds(head.gpu_held_s), format_usd(head.gpu_usd), "100 %"],
             ["busy", format_seconds(head.gpu_busy_s), "", ""],
             *[[charts.WASTE_NAMES[w], format_seconds(head.waste_s[w]),
                format_usd(head.waste_usd[w]), format_percent(head.waste_usd[w], head.gpu_usd)]
               for w in q.WASTES],
             ["all waste", format_seconds(sum(head.waste_s.values())),
              format_usd(head.wasted_usd), format_percent(head.wasted_usd, head.gpu_usd)]]),
        "notebooks": _table(
            ["notebook", "sessions", "held", "busy", "GPU cost", "idle between cells", "stall",
             "underfill", "wasted", "waste share"],
            [[n["notebook"] or n["notebook_key"] or "(no notebook)", format_count(n["sessions"]),
              format_seconds(n["held_s"]), format_seconds(n["busy_s"]), format_usd(n["gpu_usd"]),
              *[format_usd(n[f"{w}_usd"]) for w in q.WASTES], format_usd(n["wasted_usd"]),
              format_percent(n["wasted_usd"], n["gpu_usd"])] for n in shown],
            more=len(gpu) - len(shown)),
    }
    if gpu:
        figures["chart-gpu"] = charts.gpu_waste(gpu)

    cells, cell_count = q.top_cells(con, options.top)
    cell_spend = head.total_usd - _between_cells_usd(con)
    running = ZERO
    rows = []
    for rank, cell in enumerate(cells, start=1):
        running += cell["cost_usd"]
        rows.append([rank, cell["notebook"] or cell["notebook_key"] or "(no notebook)",
                     cell["label"] or "", "" if cell["execution_count"] is None else cell["execution_count"],
                     _tags(cell["tags"]), cell["user"] or "", _when(cell["start"]),
                     format_seconds(cell["wall_s"] or 0), format_usd(cell["gpu_cost_usd"]),
                     format_usd(cell["llm_cost_usd"]), format_usd(cell["cost_usd"], cell["unpriced"]),
                     format_percent(running, cell_spend)])
    sections["cells"] = _table(["#", "notebook", "label", "cell", "tags", "user", "started",
                                "wall", "GPU", "LLM", "cost", "cumulative share"], rows,
                               text=(1, 2, 4, 5), more=cell_count - len(cells))
    sections["cells_note"] = (f"The {plural(len(cells), 'most expensive cell')} make up "
                              f"{format_percent(running, cell_spend)} of the "
                              f"{format_usd(cell_spend)} spent in {plural(cell_count, 'cell')} "
                              f"that cost anything." if cells else "")
    if cells:
        figures["chart-pareto"] = charts.pareto(cells, cell_spend, [_cell_name(c) for c in cells])

    sections["budgets"] = _table(
        ["when", "action", "scope", "budget", "spent", "threshold", "user", "notebook"],
        [[_when(e["ts"]), e["action"], e["scope"] or "",
          format_usd(e["budget_usd"]) if e["budget_usd"] is not None else "",
          format_usd(e["spent_usd"]) if e["spent_usd"] is not None else "",
          format_percent(e["threshold"], 1) if e["threshold"] is not None else "",
          e["user"] or "", e["notebook"] or e["notebook_key"] or ""]
         for e in events], text=(1, 2, 6, 7))
    if any(e["action"] in ("warning", "refused") for e in events):
        figures["chart-budgets"] = charts.budgets(events)

    unpriced_calls, estimated_calls = usage["unpriced_calls"], usage["estimated_calls"]
    sections["usage"] = {
        "text": (f"{format_count(unpriced_calls)} of {plural(head.llm_calls, 'LLM call')} had no "
                 f"known price: their cost is unknown, not zero, so the real spend is higher "
                 f"than shown (in {plural(usage['unpriced_windows'], 'row')} of the spend "
                 f"table). {plural(estimated_calls, 'call')} had no "
                 f"usage in the API's reply; {'its' if estimated_calls == 1 else 'their'} "
                 f"tokens were estimated with a tokenizer."),
        "table": _table(["model", "calls", "unpriced calls", "their tokens", "estimated calls",
                         "estimated share"],
                        [[m["model"] or NO_MODEL, format_count(m["calls"]),
                          format_count(m["unpriced_calls"]), format_count(m["unpriced_tokens"]),
                          format_count(m["estimated_calls"]),
                          format_percent(m["estimated_calls"], m["calls"])]
                         for m in models if m["unpriced_calls"] or m["estimated_calls"]]),
        "unpriced_calls": usage["unpriced_calls"], "estimated_calls": usage["estimated_calls"],
        "unpriced_windows": usage["unpriced_windows"], "calls": head.llm_calls,
    }

    coverage = q.notebook_coverage(con)
    missing = [c for c in coverage if c["unrecorded"]]
    sections["notebooks"] = {
        "table": _table(["notebook", "code cells", "run", "recorded", "run without a record",
                         "their execution counts"],
                        [[c["notebook"] or c["notebook_key"], c["code_cells"], c["run"],
                          c["recorded"], c["unrecorded"],
                          ", ".join(str(n) for n in c["counts"][:12])
                          + (" …" if len(c["counts"]) > 12 else "")] for c in missing]),
        "read": len(coverage), "unrecorded": sum(c["unrecorded"] for c in coverage),
    }

    data = {
        "currency": "USD", "price_data": _price_data_version(),
        "total_usd": str(head.total_usd), "gpu_usd": str(head.gpu_usd), "llm_usd": str(head.llm_usd),
        "wasted_usd": str(head.wasted_usd),
        "waste_usd": {w: str(v) for w, v in head.waste_usd.items()}, "unpriced": head.unpriced,
        "sessions": head.sessions, "cells": head.cells, "llm_calls": head.llm_calls,
        "saving_usd": None if whatif.saving_usd is None else str(whatif.saving_usd),
        "compare_models": whatif.candidates,
        "budget_events": {a: sum(e["action"] == a for e in events) for a in ("warning", "refused")},
        "cells_without_record": sections["notebooks"]["unrecorded"],
        "period": {"from": first.isoformat() if first else None,
                   "until": last.isoformat() if last else None},
    }
    context = {
        "no_math": NO_MATH,
        "generated": _when(options.generated_at or dt.datetime.now(dt.timezone.utc)),
        "period": f"{_when(first)} – {_when(last)}",
        "period_given": bool(options.since or options.until),
        "currency": "USD", "price_data": data["price_data"], "sources": options.sources,
        "skipped": spend.skipped.summary() if spend.skipped is not None else None, "cards": _headline(head, whatif.saving_usd, events, usage),
        "bucket": bucket, "sections": sections, "figures": set(figures), "top": options.top,
        "figures_json": charts.to_json(figures), "data_json": charts.to_json(data),
        "plotly_js": _plotly_js(), "render_js": _asset("audit_render.js"),
        "style": _asset("audit_style.css"),
    }
    return _template().render(**context)


def _provider(model: str | None) -> str:
    """The provider genai-prices knows ``model`` by (a log records the SDK, not the seller)."""
    if model is None:
        return ""
    from ..pricing.llm import shared_price_book

    found = shared_price_book().lookup(model, None, None)
    return found[0].id if found else ""


def _whatif_cells(entry) -> list[str]:
    if entry is None:  # only failed calls: nothing to compare
        return ["", "", ""]
    if entry.cheapest is None:
        return ["no price known", "", ""]
    saving = entry.saving_usd
    return [entry.cheapest, format_usd(entry.cheapest_usd),
            format_usd(saving) if saving is not None else "unknown (unpriced calls)"]


def _between_cells_usd(con) -> Decimal:
    (value,) = con.execute(
        f"SELECT sum(cost_usd) FROM windows WHERE {q.TOP} AND NOT ({q.CELLS})").fetchone()
    return value or ZERO


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _plotly_js() -> str:
    """plotly.js, minified, to inline once (the page must open without a network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def _template():
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    # Already made safe for where they go: JSON with "<" escaped, our own script and style.
    env.filters["script_safe"] = lambda text: Markup(text)
    return env.from_string(_asset("audit_page.html.j2"))


def write_audit(spend, path: Path, options: AuditOptions | None = None) -> Path:
    page = render_audit(spend, options)
    path.write_text(page, encoding="utf-8")
    return path
