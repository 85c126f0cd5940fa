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

__all__ = ["DIMENSIONS", "FIGURES", "Figures", "Report", "build", "parse_by"]

DIMENSIONS = ("user", "team", "project", "notebook", "cell", "label", "model", "provider", "gpu",
              "status", "day", "week", "month", "session", "tag")
TIME_DIMENSIONS = ("day", "week", "month")
NO_MODEL = "(no model: GPU and other)"
UNRECORDED = "(model not recorded)"
ZERO = Decimal(0)

#: Every figure of a row, in order: (name, SQL aggregate over parts, kind).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("cells", "count(*) FILTER (WHERE is_cell AND {cell_part})", "count"),
    ("sessions", "count(DISTINCT session_id)", "count"),  # dropped from split rows: see build
    ("cost_usd", "coalesce(sum(cost), 0)", "usd"),
    ("llm_cost_usd", "coalesce(sum(llm_cost), 0)", "usd"),
    ("gpu_cost_usd", "coalesce(sum(gpu_cost), 0)", "usd"),
    ("other_cost_usd", "coalesce(sum(cost) - sum(llm_cost) - sum(gpu_cost), 0)", "usd"),
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
    ("cache_saved_usd", "sum(cache_saved)", "usd"),
    ("unpriced_cells", "count(*) FILTER (WHERE {unpriced} AND is_cell AND {cell_part})", "count"),
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
                    "THEN p.model ELSE coalesce(pr.provider, '(unknown provider)') END",  # see build
        "gpu": "coalesce(p.gpu_devices, CASE WHEN p.gpu_held_s > 0 THEN '(GPU not named)' "
               "ELSE '(no GPU)' END)",
        "status": "coalesce(p.status, '(unknown)')",
        "day": "coalesce(strftime(p.start, '%Y-%m-%d'), '(no date)')",
        "week": "coalesce(strftime(p.start, '%G-W%V'), '(no date)')",
        "month": "coalesce(strftime(p.start, '%Y-%m'), '(no date)')",
        "session": "p.session_id",
        "tag": "p.tag",
    }[key]


_LLM = ("calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
        "reasoning_tokens", "errors", "estimated_calls")
_GPU = ("gpu_held_s", "gpu_busy_s", "gpu_idle_between_s", "gpu_stall_s", "gpu_underfill_s",
        "gpu_idle_between_usd", "gpu_stall_usd", "gpu_underfill_usd")
_KEEP = ("session_id", "window_id", "kind", "notebook", "notebook_key", "cell_id",
         "execution_count", "label", "tags", "user", "team", "project", "start", "status",
         "gpu_devices")


def _case(column: str, mapping: dict[str, Any], cast: str) -> str:
    """SQL: ``mapping[column]`` as a CASE (a handful of models: cheaper than a join)."""
    arms = " ".join(f"WHEN {_sql_string(k)} THEN CAST('{v}' AS {cast})"
                    for k, v in mapping.items() if v is not None)
    return f"CASE {column} {arms} END" if arms else f"CAST(NULL AS {cast})"


