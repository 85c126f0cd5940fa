"""The spend query engine: spend logs, exports and notebooks in one embedded DuckDB.

>>> from nbcost.report import load_spend
>>> spend = load_spend(["team/spend/", "s3://bucket/exports/*.parquet", "analysis.ipynb"],
...                    since="2026-11-01")
>>> spend.sql("SELECT user, sum(cost_usd) FROM windows GROUP BY ALL").fetchall()
>>> spend.skipped.summary()   # "3 of 2,167 lines skipped: logs/a.jsonl:12: not JSON; ..."

:func:`load_spend` reads every input once and returns a :class:`Spend`, whose DuckDB
connection (``spend.con``; ``spend.sql(...)`` is a shortcut) holds:

``windows`` (view over the logs' digests and the exports and notebooks read)
    One row per window (each cell execution and ``track()`` block) and one ``between_cells``
    row per session: the export table's columns (:mod:`nbcost.schema`, docs/schema.md), money
    as ``DECIMAL(38,18)`` and times as UTC ``TIMESTAMPTZ``, plus ``gpu_idle_between_usd``,
    ``gpu_stall_usd``, ``gpu_underfill_usd`` (the named GPU wastes in dollars: from the record
    where it has them, else the window's GPU dollars per held second × the waste seconds),
    ``gpu_devices`` (the GPUs' names, where logged), ``notebook_key`` (one key per notebook,
    see :mod:`nbcost.report.identity`), ``notebook`` (the path to show for that key: its
    latest), ``source`` (``log``, ``export`` or ``notebook``), ``source_file`` and
    ``llm_model_list`` (``llm_models`` parsed). A window seen in several inputs (a log and its
    export, a notebook and its log) is one row: the same session and kind starting at the same microsecond is one window,
    and the log's row wins over an export's, an export's over a notebook's. Rows with an empty
    ``parent_id`` add up to the total; nested ``track()`` rows are already inside their cell's.
``window_models`` (view)
    ``windows`` with one row per window and model it called (``llm_models``, parsed once
    into ``windows.llm_model_list``):
    every ``windows`` column, then ``model``, ``model_calls``, ``model_input_tokens``,
    ``model_cache_read_tokens``, ``model_cache_write_tokens``, ``model_output_tokens``,
    ``model_reasoning_tokens``, ``model_errors``, ``model_estimated_calls``,
    ``model_cost_usd`` (DECIMAL; null where unpriced), ``model_unpriced``.
``llm_calls`` (view over the logs, read again on each query: copy it into a table to query
it often)
    One row per ``llm_call`` event: ``ts``, ``session_id``, ``window_id`` (the innermost open
    window), ``window_ids``, ``cell_id``, ``execution_count``, ``user``, ``team``,
    ``project``, ``notebook_path``, ``notebook_key``, ``model``, ``provider``,
    ``request_model``, ``response_model``, ``calls``, ``input_tokens``,
    ``cache_read_tokens``, ``cache_write_tokens``, ``output_tokens``, ``reasoning_tokens``,
    ``cost_usd`` (DECIMAL, null where unpriced), ``unpriced``, ``estimated``, ``error``
    (``error_type`` or null), ``usage_source``, ``latency_s``, ``origin`` (``process``,
    ``dask`` or ``ray`` for a call made outside the kernel, else null), ``late``,
    ``source_file``.
``budget_events`` (table)
    ``ts``, ``session_id``, ``window_id``, ``user``, ``team``, ``project``, ``notebook_path``,
    ``notebook_id``, ``action`` (set, cleared, warning, refused), ``scope`` (session, cell),
    ``budget_usd``, ``spent_usd``, ``threshold``, ``hard``, ``meter``, ``source_file``.
``notebook_cells`` (table)
    Every code cell of the notebooks read: ``notebook_key``, ``notebook_path``,
    ``cell_index``, ``cell_id``, ``execution_count``, ``has_record`` (false: it ran, or not,
    without a cost record).
``skipped`` (table)
    What could not be read: ``unit`` (lines, cell records, files), ``skipped``, ``read``,
    ``examples`` (the first few "file:line: reason"); :attr:`Spend.skipped` is the same.

Filters (``since``, ``until``, ``filters=Filters(...)``) apply to every table and view: a
window counts in the period its start falls in (``until`` is exclusive).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..errors import NbcostError
from .checks import Skipped
from .columns import ROW_COLUMNS, STAGED, WASTE_KINDS
from .digests import Digest, DigestStore, default_cache_dir
from .exports import load_exports
from .identity import notebook_keys
from .logs import load_logs
from .notebooks import read_notebook
from .sources import LOG, NOTEBOOK, Input, discover, filesystem
from .stage import create_staged, insert_arrow

__all__ = ["Filters", "Spend", "load_spend", "parse_time", "spend_of_rows"]


def parse_time(text: str | dt.datetime | dt.date | None, option: str = "--since"
               ) -> dt.datetime | None:
    """``2026-11-01`` (midnight UTC) or an ISO time; a time without a zone is UTC."""
    if text is None or isinstance(text, dt.datetime):
        moment = text
    elif isinstance(text, dt.date):
        moment = dt.datetime(text.year, text.month, text.day)
    else:
        try:
            moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise NbcostError(f"{option} takes a date like 2026-11-01 or an ISO time like "
                              f"2026-11-01T09:00Z; got {text!r}") from None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


@dataclass(frozen=True)
class Filters:
    """Which spend to keep. Each list keeps what matches any of its values; all the given
    filters must match. ``notebooks``: a path (absolute, relative or its end), a glob or a
    notebook id. ``tags``: every ``key=value`` must match (``key`` alone: has the tag).
    ``models``: windows that called one of these models (the report then counts only those
    models' LLM spend)."""

    users: Sequence[str] = ()
    teams: Sequence[str] = ()
    projects: Sequence[str] = ()
    notebooks: Sequence[str] = ()
    tags: Mapping[str, str | None] = field(default_factory=dict)
    models: Sequence[str] = ()

    @classmethod
    def of(cls, value: Filters | Mapping[str, Any] | None) -> Filters:
        if value is None:
            return cls()
        if isinstance(value, Filters):
            return value
        return cls(**value)


def _period_and_people(time_column: str, since, until, filters: Filters,
                       extra: tuple[tuple[str, Any], ...] = ()) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) for ``--since/--until`` on ``time_column`` and the
    ``--user/--team/--project`` filters (plus ``extra`` (column, values) pairs)."""
    where, params = [], []
    if since is not None:
        where.append(f"{time_column} >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{time_column} < ?")
        params.append(until)
    for column, values in (("user", filters.users), ("team", filters.teams),
                           ("project", filters.projects), *extra):
        if values:
            where.append(f'"{column}" IN (SELECT unnest(?::VARCHAR[]))')
            params.append(list(values))
    return where, params


def _window_filter(since, until, filters: Filters) -> tuple[str, list[Any]]:
    """SQL over ``windows`` (with ``notebook``) and its parameters."""
    where, params = _period_and_people("start", since, until, filters)
    if filters.notebooks:
        one = ("(notebook_id = ? OR notebook = ? OR notebook_path = ? OR ends_with(notebook, '/' || ?)"
               " OR notebook GLOB ?)")
        where.append("(" + " OR ".join([one] * len(filters.notebooks)) + ")")
        for value in filters.notebooks:
            params += [value] * 5
    for key, value in filters.tags.items():
        path = '$."' + key.replace('"', '\\"') + '"'
        if value is None:
            where.append("json_exists(tags, ?)")
            params.append(path)
        else:
            where.append("json_extract_string(tags, ?) = ?")
            params += [path, value]
    if filters.models:
        where.append("list_has_any(json_keys(llm_models), ?::VARCHAR[])")
        params.append(list(filters.models))
    return (" AND ".join(where) or "true"), params


class Spend:
    """Spend read from logs, exports and notebooks, queryable in DuckDB (see the module doc)."""

    def __init__(self, con, skipped: Skipped, inputs: list[Input], since, until,
                 filters: Filters, store: DigestStore | None = None) -> None:
        self.con = con
        self._store = store
        self.skipped = skipped
        self.inputs = inputs
        self.since, self.until, self.filters = since, until, filters
        self.models: list[str] = []  # every LLM model any window called
        self.unrecorded_spend = True  # any LLM spend whose model was not recorded
        self.local_logs: set[str] | None = None  # logs with self-hosted generation (None: any)

    def sql(self, query: str, params: Sequence[Any] | None = None):
        """Run ``query`` on the connection; returns DuckDB's cursor (``.fetchall()``,
        ``.arrow()``, ``.df()``)."""
        return self.con.execute(query, params or [])

    @property
    def readable(self) -> int:
        """How many lines and records could be read (0: nothing readable was found)."""
        return sum(read - skipped for unit, (skipped, read) in self.skipped.counts.items()
                   if unit != "files")

    def report(self, by: Sequence[str] | str = "notebook", **options: Any):
        """The grouped report (see :func:`nbcost.report.query.build`)."""
        from .query import build

        return build(self, by, **options)

    def close(self) -> None:
        self.con.close()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Spend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _connect(spill: Path | None = None):
    import duckdb

    con = duckdb.connect()
    # A report runs beside notebooks: keep DuckDB's working set small and spill the rest to
    # disk (writing 1,000 logs' digests at once would otherwise buffer gigabytes).
    con.execute(f"SET memory_limit = '{os.environ.get('NBCOST_REPORT_MEMORY', '512MB')}'")
    con.execute("SET preserve_insertion_order = false")
    if spill is not None:
        con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
    con.execute("SET TimeZone = 'UTC'")  # days and weeks are UTC days, whatever the machine's zone
    con.execute("SET enable_progress_bar = false")
    return con


def _register_filesystems(con, inputs: list[Input]) -> None:
    protocols = {i.url.split("://", 1)[0] for i in inputs if i.remote}
    for protocol in sorted(protocols):
        fs, _ = filesystem(f"{protocol}://")
        if not con.filesystem_is_registered(fs.protocol if isinstance(fs.protocol, str)
                                            else fs.protocol[0]):
            con.register_filesystem(fs)


def _stage(con, inputs: list[Input], store: DigestStore, skipped: Skipped
           ) -> tuple[list[Digest], list[dict]]:
    """Logs into digests (Parquet), exports and notebooks into the in-memory ``_staged``."""
    from .stage import stage_rows

    create_staged(con)
    logs = [i for i in inputs if i.kind == LOG]
    skipped.read("files", len(logs))
    digests = load_logs(con, logs, store, skipped)
    load_exports(con, [i for i in inputs if i.kind not in (LOG, NOTEBOOK)], skipped)
    cells: list[dict] = []
    for source in (i for i in inputs if i.kind == NOTEBOOK):
        rows, more_cells = read_notebook(source, skipped)
        for row in rows:
            row["source_file"] = source.url
        stage_rows(con, rows, "notebook", 2)
        cells += more_cells
    return digests, cells


def _all_rows(con, digests: list[Digest]) -> None:
    """``_all``: every staged row, from the digests' Parquet and from ``_staged``."""
    names = ", ".join(f'"{c.name}"' for c in STAGED)
    parquet = [f for d in digests for f in d.parquet]
    if parquet:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in parquet)
        con.execute(f"CREATE OR REPLACE TEMP VIEW _all AS SELECT {names} FROM read_parquet([{listed}]) "
                    f"UNION ALL SELECT {names} FROM _staged")
    else:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _all AS SELECT {names} FROM _staged")


