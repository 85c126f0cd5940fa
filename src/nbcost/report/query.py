"""Grouped spend: ``nbcost report``'s rows, computed in DuckDB over a :class:`Spend`.

Each top-level window is split into *parts* so that any grouping adds up: one part per LLM
model it called (from ``llm_models``), one for LLM spend whose model was not recorded, and one
for the rest (GPU time and other meters, its wall time, and the window itself as a cell). A
report groups the parts by the chosen keys; the dollars of the rows add up to the total, except
by ``tag`` (every ``key=value`` of a window), where a window with two tags is in two rows and
the notes say how much that counts twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Sequence

from ..errors import NbcostError

__all__ = ["DIMENSIONS", "FIGURES", "Report", "build", "parse_by"]

DIMENSIONS = ("user", "team", "project", "notebook", "cell", "label", "model", "provider", "gpu",
              "status", "day", "week", "month", "session", "tag")
TIME_DIMENSIONS = ("day", "week", "month")
NO_MODEL = "(no model: GPU and other)"
UNRECORDED = "(model not recorded)"
ZERO = Decimal(0)

#: Every figure of a row, in order: (name, SQL aggregate over parts, kind).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("cells", "count(*) FILTER (WHERE is_cell AND {cell_part})", "count"),
    ("sessions", "count(DISTINCT session_id)", "count"),
    ("cost_usd", "sum(cost)", "usd"),
    ("llm_cost_usd", "sum(llm_cost)", "usd"),
    ("gpu_cost_usd", "sum(gpu_cost)", "usd"),
    ("other_cost_usd", "sum(cost) - sum(llm_cost) - sum(gpu_cost)", "usd"),
    ("wall_s", "sum(wall_s)", "seconds"),
    ("gpu_held_s", "sum(gpu_held_s)", "seconds"),
    ("gpu_busy_s", "sum(gpu_busy_s)", "seconds"),
    ("gpu_idle_between_s", "sum(gpu_idle_between_s)", "seconds"),
    ("gpu_stall_s", "sum(gpu_stall_s)", "seconds"),
    ("gpu_underfill_s", "sum(gpu_underfill_s)", "seconds"),
    ("gpu_idle_between_usd", "sum(gpu_idle_between_usd)", "usd"),
    ("gpu_stall_usd", "sum(gpu_stall_usd)", "usd"),
    ("gpu_underfill_usd", "sum(gpu_underfill_usd)", "usd"),
    ("gpu_waste_usd", "sum(coalesce(gpu_idle_between_usd, 0) + coalesce(gpu_stall_usd, 0) "
                      "+ coalesce(gpu_underfill_usd, 0))", "usd"),
    ("llm_calls", "sum(llm_calls)", "count"),
    ("llm_input_tokens", "sum(llm_input_tokens)", "count"),
    ("llm_cache_read_tokens", "sum(llm_cache_read_tokens)", "count"),
    ("llm_cache_write_tokens", "sum(llm_cache_write_tokens)", "count"),
    ("llm_output_tokens", "sum(llm_output_tokens)", "count"),
    ("llm_reasoning_tokens", "sum(llm_reasoning_tokens)", "count"),
    ("cache_saved_usd", "sum(llm_cache_read_tokens * d.usd_per_token)", "usd"),
    ("unpriced_cells", "count(*) FILTER (WHERE unpriced AND {cell_part})", "count"),
    ("unpriced_share", "", "share"),
    ("estimated_calls", "sum(llm_estimated_calls)", "count"),
    ("estimated_share", "", "share"),
    ("llm_errors", "sum(llm_errors)", "count"),
    ("failed_cells", "count(*) FILTER (WHERE failed AND is_cell AND {cell_part})", "count"),
)
FIGURE_NAMES = tuple(name for name, _, _ in FIGURES)
KINDS = {name: kind for name, _, kind in FIGURES}
#: The figures a table shows unless ``--columns`` says otherwise.
DEFAULT_COLUMNS = ("cells", "cost_usd", "llm_cost_usd", "gpu_cost_usd", "gpu_held_s",
                   "gpu_busy_s", "gpu_waste_usd", "llm_input_tokens", "llm_output_tokens",
                   "cache_saved_usd", "unpriced_share", "estimated_share", "llm_errors")
PRESETS = {
    "default": DEFAULT_COLUMNS,
    "gpu": ("cells", "cost_usd", "gpu_cost_usd", "gpu_held_s", "gpu_busy_s",
            "gpu_idle_between_s", "gpu_idle_between_usd", "gpu_stall_s", "gpu_stall_usd",
            "gpu_underfill_s", "gpu_underfill_usd", "gpu_waste_usd"),
    "llm": ("cells", "cost_usd", "llm_cost_usd", "llm_calls", "llm_input_tokens",
            "llm_cache_read_tokens", "llm_cache_write_tokens", "llm_output_tokens",
            "llm_reasoning_tokens", "cache_saved_usd", "unpriced_share", "estimated_share",
            "llm_errors"),
    "all": FIGURE_NAMES,
}


def parse_by(text: str | Sequence[str]) -> list[str]:
    """``"user,project"`` → ``["user", "project"]``; ``tag:KEY`` groups by one tag's value."""
    keys = [k.strip() for k in (text.split(",") if isinstance(text, str) else text) if k.strip()]
    if not keys:
        raise NbcostError("--by needs at least one key")
    for key in keys:
        if key.startswith("tag:"):
            if not key[4:]:
                raise NbcostError("--by tag:KEY needs the tag's key, e.g. --by tag:experiment")
        elif key not in DIMENSIONS:
            raise NbcostError(f"--by takes {', '.join(DIMENSIONS)} or tag:KEY (comma-separated "
                              f"for several); got {key!r}")
    if len(set(keys)) != len(keys):
        raise NbcostError(f"--by names a key twice: {','.join(keys)}")
    return keys


