"""Spend logs → staged ``windows`` rows and budget events, fast for the common case.

Two DuckDB scans read every log at once, line by line as text (``read_csv`` with a delimiter
JSON never holds unescaped, so a line is one value and a bad byte is a rejected line, not an
aborted query):

1. the window-end lines (``cell_end``/``track_end``: each is a whole window row) are parsed
   with one ``json_transform`` into the export table's columns;
2. every other line is parsed only for what the checks need, and folded into one row per file
   and event type: counts, the last timestamp, and the few session and budget lines whole.

A file passes when it is one whole session: no suspect line, a ``session_end``, as many window
starts as ends, no ``window_amended`` (late remote usage is added to its window in Python).
Its time between cells is then rebuilt from its ``session_end`` minus its top-level windows by
:func:`nbcost.rows` code. Any other file (a killed kernel, a damaged
line, several sessions in one file) is read again in Python, line by line, with
:func:`nbcost.rows.rows_from_events`, which rebuilds what a killed session spent and says
exactly which line was skipped and why.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterable

from ..logcheck import iter_lines
from ..quantities import QUANTITIES
from ..rows import between_cells_row, rows_from_events
from .checks import (
    CHECK_SPEC,
    MAX_LINE_BYTES,
    SQL_MACROS,
    Skipped,
    checked_sql,
    event_problem,
    money_or_none,
    parse_line,
)
from .columns import NOT_ADDITIVE, STAGED, WASTE_KINDS, sql_type
from .digests import Digest, DigestStore
from .sources import Input, open_binary
from .stage import to_staged_arrow, with_model_list

__all__ = ["UNRECORDED_SQL", "load_logs"]

#: SQL: a window has LLM spend its model list does not account for (the report's
#: "(model not recorded)" row).
UNRECORDED_SQL = (
    "coalesce(llm_cost_usd, 0) <> coalesce(list_sum(list_transform(coalesce(llm_model_list, []), "
    "lambda v: coalesce(v.cost_usd, 0))), 0) OR coalesce(llm_calls, 0) <> coalesce(list_sum("
    "list_transform(coalesce(llm_model_list, []), lambda v: v.calls)), 0)")

_END_FILTER = "(contains(line, 'cell_end\"') OR contains(line, 'track_end\"'))"
_RICH = ("session_start", "session_end", "budget")
_STARTS = ("cell_start", "track_start")


def _meter_spec(meter: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "quantities": {q.key: "BIGINT" if q.unit in ("count", "tokens", "bytes") else "DOUBLE"
                       for q in QUANTITIES[meter]},
        "cost_usd": "JSON", "unpriced": "BOOLEAN"}
    if meter == "llm":
        spec["by_key"] = "JSON"
    if meter == "gpu":
        spec["detail"] = {"waste_usd": {kind: "JSON" for kind in WASTE_KINDS},
                          "devices": "VARCHAR[]"}
    return spec


_COMMON = {"schema": "JSON", "event": "JSON", "ts": "VARCHAR", "session_id": "JSON",
           "started_at": "VARCHAR", "ended_at": "VARCHAR", "cost_usd": "JSON", "tags": "JSON"}
_END_SPEC = {**_COMMON, "notebook_path": "VARCHAR", "notebook_id": "VARCHAR", "user": "VARCHAR",
             "team": "VARCHAR", "project": "VARCHAR", "window_id": "JSON", "parent_id": "VARCHAR",
             "kind": "VARCHAR", "label": "VARCHAR", "cell_id": "VARCHAR",
             "execution_count": "BIGINT", "wall_s": "DOUBLE", "status": "VARCHAR",
             "unpriced": "BOOLEAN", "flags": "VARCHAR[]",
             "meters": {"llm": _meter_spec("llm"), "gpu": _meter_spec("gpu")}}
_OTHER_SPEC = {**CHECK_SPEC, **_COMMON, "window_id": "JSON", "budget_usd": "JSON", "spent_usd": "JSON",
               "quantities": "JSON", "meter": "JSON", "cumulative": "JSON"}


def _is_string(x: str) -> str:
    return f"coalesce({x} LIKE '\"%' AND length({x}) > 2, false)"


def _suspect(t: str, window_event: str) -> str:
    """SQL: true when a parsed line might break a rule (Python then decides)."""
    checks = [f"{t} IS NULL", f"{t}.schema IS DISTINCT FROM '1'", f"NOT {_is_string(t + '.event')}",
              f"NOT {_is_string(t + '.session_id')}",
              f"({window_event} AND NOT {_is_string(t + '.window_id')})",
              *(f"NOT ts_ok({t}.{name})" for name in ("ts", "started_at", "ended_at")),
              f"NOT money_ok({t}.cost_usd)", f"NOT tags_ok({t}.tags)"]
    return "coalesce(" + " OR ".join(checks) + ", true)"


def _lines(files: list[str]) -> str:
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return (f"read_csv([{listed}], columns={{'line': 'VARCHAR'}}, delim='\\x01', quote='', "
            f"escape='', header=false, auto_detect=false, filename=true, store_rejects=true, "
            f"strict_mode=true, max_line_size={MAX_LINE_BYTES})")


def _jstr(x: str) -> str:
    return f"json_extract_string({x}, '$')"


def _end_columns() -> dict[str, str]:
    """SQL: a window-end line ``e`` as the export table's columns, by name."""
    out = {"session_id": _jstr("e.session_id"), "window_id": _jstr("e.window_id"),
           "tags": "CASE WHEN e.tags IS NULL OR e.tags = 'null' THEN '{}' ELSE e.tags END",
           "start": "TRY_CAST(e.started_at AS TIMESTAMPTZ)",
           "end": "TRY_CAST(e.ended_at AS TIMESTAMPTZ)",
           "cost_usd": "coalesce(money(e.cost_usd), 0)",
           "unpriced": "coalesce(e.unpriced, false)",
           "flags": "nullif(array_to_string(e.flags, ','), '')",
           "llm_models": "CASE WHEN e.meters.llm.by_key NOT IN ('{}', 'null') "
                         "THEN e.meters.llm.by_key END",
           "gpu_devices": "nullif(array_to_string(e.meters.gpu.detail.devices, ','), '')",
           "llm_model_list": "model_list(e.meters.llm.by_key)"}
    for name in ("parent_id", "kind", "notebook_path", "notebook_id", "cell_id",
                 "execution_count", "label", "user", "team", "project", "wall_s", "status"):
        out[name] = f'e."{name}"'
    for meter in ("gpu", "llm"):
        m = f"e.meters.{meter}"
        out.update({f"{meter}_{q.key}": f"{m}.quantities.{q.key}" for q in QUANTITIES[meter]})
        out[f"{meter}_cost_usd"] = f"CASE WHEN {m} IS NOT NULL THEN coalesce(money({m}.cost_usd), 0) END"
    out.update({f"gpu_{kind}_usd": f"money(e.meters.gpu.detail.waste_usd.{kind})"
                for kind in WASTE_KINDS})
    return out


