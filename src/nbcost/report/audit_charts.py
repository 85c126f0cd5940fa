"""The audit's charts as plotly figures (JSON-able dicts), drawn in the page by plotly.js.

Every label that came from a user (a name, a notebook path, a model) has ``&``, ``<`` and ``>``
escaped before it goes into a figure: plotly renders a few HTML-like tags in labels (``<b>``,
``<a href>``) and decodes those entities, so an escaped label shows as typed and never becomes
markup (quotes need no escaping there: plotly writes labels as SVG text). Dollars are
floats here because they only set bar lengths; every figure a reader copies is in the tables,
as Decimal through :func:`nbcost.display.format.format_usd`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from decimal import Decimal
from typing import Any, Iterable

__all__ = ["COLORS", "budgets", "by_key", "gpu_waste", "model_costs", "model_tokens", "pareto",
           "spend_over_time", "to_json"]

COLORS = {"gpu": "#4c78a8", "llm": "#f58518", "other": "#9d9d9d", "burn": "#222222",
          "busy": "#54a24b", "idle_between": "#e45756", "stall": "#eeca3b",
          "underfill": "#b279a2", "warning": "#f58518", "refused": "#d62728",
          "input": "#4c78a8", "cached": "#72b7b2", "cache_write": "#9ecae9", "output": "#f58518",
          "reasoning": "#e45756", "cheapest": "#54a24b"}
_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 60, "t": 40, "b": 50},
           "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}, "height": 360,
           "font": {"family": "system-ui, sans-serif", "size": 12}}
WASTE_NAMES = {"idle_between": "idle between cells", "stall": "stall inside cells",
               "underfill": "underfilled kernels"}


def label(text: Any) -> str:
    """A user's string, safe as a plotly label (and shown as typed)."""
    return html.escape("" if text is None else str(text), quote=False)


