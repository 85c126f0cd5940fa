"""Self-hosted models in the spend logs a report read: the audit's "Local models" section.

The engine's tables carry the GPU and LLM meters; the local meter's figures (docs/local-models.md)
are read here from the window ends that have them, found by DuckDB's text scan of the logs (only
those lines are parsed), and checked by the same rules as every reader (:mod:`nbcost.logcheck`).
The report's filters apply as they do to every view: a window end counts when the report's
``windows`` view kept its window (period, people, notebook, tags, models), and under a model
filter only those models' rows count.
"""

from __future__ import annotations

import json
from typing import Any

from ..display.format import format_count, format_per_mtok, format_usd
from ..logcheck import event_problem
from ..meters.selfhosted.compare import (
    DEFAULT_API_MODELS,
    TARGET_BUSY,
    LocalSummary,
    api_cost,
    cheapest_api,
    local_summary,
)
from ..meters.selfhosted.price import at_busy_share, break_even_busy_share
from .logs import _lines
from .sources import LOG

__all__ = ["api_call_events", "local_models_table", "local_window_events",
           "spend_local_summary"]

_LOCAL_ENDS = ("contains(line, '\"local\":') AND (contains(line, 'cell_end\"') "
               "OR contains(line, 'track_end\"'))")


def local_window_events(spend, filtered: bool = True) -> list[dict[str, Any]]:
    """The window ends with ``meters.local`` in the report's spend logs. ``filtered``: only the
    windows the report kept (its ``windows`` view: period, people, notebook, tags, models);
    else every one, whatever the filters."""
    logs = [i.url for i in spend.inputs if i.kind == LOG
            and (spend.local_logs is None or i.url in spend.local_logs)]  # (their digests say)
    if not logs:
        return []
    lines = spend.con.execute(f"SELECT line FROM {_lines(logs)} WHERE {_LOCAL_ENDS}").fetchall()
    seen: set[tuple[str, str]] = set()
    events = []
    for (line,) in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event_problem(event) is not None:
            continue
        key = (event.get("session_id"), event.get("window_id"))
        if key not in seen:  # a log copied twice counts once
            seen.add(key)
            events.append(event)
    if filtered and events:
        kept = set(spend.con.execute(
            "SELECT session_id, window_id FROM windows "
            "WHERE window_id IN (SELECT unnest(?::VARCHAR[]))",
            [[e["window_id"] for e in events]]).fetchall())
        events = [e for e in events if (e.get("session_id"), e["window_id"]) in kept]
    return events


def api_call_events(spend) -> list[dict[str, Any]]:
    """The report's API calls (its ``llm_calls`` view, filtered as the report is), shaped as
    the ``llm_call`` events :func:`~nbcost.meters.selfhosted.compare.local_summary` reads."""
    rows = spend.con.execute(
        "SELECT model, input_tokens, output_tokens, cost_usd FROM llm_calls "
        "WHERE provider IS DISTINCT FROM 'self-hosted' AND error IS NULL").fetchall()
    return [{"event": "llm_call", "key": model, "attributes": {},
             "quantities": {"input_tokens": inp or 0, "output_tokens": out or 0},
             "cost_usd": None if cost is None else str(cost)} for model, inp, out, cost in rows]


def spend_local_summary(spend, local_model: str | None = None) -> LocalSummary:
    """The self-hosted models and API calls of what the report kept. Under ``--model``, only
    those models count on either side, and ``local_model`` too (it prices the API calls)."""
    models = list(spend.filters.models)
    if models and local_model:
        models.append(local_model)
    local = local_window_events(spend)
    if not local:  # nothing to compare: the API calls (every llm_call line) are not read
        return local_summary([], models or None)
    return local_summary(local + api_call_events(spend), models or None)


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f} %"


def local_models_table(summary: LocalSummary, settings: Any,
                       api_models: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: each local model's tokens, measured price, and the cheapest API."""
    headers = ["model", "where", "generations", "input tokens", "output tokens", "GPU cost",
               "GPU busy", "$/Mtok in", "$/Mtok out", f"at {TARGET_BUSY * 100:.0f} % busy",
               "cheapest API", "its cost", "break-even busy"]
    targets = list(api_models or DEFAULT_API_MODELS)
    cheapest = cheapest_api(targets, settings)
    busy = summary.busy_share
    rows = []
    for model in sorted(summary.models.values(), key=lambda m: -m.output_tokens):
        price = model.price()
        api = even = None
        if cheapest is not None:
            api = api_cost(cheapest[0], model.input_tokens, model.output_tokens, settings)
            if price is not None and api is not None:
                even = break_even_busy_share(model.gpu_cost_usd, api, busy)
        rows.append([
            model.name, "shared server" if model.shared else "notebook",
            format_count(model.calls), format_count(model.input_tokens),
            format_count(model.output_tokens),
            format_usd(model.gpu_cost_usd) if model.gpu_cost_usd is not None else "not measured",
            _percent(busy),
            format_per_mtok(price.input_usd_per_mtok if price else None),
            format_per_mtok(price.output_usd_per_mtok if price else None),
            format_per_mtok(at_busy_share(price.output_usd_per_mtok, busy, TARGET_BUSY)
                            if price else None),
            f"{cheapest[0]} ({format_per_mtok(cheapest[1])} out)" if cheapest else "–",
            format_usd(api) if api is not None else "–",
            "–" if even is None else _percent(even) if even <= 1 else "never (over 100 %)",
        ])
    return headers, rows


def local_section(spend, settings: Any, api_models: list[str] | None = None
                  ) -> dict[str, Any] | None:
    """The audit's section data, or None when no window generated locally."""
    summary = spend_local_summary(spend)
    if not summary.models:
        return None
    headers, rows = local_models_table(summary, settings, api_models)
    return {"headers": headers, "rows": rows, "busy": _percent(summary.busy_share)}