def _staged_select(columns: dict[str, str]) -> str:
    """The expressions in the staged table's column order (missing ones null), up to where
    the source columns start."""
    return ", ".join(f"CAST({columns.get(c.name, 'NULL')} AS {sql_type(c)}) AS \"{c.name}\""
                     for c in STAGED[:-3])


def _scan(con, store: DigestStore, files: list[str]) -> None:
    """Window-end lines straight to each file's digest folder; the rest folded per file."""
    end_spec, other_spec = json.dumps(_END_SPEC), json.dumps(_OTHER_SPEC)
    check_spec = json.dumps(CHECK_SPEC)
    ends = ("e.event IN ('\"cell_end\"', '\"track_end\"')")
    waste_ok = " AND ".join(f"money_ok(e.meters.gpu.detail.waste_usd.{k})" for k in WASTE_KINDS)
    root = str(store.root).replace("'", "''")
    con.execute(f"""
        COPY (
          SELECT {_staged_select(_end_columns())}, 'log' AS source, filename AS source_file,
                 0 AS source_rank,
                 {_suspect('e', 'true')} OR NOT coalesce({ends}, false)
                 OR NOT money_ok(e.meters.llm.cost_usd) OR NOT money_ok(e.meters.gpu.cost_usd)
                 OR NOT coalesce({waste_ok}, true) OR NOT coalesce({checked_sql('c')}, false)
                 AS suspect, md5(filename) AS k
          FROM (SELECT filename, CASE WHEN json_valid(line) THEN json_transform(line, '{end_spec}') END AS e,
                       CASE WHEN json_valid(line) THEN json_transform(line, '{check_spec}') END AS c
                FROM {_lines(files)} WHERE line IS NOT NULL AND {_END_FILTER}))
        TO '{root}' (FORMAT parquet, PARTITION_BY (k), OVERWRITE_OR_IGNORE,
                     FILENAME_PATTERN 'ends_{{i}}')""")
    starts = "t.event IN ('\"cell_start\"', '\"track_start\"')"
    usage_ok = ("(t.quantities IS NULL OR t.quantities = 'null' OR (json_type(t.quantities) = "
                f"'OBJECT' AND {_is_string('t.meter')}))")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _other AS
        SELECT source_file, session_id, event, count(*) AS lines, bool_or(suspect) AS suspect,
               list(line) FILTER (WHERE event IN {_RICH}) AS rich,
               bool_or(contains(line, '"self-hosted"')) AS self_hosted
        FROM (SELECT filename AS source_file, line, {_jstr('t.session_id')} AS session_id,
                     {_jstr('t.event')} AS event,
                     {_suspect('t', starts)} OR NOT money_ok(t.budget_usd)
                     OR NOT money_ok(t.spent_usd) OR NOT coalesce({usage_ok}, false)
                     OR NOT coalesce({checked_sql('t')}, false) AS suspect
              FROM (SELECT filename, line,
                           CASE WHEN json_valid(line) THEN json_transform(line, '{other_spec}') END AS t
                    FROM {_lines(files)} WHERE line IS NOT NULL AND NOT {_END_FILTER}))
        GROUP BY ALL""")


def _parquet_list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def _verdicts(con, ends_files: list[str]) -> tuple[dict[str, int], set[str]]:
    """Lines read per file, and the files to read again in Python."""
    rejected = {row[0] for row in con.execute(
        "SELECT DISTINCT s.file_path FROM reject_errors e JOIN reject_scans s "
        "USING (scan_id, file_id)").fetchall()}
    ends = (f"SELECT source_file, session_id, suspect FROM read_parquet({_parquet_list(ends_files)})"
            if ends_files else
            "SELECT NULL::VARCHAR AS source_file, NULL::VARCHAR AS session_id, "
            "NULL::BOOLEAN AS suspect WHERE false")
    rows = con.execute(f"""
        WITH e AS (SELECT source_file, count(*) AS lines, bool_or(suspect) AS suspect,
                          count(DISTINCT session_id) AS sessions, min(session_id) AS sid
                   FROM ({ends}) GROUP BY 1),
             o AS (SELECT source_file, sum(lines) AS lines, bool_or(suspect) AS suspect,
                          count(DISTINCT session_id) AS sessions, min(session_id) AS sid,
                          coalesce(sum(lines) FILTER (WHERE event IN {_STARTS}), 0) AS starts,
                          coalesce(sum(lines) FILTER (WHERE event = 'session_end'), 0) AS ended,
                          coalesce(sum(lines) FILTER (WHERE event = 'window_amended'), 0)
                            AS amended
                   FROM _other GROUP BY 1)
        SELECT o.source_file, o.lines + coalesce(e.lines, 0),
               coalesce(e.suspect, false) OR o.suspect OR o.sessions <> 1
               OR coalesce(e.sessions, 1) <> 1 OR e.sid <> o.sid OR o.ended <> 1
               OR o.starts <> coalesce(e.lines, 0) OR o.amended > 0
        FROM o LEFT JOIN e USING (source_file)
        UNION ALL
        SELECT source_file, lines, true FROM e
        WHERE source_file NOT IN (SELECT source_file FROM o)""").fetchall()
    lines = {file: int(count) for file, count, _ in rows}
    flagged = {file for file, _, bad in rows if bad} | rejected
    return lines, flagged


# --- the between-cells rows and budget events of whole sessions ----------------------------

_SUMMED = ["cost_usd", *(f"{m}_cost_usd" for m in ("gpu", "llm")),
           *(f"{m}_{q.key}" for m in ("gpu", "llm") for q in QUANTITIES[m]
             if q.key not in NOT_ADDITIVE),
           *(f"gpu_{kind}_usd" for kind in WASTE_KINDS)]


def _top_sums(con, ends_files: list[str]) -> dict[str, dict[str, Any]]:
    """Per session, its top-level windows' figures summed (what rows.py subtracts)."""
    if not ends_files:
        return {}
    sums = ", ".join(f'sum("{c}") AS "{c}"' for c in _SUMMED)
    cursor = con.execute(f"SELECT session_id, {sums} FROM read_parquet({_parquet_list(ends_files)}) "
                         f"WHERE parent_id IS NULL GROUP BY 1")
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names[1:], row[1:])) for row in cursor.fetchall()}