def parse_columns(text: str | None) -> list[str]:
    if not text:
        return list(DEFAULT_COLUMNS)
    columns: list[str] = []
    for name in (n.strip() for n in text.split(",") if n.strip()):
        if name in PRESETS:
            columns += [c for c in PRESETS[name] if c not in columns]
        elif name in FIGURE_NAMES:
            columns.append(name)
        else:
            raise NbcostError(f"--columns takes {', '.join(PRESETS)} or figure names "
                              f"({', '.join(FIGURE_NAMES)}); got {name!r}")
    return columns


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _dimension(key: str) -> str:
    """SQL for one grouping key over a part ``p``."""
    if key.startswith("tag:"):
        name = key[4:]
        path = _sql_string('$."' + name.replace('"', '\\"') + '"')
        return f"coalesce(json_extract_string(p.tags, {path}), {_sql_string(f'(no {name} tag)')})"
    cell = ("coalesce(p.notebook, '(no notebook)') || ' · ' || CASE WHEN p.kind = 'between_cells' "
            "THEN '(between cells)' ELSE coalesce(p.label, 'cell ' || p.cell_id, "
            "'[' || p.execution_count || ']', '(' || p.kind || ')') END")
    return {
        "user": "coalesce(p.\"user\", '(no user)')",
        "team": "coalesce(p.team, '(no team)')",
        "project": "coalesce(p.project, '(no project)')",
        "notebook": "coalesce(p.notebook, '(no notebook)')",
        "cell": cell,
        "label": "coalesce(p.label, '(no label)')",
        "model": "p.model",
        "provider": f"CASE WHEN p.model IN ({_sql_string(NO_MODEL)}, {_sql_string(UNRECORDED)}) "
                    "THEN p.model ELSE coalesce(pr.provider, '(unknown provider)') END",
        "gpu": "coalesce(p.gpu_devices, CASE WHEN p.gpu_held_s > 0 THEN '(GPU not named)' "
               "ELSE '(no GPU)' END)",
        "status": "coalesce(p.status, '(unknown)')",
        "day": "coalesce(strftime(p.start, '%Y-%m-%d'), '(no date)')",
        "week": "coalesce(strftime(p.start, '%G-W%V'), '(no date)')",
        "month": "coalesce(strftime(p.start, '%Y-%m'), '(no date)')",
        "session": "p.session_id",
        "tag": "p.tag",
    }[key]