def _keys(con, digests: list[Digest], cells: list[dict]) -> None:
    """``_keys``: each (notebook_id, notebook_path) → its notebook key and the path to show
    for that key (the latest one)."""
    import pyarrow as pa

    seen = [(i, p, u, None if s is None else dt.datetime.fromisoformat(s))
            for d in digests for i, p, u, s in d.notebooks]
    seen += con.execute("SELECT notebook_id, notebook_path, \"user\", max(start) FROM _staged "
                        "GROUP BY ALL").fetchall()
    seen = [row for row in seen if row[0] is not None or row[1] is not None]
    seen += [(c["notebook_id"], c["notebook_path"], None, None) for c in cells]
    keys = notebook_keys([(i, p, u) for i, p, u, _ in seen])
    latest: dict[str, tuple] = {}
    for notebook_id, path, _, start in seen:
        key = keys.get((notebook_id, path))
        if key is not None and path is not None:
            best = latest.get(key)
            moment = start.timestamp() if start is not None else float("-inf")
            if best is None or moment > best[0]:
                latest[key] = (moment, path)
    pairs = list(keys)
    table = pa.table({"notebook_id": [k[0] for k in pairs], "notebook_path": [k[1] for k in pairs],
                      "notebook_key": [keys[k] for k in pairs],
                      "notebook": [latest.get(keys[k], (0, keys[k]))[1] if keys[k] else None
                                   for k in pairs]},
                     schema=pa.schema([("notebook_id", pa.string()), ("notebook_path", pa.string()),
                                       ("notebook_key", pa.string()), ("notebook", pa.string())]))
    insert_arrow(con, "_keys", table, create=True)