def _between_row(events: list[dict], top: dict[str, Any]) -> dict[str, Any] | None:
    """rows.py's between-cells row, given the session's events and its top-level sums as one
    row; other meters' cost is the rest of ``cost_usd`` (it has no column of its own)."""
    totals = next((e.get("meters") or {} for e in reversed(events)
                   if e["event"] == "session_end"), {})
    aggregate = {k: (v if v is not None else None) for k, v in top.items()}
    others = [m for m in totals if m not in ("gpu", "llm")]
    if others:
        rest = ((top.get("cost_usd") or Decimal(0)) - (top.get("gpu_cost_usd") or 0)
                - (top.get("llm_cost_usd") or 0))
        aggregate[f"{others[0]}_cost_usd"] = rest
    row = between_cells_row(events, [aggregate])
    if row is not None:
        _between_waste(row, totals.get("gpu"), [aggregate])
    return row


def _between_waste(row: dict[str, Any], gpu: dict | None, top: list[dict[str, Any]]) -> None:
    """The session's waste dollars less its top-level windows' (None: derived from the rate),
    and the names of its GPUs."""
    detail = (gpu or {}).get("detail") or {}
    dollars = detail.get("waste_usd") or {}
    devices = detail.get("devices")
    if isinstance(devices, list) and devices:
        row["gpu_devices"] = ",".join(map(str, devices))
    for kind in WASTE_KINDS:
        try:
            total = money_or_none(dollars.get(kind))
        except ValueError:
            total = None
        if total is not None:
            used = sum((r.get(f"gpu_{kind}_usd") or Decimal(0) for r in top), Decimal(0))
            row[f"gpu_{kind}_usd"] = max(total - used, Decimal(0))


