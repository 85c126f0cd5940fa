"""A stand-in for the report engine's ``load_spend`` while it is being written: the tables it
documents (``windows``, ``llm_calls``, ``budget_events``, ``notebook_cells``) in DuckDB, built
from the spend logs with ``read_logs`` and ``rows_from_events``. Tests only."""

from __future__ import annotations

import json
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
TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
          "reasoning_tokens")


@dataclass
class Skipped:
    lines: list[str]

    def summary(self) -> str | None:
        return "; ".join(self.lines) or None


@dataclass
class Spend:
    con: object
    skipped: Skipped


def _notebook_cells(paths: list[Path], unreadable: list[str]) -> list[dict]:
    cells = []
    for path in sorted(p for folder in paths for p in folder.rglob("*.ipynb")):
        try:
            notebook = json.loads(path.read_text())
        except ValueError:
            unreadable.append(f"{path}: not JSON")
            continue
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] == "code":
                cells.append({"notebook_key": str(path), "notebook_path": str(path),
                              "cell_index": index, "cell_id": cell.get("id"),
                              "execution_count": cell.get("execution_count"),
                              "has_record": "nbcost" in cell.get("metadata", {})})
    return cells


def load_spend(paths, since=None, until=None, filters=None) -> Spend:
    paths = [Path(p) for p in paths]
    contents = read_logs(paths)
    rows = rows_from_events(contents.events)
    keys = [r.get("notebook_id") or r.get("notebook_path") for r in rows]
    table = to_arrow(rows)
    table = table.append_column("notebook_key", pa.array(keys, pa.string()))
    table = table.append_column("notebook", pa.array([r.get("notebook_path") for r in rows], pa.string()))
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
        who = {k: e.get(k) for k in ("user", "team", "project")}
        if e["event"] == "llm_call" and e.get("meter") == "llm":
            q, attributes = e.get("quantities") or {}, e.get("attributes") or {}
            calls.append({**base, "window_id": (e.get("window_ids") or [None])[-1], **who,
                          "notebook_key": e.get("notebook_id") or e.get("notebook_path"),
                          "model": e.get("key"), "provider": attributes.get("provider"),
                          **{k: int(q.get(k) or 0) for k in TOKENS},
                          "cost_usd": None if e.get("cost_usd") is None else Decimal(e["cost_usd"]),
                          "unpriced": e.get("cost_usd") is None,
                          "estimated": "estimated" in (e.get("flags") or []),
                          "error": attributes.get("error_type")})
        elif e["event"] == "budget":
            budgets.append({**base, **who, "notebook_path": e.get("notebook_path"),
                            "action": e.get("action"), "scope": e.get("scope"),
                            **{k: None if e.get(k) is None else Decimal(e[k])
                               for k in ("budget_usd", "spent_usd")},
                            "threshold": None if e.get("threshold") is None else float(e["threshold"])})
    unreadable = list(contents.warnings)
    cells = _notebook_cells(paths, unreadable)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("windows_arrow", table)
    con.execute("CREATE TABLE windows AS SELECT * FROM windows_arrow")
    tables = {
        "llm_calls": """ts TIMESTAMPTZ, session_id VARCHAR, window_id VARCHAR, "user" VARCHAR,
            team VARCHAR, project VARCHAR, notebook_key VARCHAR, model VARCHAR, provider VARCHAR,
            input_tokens BIGINT, cache_read_tokens BIGINT, cache_write_tokens BIGINT,
            output_tokens BIGINT, reasoning_tokens BIGINT, cost_usd DECIMAL(38,18),
            unpriced BOOLEAN, estimated BOOLEAN, error VARCHAR""",
        "budget_events": """ts TIMESTAMPTZ, session_id VARCHAR, "user" VARCHAR, team VARCHAR,
            project VARCHAR, notebook_path VARCHAR, action VARCHAR, scope VARCHAR,
            budget_usd DECIMAL(38,18), spent_usd DECIMAL(38,18), threshold DOUBLE""",
        "notebook_cells": """notebook_key VARCHAR, notebook_path VARCHAR, cell_index BIGINT,
            cell_id VARCHAR, execution_count BIGINT, has_record BOOLEAN""",
    }
    for name, rows_ in (("llm_calls", calls), ("budget_events", budgets), ("notebook_cells", cells)):
        con.execute(f"CREATE TABLE {name} ({tables[name]})")
        if rows_:
            con.executemany(f"INSERT INTO {name} VALUES ({','.join('?' * len(rows_[0]))})",
                            [list(r.values()) for r in rows_])
    return Spend(con, Skipped(unreadable))
