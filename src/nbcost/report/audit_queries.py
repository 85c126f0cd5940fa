"""Every figure the audit shows, as SQL over the report engine's tables.

The engine (:func:`nbcost.report.engine.load_spend`) gives a DuckDB connection with ``windows``
(the export table, one row per window plus ``between_cells`` rows, with ``notebook_key``, the
path to show for it, ``notebook``, and the GPU wastes in dollars), ``window_models`` (a window's
LLM figures per model, from its ``llm_models``), ``budget_events`` and ``notebook_cells`` (every
code cell of the notebooks read). Only top-level rows (no ``parent_id``) are summed: a nested
``track()`` block is already inside its cell, and the top-level rows of a session add up to its
total — the same rows ``nbcost report`` sums. The LLM figures come from the windows' per-model
figures, not from the engine's ``llm_calls`` view: that view parses every log line again, which
costs more than the whole rest of the audit at a million cells. Money stays DECIMAL and comes back as
Python ``Decimal``; nothing here formats or rounds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["BY_WHO", "WASTES", "budget_events", "by_model", "by_who", "gpu_by_notebook",
           "headline", "model_token_buckets", "model_token_sums", "notebook_coverage", "prepare",
           "spend_over_time", "top_cells", "unpriced_windows"]

ZERO = Decimal(0)
TOP = "coalesce(parent_id, '') = ''"
CELLS = "kind <> 'between_cells'"
#: The three named GPU wastes (docs/gpu.md): seconds ``gpu_<w>_s``, dollars ``gpu_<w>_usd``.
WASTES = ("idle_between", "stall", "underfill")
BY_WHO = ("user", "team", "project")
_TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
           "reasoning_tokens")


MODELS = "audit_models"  # the top-level windows' per-model figures, parsed once


def prepare(con) -> None:
    """Parse the top-level windows' per-model LLM figures once into a table (the engine's
    ``window_models`` view parses each window's JSON on every query)."""
    figures = ", ".join(f"coalesce(model_{t}, 0) AS {t}" for t in ("calls", *_TOKENS, "errors",
                                                                    "estimated_calls"))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {MODELS} AS
        SELECT model, {figures}, model_cost_usd AS cost_usd, model_unpriced AS unpriced
        FROM window_models WHERE {TOP}""")


def _dicts(con, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _money(value: Decimal | None) -> Decimal:
    return ZERO if value is None else Decimal(value)


@dataclass(frozen=True)
class Headline:
    """The audit's first lines: what was spent, on what, by how many, over which period."""

    total_usd: Decimal
    gpu_usd: Decimal
    llm_usd: Decimal
    waste_usd: dict[str, Decimal]  # by named waste
    unpriced: bool
    sessions: int
    notebooks: int
    cells: int
    people: int
    first: dt.datetime | None
    last: dt.datetime | None
    gpu_held_s: float
    gpu_busy_s: float
    waste_s: dict[str, float]
    llm_calls: int

    @property
    def other_usd(self) -> Decimal:
        """Spend of meters other than GPU and LLM (a meter of the user's own)."""
        return self.total_usd - self.gpu_usd - self.llm_usd

    @property
    def wasted_usd(self) -> Decimal:
        return sum(self.waste_usd.values(), ZERO)


def headline(con) -> Headline:
    wastes = ", ".join(f"sum(gpu_{w}_usd) AS {w}_usd, sum(gpu_{w}_s) AS {w}_s" for w in WASTES)
    (row,) = _dicts(con, f"""
        SELECT sum(cost_usd) AS total, sum(gpu_cost_usd) AS gpu, sum(llm_cost_usd) AS llm,
               coalesce(bool_or(unpriced), false) AS unpriced,
               count(DISTINCT session_id) AS sessions, count(DISTINCT notebook_key) AS notebooks,
               count(*) FILTER (WHERE {CELLS}) AS cells, count(DISTINCT "user") AS people,
               min(start) AS first, max(coalesce("end", start)) AS last,
               coalesce(sum(gpu_held_s), 0) AS held, coalesce(sum(gpu_busy_s), 0) AS busy,
               coalesce(sum(llm_calls), 0) AS calls,
               {wastes}
        FROM windows WHERE {TOP}""")
    return Headline(
        total_usd=_money(row["total"]), gpu_usd=_money(row["gpu"]), llm_usd=_money(row["llm"]),
        waste_usd={w: _money(row[f"{w}_usd"]) for w in WASTES}, unpriced=bool(row["unpriced"]),
        sessions=row["sessions"], notebooks=row["notebooks"], cells=row["cells"],
        people=row["people"], first=row["first"], last=row["last"], gpu_held_s=row["held"],
        gpu_busy_s=row["busy"], waste_s={w: row[f"{w}_s"] or 0.0 for w in WASTES},
        llm_calls=row["calls"])