def _budget_row(event: dict, source_file: str) -> dict[str, Any]:
    def money(name):
        try:
            return money_or_none(event.get(name))
        except ValueError:
            return None
    return {"ts": event.get("ts"), "session_id": event.get("session_id"),
            "window_id": event.get("window_id"), "user": event.get("user"),
            "team": event.get("team"), "project": event.get("project"),
            "notebook_path": event.get("notebook_path"), "notebook_id": event.get("notebook_id"),
            "action": event.get("action"), "scope": event.get("scope"),
            "budget_usd": money("budget_usd"), "spent_usd": money("spent_usd"),
            "threshold": event.get("threshold"), "hard": event.get("hard"),
            "meter": event.get("meter"), "source_file": source_file}


def _whole_sessions(con, flagged: set[str], top: dict[str, dict[str, Any]]
                    ) -> tuple[list[dict], dict[str, list[dict]], dict[str, list[str]]]:
    """Between-cells rows, budget events and sessions of the files that passed."""
    between: list[dict] = []
    budgets: dict[str, list[dict]] = {}
    sessions: dict[str, list[str]] = {}
    order = {"session_start": 0, "budget": 1, "session_end": 2}
    for file, session_id, rich in con.execute(
            "SELECT source_file, session_id, flatten(list(rich)) FROM _other "
            "GROUP BY 1, 2").fetchall():
        if file in flagged:
            continue
        sessions.setdefault(file, []).append(session_id)
        events = sorted((json.loads(line) for line in rich), key=lambda e: order[e["event"]])
        budgets.setdefault(file, []).extend(_budget_row(e, file) for e in events
                                            if e["event"] == "budget")
        row = _between_row(events, top.get(session_id, {}))
        if row is not None:
            row["source_file"] = file
            between.append(row)
    return between, budgets, sessions