def _t(moment: dt.datetime) -> str:
    """A moment as plotly's date axis reads it: UTC, without an offset it would ignore."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat()


def _usd(value: Decimal | None) -> float:
    return float(value or 0)


def _figure(data: list[dict], **layout: Any) -> dict[str, Any]:
    import plotly.graph_objects as go

    figure = go.Figure(data=data, layout={**_LAYOUT, **layout})  # validates every property
    return json.loads(figure.to_json())


_BUCKET = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}


def spend_over_time(rows: list[dict[str, Any]], events: list[dict[str, Any]],
                    bucket: str) -> dict[str, Any]:
    """Stacked GPU and LLM spend per bucket, the cumulative burn at each bucket's end on the
    right axis, and each budget warning and refusal as a dotted line at its moment. Bars span
    their bucket on a time axis, so a lone bucket still shows and events fall inside theirs."""
    size = _BUCKET[bucket]
    middle = [_t(row["bucket"] + size / 2) for row in rows]
    width = [size.total_seconds() * 1000 * 0.9] * len(rows)  # milliseconds on a date axis
    ends, burn, running = [], [], Decimal(0)
    if rows:
        ends.append(_t(rows[0]["bucket"]))
        burn.append(0.0)
    for row in rows:
        running += row["total_usd"]
        ends.append(_t(row["bucket"] + size))
        burn.append(_usd(running))
    data = [
        {"type": "bar", "name": "GPU", "x": middle, "width": width,
         "y": [_usd(r["gpu_usd"]) for r in rows], "marker": {"color": COLORS["gpu"]}},
        {"type": "bar", "name": "LLM", "x": middle, "width": width,
         "y": [_usd(r["llm_usd"]) for r in rows], "marker": {"color": COLORS["llm"]}},
    ]
    other = [_usd(r["total_usd"] - r["gpu_usd"] - r["llm_usd"]) for r in rows]
    if any(other):
        data.append({"type": "bar", "name": "other meters", "x": middle, "width": width,
                     "y": other, "marker": {"color": COLORS["other"]}})
    data.insert(2, {"type": "scatter", "mode": "lines+markers", "name": "cumulative burn",
                    "x": ends, "y": burn, "yaxis": "y2", "line": {"color": COLORS["burn"]}})
    for action in ("warning", "refused"):
        moments = [_t(e["ts"]) for e in events if e["action"] == action]
        if moments:  # a line per event; the legend entry stands for all of them
            data.append({"type": "scatter", "mode": "lines", "name": f"budget {action}",
                         "x": [m for t in moments for m in (t, t, None)],
                         "y": [v for _ in moments for v in (0, 1, None)], "yaxis": "y3",
                         "line": {"color": COLORS[action], "dash": "dot", "width": 1.5},
                         "hoverinfo": "x+name"})
    return _figure(data, barmode="stack", xaxis={"title": {"text": f"per {bucket} (UTC)"},
                                                 "type": "date"},
                   yaxis={"title": {"text": f"spend per {bucket}, USD"}, "rangemode": "tozero"},
                   yaxis2={"title": {"text": "cumulative, USD"}, "overlaying": "y", "side": "right",
                           "rangemode": "tozero", "showgrid": False},
                   yaxis3={"overlaying": "y", "range": [0, 1], "visible": False})


def by_key(rows: list[dict[str, Any]], what: str, limit: int = 15) -> dict[str, Any]:
    """Horizontal bars, GPU and LLM stacked, the biggest spender on top."""
    shown = list(reversed(rows[:limit]))
    names = [label(r["key"] if r["key"] is not None else f"(no {what})") for r in shown]
    data = [{"type": "bar", "orientation": "h", "name": name, "y": names,
             "x": [_usd(r[f"{key}_usd"]) for r in shown], "marker": {"color": COLORS[key]}}
            for key, name in (("gpu", "GPU"), ("llm", "LLM"))]
    return _figure(data, barmode="stack", height=max(220, 60 + 26 * len(shown)),
                   xaxis={"title": {"text": "USD"}}, yaxis={"automargin": True})


def model_tokens(models: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model, its tokens by kind: uncached input, cache reads and writes, output, reasoning."""
    shown = list(reversed(models[:15]))
    names = [label(m["model"]) for m in shown]
    parts = (("input", "input (uncached)",
              lambda m: m["input_tokens"] - m["cache_read_tokens"] - m["cache_write_tokens"]),
             ("cached", "cache read", lambda m: m["cache_read_tokens"]),
             ("cache_write", "cache write", lambda m: m["cache_write_tokens"]),
             ("output", "output", lambda m: m["output_tokens"] - m["reasoning_tokens"]),
             ("reasoning", "reasoning", lambda m: m["reasoning_tokens"]))
    data = [{"type": "bar", "orientation": "h", "name": name, "y": names,
             "x": [max(int(part(m)), 0) for m in shown], "marker": {"color": COLORS[key]}}
            for key, name, part in parts]
    return _figure(data, barmode="stack", height=max(220, 60 + 26 * len(shown)),
                   xaxis={"title": {"text": "tokens"}}, yaxis={"automargin": True})


def model_costs(entries: Iterable[Any]) -> dict[str, Any]:
    """Per model: what its calls cost, and what they would have cost on the cheapest
    acceptable model."""
    entries = list(entries)[:15]
    names = [label(e.model) for e in entries]
    data = [{"type": "bar", "name": "as recorded", "x": names, "y": [_usd(e.cost_usd) for e in entries],
             "marker": {"color": COLORS["llm"]}},
            {"type": "bar", "name": "on the cheapest acceptable model", "x": names,
             "y": [_usd(e.cheapest_usd) for e in entries], "marker": {"color": COLORS["cheapest"]},
             "text": [label(e.cheapest or "no price") for e in entries], "textposition": "auto"}]
    return _figure(data, barmode="group", yaxis={"title": {"text": "USD"}},
                   xaxis={"automargin": True})