def spend_over_time(con, bucket: str) -> list[dict[str, Any]]:
    """GPU, LLM and other spend per ``bucket`` (``hour``, ``day`` or ``week``), by when each
    window started (a between-cells row by its session's start)."""
    return _dicts(con, f"""
        SELECT date_trunc('{bucket}', start AT TIME ZONE 'UTC') AS bucket,
               coalesce(sum(gpu_cost_usd), 0) AS gpu_usd,
               coalesce(sum(llm_cost_usd), 0) AS llm_usd, coalesce(sum(cost_usd), 0) AS total_usd
        FROM windows WHERE {TOP} AND start IS NOT NULL GROUP BY 1 ORDER BY 1""")


def by_who(con, column: str) -> list[dict[str, Any]]:
    """Spend per user, team or project, biggest first."""
    if column not in BY_WHO:
        raise ValueError(column)
    return _dicts(con, f"""
        SELECT "{column}" AS key, count(*) FILTER (WHERE {CELLS}) AS cells,
               count(DISTINCT session_id) AS sessions,
               coalesce(sum(gpu_cost_usd), 0) AS gpu_usd, coalesce(sum(llm_cost_usd), 0) AS llm_usd,
               coalesce(sum(cost_usd), 0) AS total_usd, coalesce(bool_or(unpriced), false) AS unpriced
        FROM windows WHERE {TOP} GROUP BY 1 ORDER BY total_usd DESC, key NULLS LAST""")


def by_model(con) -> list[dict[str, Any]]:
    """Calls, tokens by kind and cost per model, with the calls whose price was unknown and
    those whose tokens were estimated; LLM spend no model was recorded for is its own line
    (``model`` null), so the lines add up to the LLM total."""
    sums = ", ".join(f"sum({t}) AS {t}" for t in ("calls", *_TOKENS))
    return _dicts(con, f"""
        WITH models AS (
            SELECT model, {sums}, coalesce(sum(cost_usd), 0) AS cost_usd,
                   coalesce(sum(calls) FILTER (WHERE unpriced), 0) AS unpriced_calls,
                   coalesce(sum(input_tokens + output_tokens) FILTER (WHERE unpriced), 0)
                       AS unpriced_tokens,
                   sum(estimated_calls) AS estimated_calls, sum(errors) AS error_calls
            FROM {MODELS} GROUP BY model),
        rest AS (
            SELECT NULL AS model,
                   {", ".join(f"coalesce(sum(llm_{t}), 0) - (SELECT coalesce(sum({t}), 0) "
                              f"FROM models) AS {t}" for t in ("calls", *_TOKENS))},
                   coalesce(sum(llm_cost_usd), 0)
                       - (SELECT coalesce(sum(cost_usd), 0) FROM models) AS cost_usd,
                   0, 0, 0, 0
            FROM windows WHERE {TOP})
        SELECT * FROM models
        UNION ALL SELECT * FROM rest WHERE calls <> 0 OR cost_usd <> 0
        ORDER BY cost_usd DESC, model NULLS LAST""")


def model_token_sums(con) -> list[dict[str, Any]]:
    """Per model, its token counts summed (what a flat price needs), what its calls cost as
    recorded, and how many of them had no price."""
    return _dicts(con, f"""
        SELECT model, sum(calls) AS calls, sum(input_tokens) AS input_tokens,
               sum(cache_read_tokens) AS cache_read_tokens,
               sum(cache_write_tokens) AS cache_write_tokens,
               sum(output_tokens) AS output_tokens, coalesce(sum(cost_usd), 0) AS cost_usd,
               coalesce(sum(calls) FILTER (WHERE unpriced), 0) AS unpriced_calls
        FROM {MODELS} GROUP BY model ORDER BY model""")