def _models(con, digests: list[Digest]) -> list[str]:
    """Every LLM model any window called."""
    found = {m for d in digests for m in d.models}
    found.update(m for (m,) in con.execute(
        "SELECT DISTINCT unnest(list_transform(llm_model_list, lambda x: x.model)) FROM _staged"
    ).fetchall())
    return sorted(found)


def _unrecorded(con, digests: list[Digest]) -> bool:
    from .logs import UNRECORDED_SQL

    return any(d.unrecorded for d in digests) or bool(con.execute(
        f"SELECT count(*) FROM _staged WHERE {UNRECORDED_SQL}").fetchall()[0][0])


def _duplicates(con, digests: list[Digest]) -> list[str]:
    """Sessions seen in more than one input (a log and its export, a copied log...)."""
    files: dict[str, set[str]] = {}
    for digest in digests:
        for session_id in digest.sessions:
            files.setdefault(session_id, set()).add(digest.url)
    for session_id, source_file in con.execute(
            "SELECT DISTINCT session_id, source_file FROM _staged").fetchall():
        files.setdefault(session_id, set()).add(source_file)
    return sorted(s for s, found in files.items() if len(found) > 1)


def _windows(con, digests: list[Digest], since, until, filters: Filters) -> None:
    """``windows``: one row per window (the best source's), keyed, filtered, waste priced."""
    duplicated = _duplicates(con, digests)
    if duplicated:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _once AS SELECT * FROM _all
            WHERE session_id IN (SELECT unnest(?::VARCHAR[]))
            QUALIFY row_number() OVER (
                PARTITION BY session_id, kind, coalesce(CAST(start AS VARCHAR), window_id)
                ORDER BY source_rank, source_file) = 1""", [duplicated])
        rows = ("(SELECT * FROM _all WHERE session_id NOT IN (SELECT session_id FROM _once) "
                "UNION ALL SELECT * FROM _once)")
    else:
        rows = "_all"
    columns = []
    for c in ROW_COLUMNS:
        kind = c.name[4:-4] if c.name.startswith("gpu_") and c.name.endswith("_usd") else None
        if kind in WASTE_KINDS:  # an export has the seconds only: price them at the window's rate
            columns.append(
                f"coalesce(a.gpu_{kind}_usd, CASE WHEN a.gpu_held_s > 0 THEN CAST("
                f"CAST(a.gpu_cost_usd AS DECIMAL(26,18)) * CAST(a.gpu_{kind}_s / a.gpu_held_s "
                f"AS DECIMAL(12,10)) AS DECIMAL(38,18)) END) AS gpu_{kind}_usd")
        else:
            columns.append(f'a."{c.name}"')
    columns.append("a.llm_model_list")
    where, params = _window_filter(since, until, filters)
    query = f"""
        CREATE OR REPLACE TEMP VIEW windows AS
        SELECT * FROM (
            SELECT {", ".join(columns)}, k.notebook_key, k.notebook, a.source, a.source_file
            FROM {rows} AS a LEFT JOIN _keys k
              ON k.notebook_id IS NOT DISTINCT FROM a.notebook_id
             AND k.notebook_path IS NOT DISTINCT FROM a.notebook_path)
        WHERE {where}"""
    con.execute(_inline(query, params))


def _inline(query: str, params: list[Any]) -> str:
    """A view cannot keep parameters: put them in as SQL literals."""
    def literal(value: Any) -> str:
        if isinstance(value, list):
            return "[" + ", ".join(map(literal, value)) + "]::VARCHAR[]"
        if isinstance(value, dt.datetime):
            return f"TIMESTAMPTZ '{value.isoformat()}'"
        return "'" + str(value).replace("'", "''") + "'"

    parts = query.split("?")
    assert len(parts) == len(params) + 1, "one parameter per placeholder"
    return parts[0] + "".join(literal(v) + part for v, part in zip(params, parts[1:]))


_MODEL_FIGURES = ("calls", "input_tokens", "cache_read_tokens", "cache_write_tokens",
                  "output_tokens", "reasoning_tokens", "errors", "estimated_calls")


def _window_models(con) -> None:
    figures = ", ".join(f"m.{k} AS model_{k}" for k in _MODEL_FIGURES)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW window_models AS
        SELECT * EXCLUDE (m), m.model AS model, {figures}, m.cost_usd AS model_cost_usd,
               m.unpriced AS model_unpriced
        FROM (SELECT *, unnest(llm_model_list) AS m FROM windows
              WHERE llm_model_list IS NOT NULL)""")