def _branches(split: bool, only: Sequence[str], discounts: dict[str, Any],
              unrecorded_spend: bool = True) -> dict[str, str]:
    """SQL: every top-level window as one row (``split`` false: branch "rest") or as its parts
    in three branches (see the module doc), each in the columns :data:`FIGURES` sums.
    ``w_unpriced`` is the window's flag, ``p_unpriced`` the part's own (a model without a
    price, say). Each branch is grouped on its own: one wide union of them costs twice as much."""
    keep = ", ".join(f'w."{c}"' for c in _KEEP)
    base = (f"{keep}, w.kind <> 'between_cells' AS is_cell, w.unpriced AS w_unpriced, "
            "coalesce(w.status IN ('error', 'interrupted'), false) AS failed")
    listed = "coalesce(w.llm_model_list, [])"
    discount = _case("m.model", discounts, "DECIMAL(38,18)")
    if not split:
        saved = (f"list_sum(list_transform({listed}, lambda m: m.cache_read_tokens * "
                 f"coalesce({discount}, 0)))")
        return {"rest": f"SELECT {base}, 'rest' AS part, NULL AS model, w.cost_usd AS cost, "
                "coalesce(w.llm_cost_usd, 0) AS llm_cost, coalesce(w.gpu_cost_usd, 0) AS gpu_cost, "
                "w.wall_s, " + ", ".join(f"w.{g}" for g in _GPU) + ", "
                + ", ".join(f"w.llm_{k}" for k in _LLM)
                + f", w.unpriced AS p_unpriced, {saved} AS cache_saved "
                "FROM windows w WHERE w.parent_id IS NULL"}
    sums = {k: f"coalesce(list_sum(list_transform({listed}, lambda v: v.{k})), 0)" for k in _LLM}
    cost = f"coalesce(list_sum(list_transform({listed}, lambda v: coalesce(v.cost_usd, 0))), 0)"
    unpriced = f"coalesce(list_bool_or(list_transform({listed}, lambda v: v.unpriced)), false)"
    rest_llm = f"coalesce(w.llm_cost_usd, 0) - {cost}"
    no_gpu = ", ".join(f"NULL AS {g}" for g in _GPU)
    # Three simple scans (a struct per part built in a lambda costs twice as much).
    models = (f"SELECT {base}, 'model' AS part, w.m.model AS model, coalesce(w.m.cost_usd, 0) AS cost, "
              "coalesce(w.m.cost_usd, 0) AS llm_cost, 0 AS gpu_cost, NULL AS wall_s, "
              f"{no_gpu}, " + ", ".join(f"w.m.{k} AS llm_{k}" for k in _LLM)
              + ", w.m.unpriced AS p_unpriced, w.m.cache_read_tokens * "
              + _case("w.m.model", discounts, "DECIMAL(38,18)") + " AS cache_saved "
              "FROM (SELECT *, unnest(llm_model_list) AS m FROM windows "
              "WHERE parent_id IS NULL) AS w")
    unrecorded = (f"SELECT {base}, 'unrecorded' AS part, {_sql_string(UNRECORDED)} AS model, "
                  f"{rest_llm} AS cost, {rest_llm} AS llm_cost, 0 AS gpu_cost, NULL AS wall_s, "
                  f"{no_gpu}, " + ", ".join(f"coalesce(w.llm_{k}, 0) - {sums[k]} AS llm_{k}"
                                            for k in _LLM)
                  + f", CASE WHEN w.unpriced THEN NOT {unpriced} ELSE false END AS p_unpriced, "
                  "NULL AS cache_saved "
                  f"FROM windows w WHERE w.parent_id IS NULL AND ({rest_llm} <> 0 "
                  f"OR coalesce(w.llm_calls, 0) <> {sums['calls']})")
    rest = (f"SELECT {base}, 'rest' AS part, {_sql_string(NO_MODEL)} AS model, "
            "w.cost_usd - coalesce(w.llm_cost_usd, 0) AS cost, 0 AS llm_cost, "
            "coalesce(w.gpu_cost_usd, 0) AS gpu_cost, w.wall_s, "
            + ", ".join(f"w.{g}" for g in _GPU) + ", " + ", ".join(f"NULL AS llm_{k}" for k in _LLM)
            + f", CASE WHEN w.unpriced THEN NOT {unpriced} AND {rest_llm} = 0 ELSE false END "
            "AS p_unpriced, "
            "NULL AS cache_saved FROM windows w WHERE w.parent_id IS NULL")
    if only:
        listed_only = ", ".join(map(_sql_string, only))
        return {"model": f"SELECT * FROM ({models}) WHERE model IN ({listed_only})"}
    if not unrecorded_spend:  # no window has LLM spend without its model: skip that scan
        return {"model": models, "rest": rest}
    return {"model": models, "unrecorded": unrecorded, "rest": rest}


def _providers(models: list[str]) -> dict[str, str | None]:
    """Each model's provider, as genai-prices knows it."""
    from ..pricing.llm import shared_price_book

    book = shared_price_book()
    out: dict[str, str | None] = {}
    for model in models:
        try:
            found = book.lookup(model, None, None)
        except Exception:  # noqa: BLE001 - a model genai-prices cannot look up has no provider
            found = None
        out[model] = found[0].id if found else None
    return out


def _self_hosted(con) -> dict[str, str]:
    """Models whose calls ran on the user's own GPUs (``provider: "self-hosted"``), whatever
    genai-prices knows of an API model of that name."""
    try:
        rows = con.execute("SELECT DISTINCT model FROM llm_calls "
                           "WHERE provider = 'self-hosted' AND model IS NOT NULL").fetchall()
    except Exception:  # noqa: BLE001 - inputs without LLM calls (exports, notebooks)
        return {}
    return {model: "self-hosted" for (model,) in rows}


def _discounts(models: list[str], settings: Any) -> dict[str, Decimal | None]:
    """Per model, what a cache-read token saves against an input token (None: unpriced)."""
    from ..pricing.llm import shared_price_book

    book = shared_price_book()
    million = 1_000_000
    out: dict[str, Decimal | None] = {}
    for model in models:
        try:
            full = book.price({"input_tokens": million}, [model], None, None, settings).cost_usd
            cached = book.price({"input_tokens": million, "cache_read_tokens": million}, [model],
                                None, None, settings).cost_usd
        except Exception:  # noqa: BLE001 - unpriced: no saving known
            full = cached = None
        out[model] = (None if full is None or cached is None
                      else ((full - cached) / million).quantize(Decimal("1e-18")))
    return out