def model_token_buckets(con, thresholds: list[int]) -> list[dict[str, Any]]:
    """Per model, its calls split by how many of ``thresholds`` their input exceeds (a tiered
    price's tier), with each bucket's calls and token sums. A cell's calls to one model are
    recorded together, so they go by their mean input: exact unless the calls of one cell
    fall on both sides of a tier."""
    mean = "input_tokens / greatest(calls, 1)"
    bucket = " + ".join(f"({mean} > {int(t)})::INT" for t in thresholds) or "0"
    return _dicts(con, f"""
        SELECT model, {bucket} AS bucket, sum(calls) AS calls,
               sum(input_tokens) AS input_tokens, sum(cache_read_tokens) AS cache_read_tokens,
               sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens
        FROM {MODELS} WHERE calls > 0 GROUP BY ALL ORDER BY ALL""")


def gpu_by_notebook(con) -> list[dict[str, Any]]:
    """GPU held, busy and the named wastes (seconds and dollars) per notebook, worst waste
    first. A notebook's idle time between cells is in its sessions' between-cells rows."""
    wastes = ", ".join(f"coalesce(sum(gpu_{w}_s), 0) AS {w}_s, "
                       f"coalesce(sum(gpu_{w}_usd), 0) AS {w}_usd" for w in WASTES)
    total = " + ".join(f"coalesce(sum(gpu_{w}_usd), 0)" for w in WASTES)
    return _dicts(con, f"""
        SELECT notebook_key, any_value(notebook) AS notebook,
               count(DISTINCT session_id) AS sessions,
               coalesce(sum(gpu_held_s), 0) AS held_s, coalesce(sum(gpu_busy_s), 0) AS busy_s,
               coalesce(sum(gpu_sm_s), 0) AS sm_s, coalesce(sum(gpu_cost_usd), 0) AS gpu_usd,
               {wastes}, {total} AS wasted_usd
        FROM windows WHERE {TOP} GROUP BY notebook_key HAVING sum(gpu_held_s) > 0
        ORDER BY wasted_usd DESC, held_s DESC, notebook_key""")


def top_cells(con, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The ``limit`` most expensive cells (and top-level blocks), and how many cells cost
    anything at all (the Pareto chart's whole)."""
    rows = _dicts(con, f"""
        SELECT notebook_key, notebook, session_id, cell_id, execution_count, label, tags,
               "user", start, wall_s, status, gpu_cost_usd, llm_cost_usd, cost_usd, unpriced
        FROM windows WHERE {TOP} AND {CELLS} AND cost_usd > 0
        ORDER BY cost_usd DESC, start, window_id LIMIT {int(limit)}""")
    (count,) = con.execute(
        f"SELECT count(*) FROM windows WHERE {TOP} AND {CELLS} AND cost_usd > 0").fetchone()
    return rows, count


def budget_events(con) -> list[dict[str, Any]]:
    """Every budget event, oldest first, with the notebook it was about and when its session's
    last window ended (where a budget's line stops)."""
    return _dicts(con, """
        WITH sessions AS (SELECT session_id, any_value(notebook_key) AS notebook_key,
                                 any_value(notebook) AS notebook,
                                 max(coalesce("end", start)) AS session_end
                          FROM windows GROUP BY session_id)
        SELECT b.ts, b.session_id, b.action, b.scope, b.budget_usd, b.spent_usd, b.threshold,
               b."user", coalesce(s.notebook, b.notebook_path) AS notebook, s.notebook_key,
               s.session_end
        FROM budget_events b LEFT JOIN sessions s USING (session_id)
        WHERE b.ts IS NOT NULL ORDER BY b.ts, b.session_id""")


def unpriced_windows(con) -> int:
    """Top-level rows (cells, blocks, time between cells) with usage that had no price."""
    (count,) = con.execute(f"SELECT count(*) FILTER (WHERE unpriced) FROM windows WHERE {TOP}"
                           ).fetchone()
    return count


def notebook_coverage(con) -> list[dict[str, Any]]:
    """Per saved notebook read: its code cells, how many ran (have an execution count or a
    record), how many carry a cost record, and the execution counts of those that ran without
    one. Notebooks with cells run without a record first."""
    return _dicts(con, """
        SELECT coalesce(notebook_key, notebook_path) AS notebook_key,
               any_value(notebook_path) AS notebook, count(*) AS code_cells,
               count(*) FILTER (WHERE execution_count IS NOT NULL OR has_record) AS run,
               count(*) FILTER (WHERE has_record) AS recorded,
               count(*) FILTER (WHERE execution_count IS NOT NULL AND NOT has_record) AS unrecorded,
               list(execution_count ORDER BY cell_index)
                   FILTER (WHERE execution_count IS NOT NULL AND NOT has_record) AS counts
        FROM notebook_cells GROUP BY 1 ORDER BY unrecorded DESC, notebook""")
