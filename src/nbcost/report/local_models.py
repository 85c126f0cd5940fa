"""Self-hosted models in the spend logs a report read: the audit's "Local models" section.

The engine's tables carry the GPU and LLM meters; the local meter's figures (docs/local-models.md)
are read here from the window ends that have them, found by DuckDB's text scan of the logs (only
those lines are parsed), and checked by the same rules as every reader (:mod:`nbcost.logcheck`).
Period and ``--user/--team/--project`` filters apply; the other filters do not.
"""

from __future__ import annotations

import datetime as dt
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

__all__ = ["local_models_table", "local_window_events"]

_LOCAL_ENDS = ("contains(line, '\"local\":') AND (contains(line, 'cell_end\"') "
               "OR contains(line, 'track_end\"'))")


def _moment(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def local_window_events(spend) -> list[dict[str, Any]]:
    """The window ends with ``meters.local`` in the report's spend logs, filtered as it is."""
    logs = [i.url for i in spend.inputs if i.kind == LOG]
    if not logs:
        return []
    lines = spend.con.execute(f"SELECT line FROM {_lines(logs)} WHERE {_LOCAL_ENDS}").fetchall()
    filters = spend.filters
    wanted = {"user": set(filters.users), "team": set(filters.teams),
              "project": set(filters.projects)}
    seen: set[str] = set()
    events = []
    for (line,) in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event_problem(event) is not None or event.get("window_id") in seen:
            continue
        start = _moment(event.get("started_at"))
        if start is None or (spend.since is not None and start < spend.since) or (
                spend.until is not None and start >= spend.until):
            continue
        if any(values and event.get(name) not in values for name, values in wanted.items()):
            continue
        seen.add(event["window_id"])  # a log copied twice counts once
        events.append(event)
    return events


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
    summary = local_summary(local_window_events(spend))
    if not summary.models:
        return None
    headers, rows = local_models_table(summary, settings, api_models)
    return {"headers": headers, "rows": rows, "busy": _percent(summary.busy_share)}