_MODEL_SPEC = ('"MAP(VARCHAR, STRUCT(calls BIGINT, input_tokens BIGINT, cache_read_tokens BIGINT, '
               'cache_write_tokens BIGINT, output_tokens BIGINT, reasoning_tokens BIGINT, '
               'errors BIGINT, estimated_calls BIGINT, cost_usd JSON, unpriced BOOLEAN))"')
_LLM = ("calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
        "reasoning_tokens", "errors", "estimated_calls")
_GPU = ("gpu_held_s", "gpu_busy_s", "gpu_idle_between_s", "gpu_stall_s", "gpu_underfill_s",
        "gpu_idle_between_usd", "gpu_stall_usd", "gpu_underfill_usd")
_KEEP = ("session_id", "window_id", "kind", "notebook", "notebook_key", "cell_id",
         "execution_count", "label", "tags", "user", "team", "project", "start", "status",
         "gpu_devices")


def _parts(models: Sequence[str]) -> str:
    """SQL: every top-level window as its parts (see the module doc)."""
    keep = ", ".join(f'w."{c}"' for c in _KEEP)
    base = (f"{keep}, w.kind <> 'between_cells' AS is_cell, "
            "coalesce(w.status IN ('error', 'interrupted'), false) AS failed")
    model_sums = {k: f"coalesce(list_sum(list_transform(map_values(w.mm), lambda v: v.{k})), 0)"
                  for k in _LLM}
    model_cost = ("coalesce(list_sum(list_transform(map_values(w.mm), "
                  "lambda v: coalesce(money(v.cost_usd), 0))), 0)")
    model_unpriced = ("coalesce(list_bool_or(list_transform(map_values(w.mm), "
                      "lambda v: coalesce(v.unpriced, false) OR money(v.cost_usd) IS NULL)), false)")
    null_gpu = ", ".join(f"NULL AS {g}" for g in _GPU)
    by_model = (
        f"SELECT {base}, 'model' AS part, m.key AS model, coalesce(money(m.value.cost_usd), 0) AS cost, "
        "coalesce(money(m.value.cost_usd), 0) AS llm_cost, 0 AS gpu_cost, NULL AS wall_s, "
        f"{null_gpu}, "
        + ", ".join(f"m.value.{k} AS llm_{k}" for k in _LLM)
        + ", coalesce(m.value.unpriced, false) OR money(m.value.cost_usd) IS NULL AS unpriced "
        "FROM (SELECT *, unnest(map_entries(w.mm)) AS m FROM windowed w) AS w")
    unrecorded = (
        f"SELECT {base}, 'unrecorded' AS part, {_sql_string(UNRECORDED)} AS model, "
        f"coalesce(w.llm_cost_usd, 0) - {model_cost} AS cost, "
        f"coalesce(w.llm_cost_usd, 0) - {model_cost} AS llm_cost, 0 AS gpu_cost, NULL AS wall_s, "
        f"{null_gpu}, "
        + ", ".join(f"coalesce(w.llm_{k}, 0) - {model_sums[k]} AS llm_{k}" for k in _LLM)
        + f", w.unpriced AND NOT {model_unpriced} AS unpriced FROM windowed w "
        f"WHERE coalesce(w.llm_cost_usd, 0) <> {model_cost} OR coalesce(w.llm_calls, 0) <> "
        f"{model_sums['calls']}")
    rest = (
        f"SELECT {base}, 'rest' AS part, {_sql_string(NO_MODEL)} AS model, "
        "w.cost_usd - coalesce(w.llm_cost_usd, 0) AS cost, 0 AS llm_cost, "
        "coalesce(w.gpu_cost_usd, 0) AS gpu_cost, w.wall_s, "
        + ", ".join(f"w.{g}" for g in _GPU) + ", "
        + ", ".join(f"NULL AS llm_{k}" for k in _LLM)
        + f", w.unpriced AND NOT {model_unpriced} AND NOT (w.llm_cost_usd IS NOT NULL AND "
        f"coalesce(w.llm_cost_usd, 0) <> {model_cost}) AS unpriced FROM windowed w")
    where_models = ""
    if models:
        listed = ", ".join(_sql_string(m) for m in models)
        where_models = f" WHERE part = 'model' AND model IN ({listed})"
    return (f"WITH windowed AS (SELECT w.*, CASE WHEN json_valid(w.llm_models) THEN "
            f"json_transform(w.llm_models, '{_MODEL_SPEC}') END AS mm FROM windows w "
            f"WHERE w.parent_id IS NULL) "
            f"SELECT * FROM ({by_model} UNION ALL BY NAME {unrecorded} UNION ALL BY NAME {rest})"
            f"{where_models}")


