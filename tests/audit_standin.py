"""A stand-in for the report engine's ``load_spend`` while it is being written: the same
tables (``windows``, ``llm_calls``, ``budget_events``) in DuckDB, built from the spend logs with
``read_logs`` and ``rows_from_events``. Tests only."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa

from nbcost.export import to_arrow
from nbcost.ledger import read_logs
from nbcost.rows import parse_ts, rows_from_events

WASTES = ("idle_between", "stall", "underfill")
MONEY = pa.decimal128(38, 18)


@dataclass
class Spend:
    con: object
    skipped: object = None


def load_spend(paths, since=None, until=None, filters=None) -> Spend:
    contents = read_logs([Path(p) for p in paths])
    rows = rows_from_events(contents.events)
    for row in rows:
        row["notebook_key"] = row.get("notebook_id") or row.get("notebook_path")
    table = to_arrow(rows)
    table = table.append_column("notebook_key", pa.array([r["notebook_key"] for r in rows], pa.string()))
    for waste in WASTES:  # each waste's share of the row's held time, priced like it
        values = []
        for row in rows:
            held, cost = row.get("gpu_held_s") or 0, row.get("gpu_cost_usd") or Decimal(0)
            seconds = row.get(f"gpu_{waste}_s") or 0
            values.append(cost * Decimal(repr(seconds / held)) if held else Decimal(0))
        table = table.append_column(f"gpu_{waste}_usd", pa.array(
            [v.quantize(Decimal("1e-18")) for v in values], MONEY))
    calls, budgets = [], []
    for e in contents.events:
        base = {"ts": parse_ts(e["ts"]), "session_id": e.get("session_id")}
        if e["event"] == "llm_call" and e.get("meter") == "llm":
            q = e.get("quantities") or {}
            calls.append({**base, "window_id": (e.get("window_ids") or [None])[-1],
                          "user": e.get("user"), "team": e.get("team"), "project": e.get("project"),
                          "notebook_key": e.get("notebook_id") or e.get("notebook_path"),
                          "model": e.get("key"), "provider": (e.get("attributes") or {}).get("provider"),
                          **{k: int(q.get(k) or 0) for k in ("input_tokens", "cache_read_tokens",
                                                              "cache_write_tokens", "output_tokens",
                                                              "reasoning_tokens")},
                          "cost_usd": None if e.get("cost_usd") is None else Decimal(e["cost_usd"]),
                          "unpriced": e.get("cost_usd") is None,
                          "estimated": "estimated" in (e.get("flags") or []),
                          "error": bool(q.get("errors"))})
        elif e["event"] == "budget":
            budgets.append({**base, "action": e.get("action"), "scope": e.get("scope"),
                            **{k: None if e.get(k) is None else Decimal(e[k])
                               for k in ("budget_usd", "spent_usd", "threshold")}})
    con = duckdb.connect()
    con.register("windows_arrow", table)
    con.execute("CREATE TABLE windows AS SELECT * FROM windows_arrow")
    con.execute("""CREATE TABLE llm_calls (ts TIMESTAMPTZ, session_id VARCHAR, window_id VARCHAR,
        "user" VARCHAR, team VARCHAR, project VARCHAR, notebook_key VARCHAR, model VARCHAR,
        provider VARCHAR, input_tokens BIGINT, cache_read_tokens BIGINT, cache_write_tokens BIGINT,
        output_tokens BIGINT, reasoning_tokens BIGINT, cost_usd DECIMAL(38,18), unpriced BOOLEAN,
        estimated BOOLEAN, error BOOLEAN)""")
    if calls:
        con.executemany("INSERT INTO llm_calls VALUES (" + ",".join("?" * 18) + ")",
                        [list(c.values()) for c in calls])
    con.execute("""CREATE TABLE budget_events (ts TIMESTAMPTZ, session_id VARCHAR, action VARCHAR,
        scope VARCHAR, budget_usd DECIMAL(38,18), spent_usd DECIMAL(38,18),
        threshold DECIMAL(38,18))""")
    if budgets:
        con.executemany("INSERT INTO budget_events VALUES (?,?,?,?,?,?,?)",
                        [list(b.values()) for b in budgets])
    return Spend(con, contents.warnings)