def _llm_calls(con, logs: list[Input], since, until, filters: Filters) -> None:
    quantities = ", ".join(f"{k} BIGINT" for k in _MODEL_FIGURES)
    columns = ("ts TIMESTAMPTZ, session_id VARCHAR, window_id VARCHAR, window_ids VARCHAR[], "
               "cell_id VARCHAR, execution_count BIGINT, \"user\" VARCHAR, team VARCHAR, "
               "project VARCHAR, notebook_path VARCHAR, notebook_key VARCHAR, model VARCHAR, "
               "provider VARCHAR, request_model VARCHAR, response_model VARCHAR, calls BIGINT, "
               "input_tokens BIGINT, cache_read_tokens BIGINT, cache_write_tokens BIGINT, "
               "output_tokens BIGINT, reasoning_tokens BIGINT, cost_usd DECIMAL(38,18), "
               "unpriced BOOLEAN, estimated BOOLEAN, error VARCHAR, usage_source VARCHAR, "
               "latency_s DOUBLE, origin VARCHAR, late BOOLEAN, source_file VARCHAR")
    if not logs:
        con.execute(f"CREATE OR REPLACE TEMP TABLE llm_calls ({columns})")
        return
    from .logs import _lines

    spec = ('{"schema": "JSON", "id": "VARCHAR", "event": "VARCHAR", "ts": "VARCHAR", '
            '"session_id": "VARCHAR", "notebook_path": "VARCHAR", "notebook_id": "VARCHAR", '
            '"user": "VARCHAR", "team": "VARCHAR", "project": "VARCHAR", "cell_id": "VARCHAR", '
            '"execution_count": "BIGINT", "window_ids": "VARCHAR[]", "meter": "VARCHAR", '
            '"key": "VARCHAR", "cost_usd": "JSON", "flags": "VARCHAR[]", '
            f'"quantities": "STRUCT({quantities})", '
            '"attributes": {"provider": "VARCHAR", "request_model": "VARCHAR", '
            '"response_model": "VARCHAR", "error_type": "VARCHAR", "usage_source": "VARCHAR", '
            '"latency_s": "DOUBLE"}, "origin": {"kind": "VARCHAR"}, "late": "BOOLEAN"}')
    where, params = _period_and_people("ts", since, until, filters,
                                       extra=(("model", filters.models),))
    if filters.notebooks:
        where.append("notebook_key IN (SELECT DISTINCT notebook_key FROM windows)")
    if filters.tags:
        where.append("list_has_any(window_ids, (SELECT list(window_id) FROM windows))")
    con.execute(_inline(f"""
        CREATE OR REPLACE TEMP VIEW llm_calls AS
        SELECT * FROM (
          SELECT TRY_CAST(c.ts AS TIMESTAMPTZ) AS ts, c.session_id,
                 c.window_ids[-1] AS window_id, c.window_ids, c.cell_id, c.execution_count,
                 c.user, c.team, c.project, c.notebook_path, k.notebook_key, c.key AS model,
                 c.attributes.provider AS provider, c.attributes.request_model AS request_model,
                 c.attributes.response_model AS response_model,
                 {", ".join(f"c.quantities.{k} AS {k}" for k in _MODEL_FIGURES[:6])},
                 money(c.cost_usd) AS cost_usd, money(c.cost_usd) IS NULL AS unpriced,
                 list_contains(c.flags, 'estimated') AS estimated,
                 c.attributes.error_type AS error, c.attributes.usage_source AS usage_source,
                 c.attributes.latency_s AS latency_s, c.origin.kind AS origin,
                 coalesce(c.late, false) AS late, source_file
          FROM (SELECT filename AS source_file, TRY(json_transform(line, '{spec}')) AS c
                FROM {_lines([i.url for i in logs])}
                WHERE line IS NOT NULL AND contains(line, '"llm_call"')) AS raw
          LEFT JOIN _keys k ON k.notebook_id IS NOT DISTINCT FROM c.notebook_id
                           AND k.notebook_path IS NOT DISTINCT FROM c.notebook_path
          WHERE c.event = 'llm_call' AND c.meter = 'llm' AND c.schema = '1'
            AND ts_ok(c.ts) AND money_ok(c.cost_usd)
          QUALIFY row_number() OVER (PARTITION BY c.session_id, c.id ORDER BY source_file) = 1)
        WHERE {" AND ".join(where) or "true"}""", params))