# --- files read again in Python ---------------------------------------------------------------

def _clean(event: dict) -> dict:
    """Non-numeric quantities dropped, as the SQL reader reads them as null."""
    def numbers(q):
        return {k: v for k, v in q.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if isinstance(event.get("quantities"), dict):
        event["quantities"] = numbers(event["quantities"])
    for meter in (event.get("meters") or {}).values():
        if isinstance(meter.get("quantities"), dict):
            meter["quantities"] = numbers(meter["quantities"])
    return event


def read_log_file(url: str, skipped: Skipped) -> list[dict]:
    """One spend log's valid events; every other line skipped with its number and reason.
    Read as a stream: a line longer than ``MAX_LINE_BYTES`` is skipped without being held."""
    events, read = [], 0
    with open_binary(url) as src:
        for number, raw, ended in iter_lines(src):
            if raw is not None and not raw.strip():
                continue
            read += 1
            event, problem = parse_line(raw) if raw is not None else (
                None, f"longer than {MAX_LINE_BYTES >> 20} MB")
            if problem is None:
                problem = event_problem(event)
            if problem == "not JSON" and not ended:
                problem = "its last line is torn (a kernel stopped mid-write?)"
            if problem is not None:
                skipped.skip("lines", f"{url}:{number}", problem)
                continue
            events.append(_clean(event))
    skipped.read("lines", read)
    return events


def _window_extras(rows: list[dict], events: list[dict]) -> None:
    """What rows.py leaves out: GPU waste dollars of ended windows, and the models of LLM calls
    in a window the kernel died in."""
    ends = {(e["session_id"], e.get("window_id")): e for e in events
            if e["event"] in ("cell_end", "track_end")}
    calls: dict[str, dict[str, dict[str, Any]]] = {}
    for e in events:
        if e["event"] == "llm_call" and e.get("meter") == "llm":
            for window_id in e.get("window_ids") or ():
                model = calls.setdefault(window_id, {}).setdefault(e.get("key") or "unknown", {})
                for q, v in (e.get("quantities") or {}).items():
                    model[q] = model.get(q, 0) + v
                cost = money_or_none(e.get("cost_usd"))
                if cost is None:
                    model["unpriced"] = True
                model["cost_usd"] = str(Decimal(model.get("cost_usd", "0")) + (cost or 0))
    for row in rows:
        end = ends.get((row["session_id"], row.get("window_id")))
        if end is not None:
            _between_waste(row, (end.get("meters") or {}).get("gpu"), [])
        elif row.get("status") == "interrupted" and row.get("window_id") in calls:
            row["llm_models"] = json.dumps(calls[row["window_id"]], sort_keys=True)


def _read_again(url: str, skipped: Skipped) -> tuple[list[dict], list[dict]]:
    events = read_log_file(url, skipped)
    if not events:
        return [], []
    rows = rows_from_events(events)
    _window_extras([r for r in rows if r["kind"] != "between_cells"], events)
    by_session: dict[str, list[dict]] = {}
    for e in events:
        by_session.setdefault(e["session_id"], []).append(e)
    for row in rows:
        if row["kind"] == "between_cells":
            session = by_session[row["session_id"]]
            end = next((e for e in reversed(session) if e["event"] == "session_end"), None)
            top = [r for r in rows if r["session_id"] == row["session_id"] and not r.get("parent_id")
                   and r["kind"] != "between_cells"]
            if end is not None:
                _between_waste(row, (end.get("meters") or {}).get("gpu"), top)
        row["source_file"] = url
    budgets = [_budget_row(e, url) for e in events if e["event"] == "budget"]
    return rows, budgets


# --- entry point ------------------------------------------------------------------------------

def _write_rows(con, store: DigestStore, rows: list[dict]) -> None:
    """Rows made in Python (between cells, files read again) into their files' digests."""
    if not rows:
        return
    import pyarrow as pa

    table = to_staged_arrow(rows, "log", 0)
    table = table.append_column("suspect", pa.array([False] * len(rows)))
    table = table.append_column("k", pa.array([store.key(r["source_file"]) for r in rows]))
    con.register("_more_rows", table)
    root = str(store.root).replace("'", "''")
    names = ", ".join(f'"{c.name}"' for c in STAGED)
    try:  # the same columns in the same order as the window-end rows' files
        con.execute(f"COPY (SELECT {names}, suspect, k FROM ({with_model_list('_more_rows')})) "
                    f"TO '{root}' (FORMAT parquet, PARTITION_BY (k), OVERWRITE_OR_IGNORE, "
                    f"FILENAME_PATTERN 'more_{{i}}')")
    finally:
        con.unregister("_more_rows")


def _digest(con, store: DigestStore, todo: list[tuple[Input, dict]]) -> list[Digest]:
    """Read the logs in ``todo`` and write their digests."""
    con.execute(SQL_MACROS)
    files = [source.url for source, _ in todo]
    digests = {source.url: Digest(source.url, store.key(source.url), stamp) for source, stamp in todo}
    for digest in digests.values():
        store.clear(digest.key)
    _scan(con, store, files)

    def ends_of(urls):
        return [str(p) for url in urls for p in store.folder(store.key(url)).glob("ends_*.parquet")]

    lines, flagged = _verdicts(con, ends_of(files))
    for url, self_hosted in con.execute(
            "SELECT source_file, bool_or(self_hosted) FROM _other GROUP BY 1").fetchall():
        digests[url].local = bool(self_hosted)  # no self-hosted call: no local figures to find
    clean = [url for url in files if url not in flagged]
    for url in clean:
        digests[url].lines = lines.get(url, 0)
        digests[url].counts = {"lines": [0, digests[url].lines]}
    between, budgets, sessions = _whole_sessions(con, flagged, _top_sums(con, ends_of(clean)))
    for url, found in budgets.items():
        digests[url].budgets = found
    for url, found in sessions.items():
        digests[url].sessions = found
    rows = list(between)
    for url in sorted(flagged):
        digest = digests[url]
        store.clear(digest.key)  # its window-end rows come again from Python
        mine = Skipped()
        more_rows, digest.budgets = _read_again(url, mine)
        digest.counts, digest.examples = mine.counts, mine.examples
        digest.lines = sum(read for _, read in mine.counts.values())
        digest.sessions = sorted({r["session_id"] for r in more_rows})
        rows += more_rows
    _write_rows(con, store, rows)
    con.execute("DROP TABLE _other")
    _describe(con, store, digests)
    for digest in digests.values():
        store.save(digest)
    return list(digests.values())


def _describe(con, store: DigestStore, digests: dict[str, Digest]) -> None:
    """What the engine asks of every log before a query: its models and notebooks."""
    files = [str(p) for d in digests.values() for p in store.folder(d.key).glob("*.parquet")]
    if not files:
        return
    listed = _parquet_list(files)
    for file, models in con.execute(
            f"SELECT source_file, list(DISTINCT model) FROM (SELECT source_file, unnest("
            f"list_transform(llm_model_list, lambda x: x.model)) AS model "
            f"FROM read_parquet({listed})) GROUP BY 1").fetchall():
        digests[file].models = sorted(models)
    for file, unrecorded in con.execute(
            f"SELECT source_file, bool_or({UNRECORDED_SQL}) FROM read_parquet({listed}) "
            f"GROUP BY 1").fetchall():
        digests[file].unrecorded = bool(unrecorded)
    for file, notebook_id, path, user, start in con.execute(
            f"SELECT source_file, notebook_id, notebook_path, \"user\", max(start) "
            f"FROM read_parquet({listed}) GROUP BY ALL").fetchall():
        digests[file].notebooks.append([notebook_id, path, user,
                                        None if start is None else start.isoformat()])


def load_logs(con, inputs: Iterable[Input], store: DigestStore, skipped: Skipped
              ) -> list[Digest]:
    """Each log's digest: from the store when the file is unchanged, else read now."""
    ready, todo = [], []
    for source in inputs:
        stamp = store.stamp(source)
        digest = None if store.temporary else store.load(source, stamp)
        if digest is None:
            todo.append((source, stamp))
        else:
            ready.append(digest)
    if todo:
        ready += _digest(con, store, todo)
    for digest in sorted(ready, key=lambda d: d.url):
        skipped.merge(digest.counts, digest.examples)
    return ready