class Figures(dict):
    """One row's figures: by key (``row["cost_usd"]``) or as attributes (``row.cost_usd``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Report:
    """A grouped report: ``rows`` (``keys`` by grouping key, then :data:`FIGURES`), the
    ``total`` over everything, ``notes`` that say how the rows relate to the total."""

    by: list[str]
    rows: list[Figures]
    total: Figures
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


_ONCE = {"cells": "count(*) FILTER (WHERE is_cell AND part = 'rest')",
         "unpriced_cells": "count(*) FILTER (WHERE w_unpriced AND is_cell AND part = 'rest')",
         "failed_cells": "count(*) FILTER (WHERE failed AND is_cell AND part = 'rest')"}


def _select(split: bool) -> str:
    """The figures over parts: split by model, each part is a row's own (a window counts in
    the row of each model); else a window is counted by its one "rest" part. The ``*_once``
    figures count each window once, for the total."""
    cell_part, unpriced = ("true", "p_unpriced") if split else ("part = 'rest'", "w_unpriced")
    return ", ".join([f"{sql.format(cell_part=cell_part, unpriced=unpriced)} AS {name}"
                      for name, sql, kind in FIGURES if sql]
                     + [f"{sql} AS {name}_once" for name, sql in _ONCE.items()])


def _figures(record: dict[str, Any], once: bool) -> Figures:
    for name in _ONCE:
        value = record.pop(f"{name}_once")
        if once:
            record[name] = value
    out = Figures(record)
    _shares(out)
    return out


def _add(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a + b


def build(spend, by: Sequence[str] | str = "notebook", *, settings: Any = None) -> Report:
    """Group ``spend`` by ``by`` (:data:`DIMENSIONS` or ``tag:KEY``)."""
    keys = parse_by(by)
    con = spend.con
    if settings is None:
        from ..config import load_settings, profile_config

        settings = load_settings(profile_config())
    discounts = _discounts(list(spend.models), settings)
    only = list(spend.filters.models)
    split = any(k in ("model", "provider") for k in keys) or bool(only)
    dims = [_dimension(k) for k in keys]
    if "provider" in keys:
        providers = {**_providers(list(spend.models)), **_self_hosted(con)}
        dims[keys.index("provider")] = dims[keys.index("provider")].replace(
            "pr.provider", _case("p.model", providers, "VARCHAR"))
    group = ", ".join(f"{d} AS k{i}" for i, d in enumerate(dims))
    names_k = ", ".join(f"k{i}" for i in range(len(dims)))
    tags = "tag" in keys
    source = "parts p"
    if tags:
        source = ("(SELECT *, unnest(CASE WHEN tags IS NULL OR tags IN ('{}', 'null') "
                  "THEN ['(untagged)'] ELSE list_transform(json_keys(tags), lambda k: k || '=' || "
                  "coalesce(json_extract_string(tags, '$.\"' || k || '\"'), 'null')) END) AS tag "
                  "FROM parts) p")
    # The total is a grouping set of each branch's own scan, except by tag (whose rows count
    # a window once per tag): its total is a query of its own.
    sets = names_k if tags else f"GROUPING SETS (({names_k}), ())"
    merged: dict[tuple, dict[str, Any]] = {}
    totals: dict[str, dict[str, Any]] = {}
    branches = _branches(split, only, discounts, spend.unrecorded_spend)
    for name, relation in branches.items():
        cursor = con.execute(f"WITH parts AS ({relation}) SELECT {group}, GROUPING(k0) AS is_total, "
                             f"{_select(split)} FROM {source} GROUP BY {sets}")
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            record = dict(zip(names, values))
            row_keys = tuple(record.pop(f"k{i}") for i in range(len(keys)))
            if record.pop("is_total"):
                totals[name] = record
                continue
            mine = merged.setdefault(row_keys, {})
            for figure, value in record.items():
                mine[figure] = _add(mine.get(figure), value)
    rows = [Figures(keys=dict(zip(keys, k)), **_figures(dict(v), once=False))
            for k, v in merged.items()]
    if tags:
        whole = _branches(False, (), discounts)["rest"] if not only else branches["model"]
        cursor = con.execute(f"WITH parts AS ({whole}) SELECT {_select(bool(only))} FROM parts p")
        total = _figures(dict(zip([d[0] for d in cursor.description], cursor.fetchall()[0])),
                         once=not only)
    else:
        summed: dict[str, Any] = {}
        for record in totals.values():
            for figure, value in record.items():
                summed[figure] = _add(summed.get(figure), value)
        if "rest" in totals:  # every window has one rest part: count windows and sessions there
            for figure in (*(f"{n}_once" for n in _ONCE), "sessions"):
                summed[figure] = totals["rest"][figure]
        total = _figures(summed, once=not only) if summed else _empty_total(con, discounts)
    if keys[0] in TIME_DIMENSIONS:
        rows.sort(key=lambda r: tuple(r["keys"].values()))
    else:
        rows.sort(key=lambda r: (-(r["cost_usd"] or ZERO), tuple(map(str, r["keys"].values()))))
    report = Report(keys, rows, total, since=spend.since, until=spend.until,
                    skipped=spend.skipped.summary())
    report.notes = _notes(con, report, keys, only, _branches(False, (), discounts)["rest"])
    return report


def _empty_total(con, discounts) -> Figures:
    relation = _branches(False, (), discounts)["rest"]
    cursor = con.execute(f"WITH parts AS ({relation}) SELECT {_select(False)} FROM parts p")
    return _figures(dict(zip([d[0] for d in cursor.description], cursor.fetchall()[0])), once=True)


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
        ).fetchall()[0]
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