def gpu_waste(notebooks: list[dict[str, Any]], limit: int = 15) -> dict[str, Any]:
    """Per notebook, worst first, its GPU dollars split into the useful part and the three
    named wastes."""
    shown = list(reversed(notebooks[:limit]))
    names = [label(n["notebook"] or n["notebook_key"] or "(no notebook)") for n in shown]
    data = [{"type": "bar", "orientation": "h", "name": "busy (useful)", "y": names,
             "x": [_usd(n["gpu_usd"] - n["wasted_usd"]) for n in shown],
             "marker": {"color": COLORS["busy"]}}]
    data += [{"type": "bar", "orientation": "h", "name": WASTE_NAMES[w], "y": names,
              "x": [_usd(n[f"{w}_usd"]) for n in shown], "marker": {"color": COLORS[w]}}
             for w in WASTE_NAMES]
    return _figure(data, barmode="stack", height=max(220, 60 + 26 * len(shown)),
                   xaxis={"title": {"text": "GPU dollars"}}, yaxis={"automargin": True})


def pareto(cells: list[dict[str, Any]], whole: Decimal, names: list[str]) -> dict[str, Any]:
    """The most expensive cells as bars, with the share of all cell spend they add up to."""
    running, share = Decimal(0), []
    for cell in cells:
        running += cell["cost_usd"]
        share.append(float(running / whole * 100) if whole else 0.0)
    ranks = [str(n) for n in range(1, len(cells) + 1)]
    data = [{"type": "bar", "name": "cell cost", "x": ranks, "y": [_usd(c["cost_usd"]) for c in cells],
             "hovertext": [label(n) for n in names], "hoverinfo": "text+y",
             "marker": {"color": COLORS["gpu"]}},
            {"type": "scatter", "mode": "lines+markers", "name": "cumulative share", "x": ranks,
             "y": share, "yaxis": "y2", "line": {"color": COLORS["burn"]}}]
    return _figure(data, xaxis={"title": {"text": "cells, most expensive first"}, "type": "category"},
                   yaxis={"title": {"text": "USD"}},
                   yaxis2={"title": {"text": "share of all cell spend, %"}, "overlaying": "y",
                           "side": "right", "range": [0, 101], "showgrid": False,
                           "tickvals": [0, 25, 50, 75, 100]})


def budgets(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Each budget as a line at its amount over the time it applied, with the warnings and
    refusals at the spend they happened at."""
    lines: dict[tuple, list[dict[str, Any]]] = {}
    for event in events:
        if event["budget_usd"] is not None:
            lines.setdefault((event["session_id"], event["scope"], event["budget_usd"]), []).append(event)
    data: list[dict[str, Any]] = []
    for n, ((session, scope, amount), group) in enumerate(lines.items()):
        start = group[0]["ts"]
        end = max([e["ts"] for e in group] + [e["session_end"] for e in group if e["session_end"]])
        who = label(group[0]["notebook"] or group[0]["user"] or session)
        data.append({"type": "scatter", "mode": "lines", "x": [_t(start), _t(end)],
                     "y": [_usd(amount)] * 2, "name": "budget", "legendgroup": "budget",
                     "showlegend": n == 0, "line": {"color": "#555555", "dash": "dash"},
                     "hovertext": f"{scope} budget, {who}", "hoverinfo": "text+y"})
    for action in ("warning", "refused"):
        hits = [e for e in events if e["action"] == action and e["spent_usd"] is not None]
        if hits:
            data.append({"type": "scatter", "mode": "markers", "name": action,
                         "x": [_t(e["ts"]) for e in hits],
                         "y": [_usd(e["spent_usd"]) for e in hits],
                         "hovertext": [label(e["notebook"] or e["user"] or e["session_id"])
                                       for e in hits], "hoverinfo": "text+x+y",
                         "marker": {"color": COLORS[action], "size": 10,
                                    "symbol": "triangle-up" if action == "warning" else "x"}})
    return _figure(data, yaxis={"title": {"text": "USD spent / budget"}, "rangemode": "tozero"},
                   xaxis={"title": {"text": "UTC"}})


def to_json(figures: dict[str, dict[str, Any]]) -> str:
    """The figures as JSON safe inside ``<script type="application/json">``: no ``<``, ``>``
    or ``&`` that could end the element or start markup, no line separators JavaScript
    chokes on."""
    text = json.dumps(figures, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text