def _providers(spend, models: list[str]) -> None:
    """``_providers``: each model's provider, as genai-prices knows it."""
    import pyarrow as pa

    from ..pricing.llm import shared_price_book
    from .stage import insert_arrow

    book = shared_price_book()
    rows = []
    for model in models:
        try:
            found = book.lookup(model, None, None)
        except Exception:  # noqa: BLE001 - a model genai-prices cannot look up has no provider
            found = None
        rows.append(found[0].id if found else None)
    insert_arrow(spend.con, "_providers", pa.table({"model": models, "provider": rows},
                 schema=pa.schema([("model", pa.string()), ("provider", pa.string())])), create=True)


def _discounts(spend, models: list[str], settings: Any) -> None:
    """``_discount``: per model, what a cache-read token saves against an input token."""
    import pyarrow as pa

    from ..pricing.llm import shared_price_book
    from .stage import insert_arrow

    book = shared_price_book()
    million = 1_000_000
    saved = []
    for model in models:
        try:
            full = book.price({"input_tokens": million}, [model], None, None, settings).cost_usd
            cached = book.price({"input_tokens": million, "cache_read_tokens": million}, [model],
                                None, None, settings).cost_usd
        except Exception:  # noqa: BLE001 - unpriced: no saving known
            full = cached = None
        saved.append(None if full is None or cached is None
                     else ((full - cached) / million).quantize(Decimal("1e-18")))
    insert_arrow(spend.con, "_discount", pa.table(
        {"model": models, "usd_per_token": saved},
        schema=pa.schema([("model", pa.string()), ("usd_per_token", pa.decimal128(38, 18))])),
        create=True)


@dataclass
class Report:
    """A grouped report: ``rows`` (``keys`` by grouping key, then :data:`FIGURES`), the
    ``total`` over everything, ``notes`` that say how the rows relate to the total."""

    by: list[str]
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    skipped: str | None = None

    @property
    def sessions(self) -> int:
        return self.total["sessions"]


def _shares(row: dict[str, Any]) -> None:
    cells, calls = row.get("cells") or 0, row.get("llm_calls") or 0
    row["unpriced_share"] = (Decimal(row["unpriced_cells"] or 0) / cells) if cells else None
    row["estimated_share"] = (Decimal(row["estimated_calls"] or 0) / calls) if calls else None


def _select(cell_part: str) -> str:
    return ", ".join(f"{sql.format(cell_part=cell_part)} AS {name}"
                     for name, sql, kind in FIGURES if sql)