def _small_tables(con, budgets: list[dict], cells: list[dict], skipped: Skipped,
                  since, until, filters: Filters) -> None:
    import pyarrow as pa

    budget_schema = pa.schema([
        ("ts", pa.string()), ("session_id", pa.string()), ("window_id", pa.string()),
        ("user", pa.string()), ("team", pa.string()), ("project", pa.string()),
        ("notebook_path", pa.string()), ("notebook_id", pa.string()), ("action", pa.string()),
        ("scope", pa.string()), ("budget_usd", pa.decimal128(38, 18)),
        ("spent_usd", pa.decimal128(38, 18)), ("threshold", pa.float64()), ("hard", pa.bool_()),
        ("meter", pa.string()), ("source_file", pa.string())])
    for b in budgets:
        for name in ("budget_usd", "spent_usd"):
            if b[name] is not None:
                b[name] = b[name].quantize(Decimal("1e-18"))
        threshold = b["threshold"]
        b["threshold"] = (float(threshold) if isinstance(threshold, (int, float))
                          and not isinstance(threshold, bool) else None)
        b["hard"] = b["hard"] if isinstance(b["hard"], bool) else None
    insert_arrow(con, "_budgets", pa.Table.from_pylist(budgets, schema=budget_schema), create=True)
    where, params = _period_and_people("ts", since, until, filters)
    where.insert(0, "true")
    if filters.notebooks or filters.tags or filters.models:
        where.append("session_id IN (SELECT DISTINCT session_id FROM windows)")
    con.execute("""
        CREATE OR REPLACE TABLE budget_events AS
        SELECT * REPLACE (TRY_CAST(ts AS TIMESTAMPTZ) AS ts) FROM _budgets
        QUALIFY row_number() OVER (PARTITION BY session_id, ts, action, scope, window_id
                                   ORDER BY source_file) = 1""")
    con.execute("DROP TABLE _budgets")
    con.execute(f"DELETE FROM budget_events WHERE NOT ({' AND '.join(where)})", params)
    cell_schema = pa.schema([("source_file", pa.string()), ("notebook_path", pa.string()),
                             ("notebook_id", pa.string()), ("cell_index", pa.int64()),
                             ("cell_id", pa.string()), ("execution_count", pa.int64()),
                             ("has_record", pa.bool_())])
    insert_arrow(con, "_nb_cells", pa.Table.from_pylist(cells, schema=cell_schema), create=True)
    con.execute("""
        CREATE OR REPLACE TABLE notebook_cells AS
        SELECT k.notebook_key, c.notebook_path, c.cell_index, c.cell_id, c.execution_count,
               c.has_record
        FROM _nb_cells c LEFT JOIN _keys k ON k.notebook_id IS NOT DISTINCT FROM c.notebook_id
                                         AND k.notebook_path IS NOT DISTINCT FROM c.notebook_path
        ORDER BY c.notebook_path, c.cell_index""")
    con.execute("DROP TABLE _nb_cells")
    units = pa.table({"unit": list(skipped.counts),
                      "skipped": [v[0] for v in skipped.counts.values()],
                      "read": [v[1] for v in skipped.counts.values()],
                      "examples": [[e for e in skipped.examples] for _ in skipped.counts]},
                     schema=pa.schema([("unit", pa.string()), ("skipped", pa.int64()),
                                       ("read", pa.int64()), ("examples", pa.list_(pa.string()))]))
    insert_arrow(con, "skipped", units, create=True)