def build(spend, by: Sequence[str] | str = "notebook", *, settings: Any = None) -> Report:
    """Group ``spend`` by ``by`` (:data:`DIMENSIONS` or ``tag:KEY``)."""
    keys = parse_by(by)
    con = spend.con
    models = [m for (m,) in con.execute("SELECT DISTINCT model FROM window_models "
                                        "WHERE parent_id IS NULL").fetchall()]
    if settings is None:
        from ..config import load_settings, profile_config

        settings = load_settings(profile_config())
    _discounts(spend, models, settings)
    _providers(spend, models)
    split = any(k in ("model", "provider") for k in keys)
    cell_part = "true" if split else "part = 'rest'"
    parts = _parts(spend.filters.models)
    source = "parts p"
    if "tag" in keys:
        source = ("(SELECT *, unnest(CASE WHEN tags IS NULL OR tags IN ('{}', 'null') "
                  "THEN ['(untagged)'] ELSE list_transform(json_keys(tags), lambda k: k || '=' || "
                  "coalesce(json_extract_string(tags, '$.\"' || k || '\"'), 'null')) END) AS tag "
                  "FROM parts) p")
    dims = [_dimension(k) for k in keys]
    group = ", ".join(f"{d} AS k{i}" for i, d in enumerate(dims))
    joins = (" LEFT JOIN _discount d ON d.model = p.model"
             " LEFT JOIN _providers pr ON pr.model = p.model")
    cursor = con.execute(f"WITH parts AS ({parts}) SELECT {group}, {_select(cell_part)} "
                         f"FROM {source}{joins} GROUP BY ALL")
    names = [d[0] for d in cursor.description]
    rows = []
    for values in cursor.fetchall():
        record = dict(zip(names, values))
        row = {"keys": {k: record.pop(f"k{i}") for i, k in enumerate(keys)}, **record}
        _shares(row)
        rows.append(row)
    # The total counts each window once: by its "rest" part (with --model, its model parts).
    total_part = "true" if spend.filters.models else "part = 'rest'"
    total_cursor = con.execute(f"WITH parts AS ({parts}) SELECT {_select(total_part)} "
                               f"FROM parts p LEFT JOIN _discount d ON d.model = p.model")
    total = dict(zip([d[0] for d in total_cursor.description], total_cursor.fetchone()))
    _shares(total)
    if keys[0] in TIME_DIMENSIONS:
        rows.sort(key=lambda r: tuple(r["keys"].values()))
    else:
        rows.sort(key=lambda r: (-(r["cost_usd"] or ZERO), tuple(map(str, r["keys"].values()))))
    report = Report(keys, rows, total, since=spend.since, until=spend.until,
                    skipped=spend.skipped.summary())
    report.notes = _notes(con, report, keys, spend.filters.models, parts)
    return report


def _notes(con, report: Report, keys: list[str], models: Sequence[str], parts: str) -> list[str]:
    from ..display.format import format_usd

    notes = []
    for key in keys:
        if key.startswith("tag:"):
            notes.append(f"Spend without a {key[4:]!r} tag (and the time between cells) is the "
                         f"\"(no {key[4:]} tag)\" row.")
    if "tag" in keys:
        notes.append("Spend without any tag (and the time between cells) is the \"(untagged)\" row.")
        many, amount = con.execute(
            f"WITH parts AS ({parts}) SELECT count(*) FILTER (WHERE part = 'rest'), "
            f"sum(cost * (len(json_keys(tags)) - 1)) FROM parts "
            f"WHERE tags IS NOT NULL AND tags NOT IN ('{{}}', 'null') AND len(json_keys(tags)) > 1"
        ).fetchone()
        if many:
            notes.append(
                f"The rows add up to more than the total: {many} window"
                f"{'s carry' if many != 1 else ' carries'} more than one tag and "
                f"count{'s' * (many == 1)} in the row of each ({format_usd(amount or ZERO)} "
                f"counted more than once); the total counts every window once.")
    if any(k in ("model", "provider") for k in keys) and not models:
        notes.append(f"GPU time and other non-LLM spend is no model's: it is the \"{NO_MODEL}\" "
                     f"row; LLM spend whose model was not recorded is \"{UNRECORDED}\". A cell "
                     f"that called several models counts as a cell in the row of each.")
    if models:
        notes.append(f"Only LLM spend on {', '.join(models)} is counted: GPU time and other "
                     f"models are left out.")
    if "tag" not in keys:
        rows_sum = sum((r["cost_usd"] or ZERO for r in report.rows), ZERO)
        if rows_sum != (report.total["cost_usd"] or ZERO):
            notes.append(f"The rows add up to {format_usd(rows_sum)}, the total is "
                         f"{format_usd(report.total['cost_usd'] or ZERO)}.")
    return notes