def spend_of_rows(rows: Iterable[Mapping[str, Any]]) -> Spend:
    """A :class:`Spend` over rows already in memory (:func:`nbcost.rows.rows_from_events`)."""
    from .stage import stage_rows

    skipped = Skipped()
    con = _connect()
    try:
        from .checks import SQL_MACROS

        con.execute(SQL_MACROS)
        create_staged(con)
        rows = [dict(r, source_file="(rows)") for r in rows]
        skipped.read("lines", len(rows))
        stage_rows(con, rows, "rows", 0)
        _all_rows(con, [])
        _keys(con, [], [])
        _windows(con, [], None, None, Filters())
        _window_models(con)
        _llm_calls(con, [], None, None, Filters())
        _small_tables(con, [], [], skipped, None, None, Filters())
    except BaseException:
        con.close()
        raise
    spend = Spend(con, skipped, [], None, None, Filters())
    spend.models = _models(con, [])
    spend.unrecorded_spend = _unrecorded(con, [])
    return spend


def load_spend(paths: Iterable[str], *, since: str | dt.datetime | None = None,
               until: str | dt.datetime | None = None,
               filters: Filters | Mapping[str, Any] | None = None, cache: bool = True) -> Spend:
    """Read spend logs, exports and notebooks under ``paths`` (files, folders, globs, fsspec
    URLs) into a :class:`Spend`. Unreadable lines and files are skipped and counted in
    ``spend.skipped``, never raised; a path with nothing at it raises :class:`NbcostError`.
    ``cache=False``: keep no digests of the logs (:mod:`nbcost.report.digests`)."""
    since, until = parse_time(since, "--since"), parse_time(until, "--until")
    filters = Filters.of(filters)
    skipped = Skipped()
    inputs = discover(paths, skipped)
    store = DigestStore(default_cache_dir() if cache else None)
    spill = Path(tempfile.mkdtemp(prefix="nbcost-spill-"))  # this process's own
    store.cleanup.append(spill)
    con = _connect(spill)
    try:
        _register_filesystems(con, inputs)
        from .checks import SQL_MACROS

        con.execute(SQL_MACROS)
        digests, cells = _stage(con, inputs, store, skipped)
        _all_rows(con, digests)
        _keys(con, digests, cells)
        _windows(con, digests, since, until, filters)
        _window_models(con)
        _llm_calls(con, [i for i in inputs if i.kind == LOG], since, until, filters)
        budgets = [b for d in digests for b in d.budgets]
        _small_tables(con, budgets, cells, skipped, since, until, filters)
    except BaseException:
        con.close()
        store.close()
        raise
    spend = Spend(con, skipped, inputs, since, until, filters, store)
    spend.models = _models(con, digests)
    spend.unrecorded_spend = _unrecorded(con, digests)
    spend.local_logs = {d.url for d in digests if d.local}
    return spend
