"""Spend log → flat rows: windows, the time between cells, and sessions cut short."""

from __future__ import annotations

import time
from decimal import Decimal

from testmeters import TokenMeter

from nbcost.config import load_settings
from nbcost.export import dataframe, to_arrow
from nbcost.ledger import read_log
from nbcost.meters.base import Measurement, Meter
from nbcost.report import build_report
from nbcost.rows import rows_from_events
from nbcost.session import Session


class HeldMeter(Meter):
    """Like a GPU held all session: $36/hour ($0.01 a second) of held time, cells or not."""

    name = "gpu"

    def start(self, sink):
        self.sink = sink

    def measure(self, start, end):
        held = end - start
        return Measurement({"held_s": held}, Decimal("0.01") * Decimal(str(round(held, 6))))

    def checkpoint(self, start, end):
        m = self.measure(start, end)
        self.sink.log("gpu_checkpoint", {"meter": "gpu", "cumulative": True,
                                         "quantities": dict(m.quantities),
                                         "cost_usd": str(m.cost_usd)})


def test_top_level_rows_add_up_to_the_session_total():
    held, tokens = HeldMeter(), TokenMeter()
    session = Session(load_settings(), meters=[held, tokens])
    tokens.call("m", 1000)  # outside any cell
    cell = session.open_window("cell", execution_count=1)
    inner = session.open_window("track", label="inner")
    tokens.call("m", 500)
    time.sleep(0.05)
    session.close_window(inner.id)
    session.close_window(cell.id)
    time.sleep(0.05)  # held, idle, between cells
    session.close()

    rows = rows_from_events(read_log(session.ledger_path).events)
    kinds = [r["kind"] for r in rows]
    assert kinds == ["cell", "track", "between_cells"]
    between = rows[-1]
    assert between["tokens_cost_usd"] == Decimal("0.002")  # the call outside the cell
    assert between["gpu_held_s"] > 0.04  # the idle time before and after the cell
    top = [r for r in rows if not r["parent_id"]]
    assert sum(r["cost_usd"] for r in top) == session.total_usd
    assert build_report(rows).total.cost_usd == session.total_usd


def test_a_window_that_ended_interrupted_counts_its_calls_once():
    """`%cost reset` (or closing the session) ends a running cell as interrupted, with its
    figures in its end event: the calls the log saw inside it are not added a second time
    (only a window the log never saw end takes them from the log)."""
    tokens = TokenMeter()
    session = Session(load_settings(), meters=[tokens])
    cell = session.open_window("cell", execution_count=1)
    tokens.call("m", 1000)
    first_log = session.ledger_path
    session.reset()  # the cell is still running: it ends interrupted
    session.close_window(cell.id)
    session.close()

    events = read_log(first_log).events
    assert [e["status"] for e in events if e["event"] == "cell_end"] == ["interrupted"]
    (row,) = [r for r in rows_from_events(events) if r["kind"] == "cell"]
    assert row["status"] == "interrupted"
    assert row["tokens_calls"] == 1 and row["tokens_cost_usd"] == Decimal("0.002")
    assert row["cost_usd"] == Decimal("0.002")


def test_a_session_without_session_end_rebuilds_gpu_from_its_last_checkpoint():
    held = HeldMeter()
    session = Session(load_settings(), meters=[held])
    cell = session.open_window("cell", execution_count=1)
    session.close_window(cell.id)
    time.sleep(0.05)
    held.checkpoint(session.started_at, time.time())
    last = [e for e in read_log(session.ledger_path).events if e["event"] == "gpu_checkpoint"][-1]
    # No session.close(): the kernel was killed. The checkpoint is the last word.
    rows = rows_from_events(read_log(session.ledger_path).events)
    total = sum(r["cost_usd"] for r in rows if not r["parent_id"])
    assert total == Decimal(last["cost_usd"])


def test_arrow_and_dataframe_types():
    tokens = TokenMeter()
    session = Session(load_settings(), meters=[tokens])
    cell = session.open_window("cell", execution_count=1, tags={"team": "ml"})
    tokens.call("m", 3)
    session.close_window(cell.id)
    session.close()
    rows = rows_from_events(read_log(session.ledger_path).events)
    table = to_arrow(rows)
    assert str(table.schema.field("tokens_cost_usd").type) == "decimal128(38, 12)"
    assert str(table.schema.field("end").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("execution_count").type) == "int64"
    frame = dataframe(rows)
    assert frame["tokens_cost_usd"].iloc[0] == Decimal("0.000006")
    assert str(frame["start"].dt.tz) == "UTC"


def test_a_checkpoint_older_than_the_last_cell_leaves_no_negative_row():
    held = HeldMeter()
    session = Session(load_settings(), meters=[held])
    held.checkpoint(session.started_at, time.time())  # then the kernel runs a cell and dies
    cell = session.open_window("cell", execution_count=1)
    time.sleep(0.05)
    session.close_window(cell.id)
    session.flush()
    rows = rows_from_events(read_log(session.ledger_path).events)
    assert all((r.get("gpu_cost_usd") or 0) >= 0 and (r.get("gpu_held_s") or 0) >= 0 for r in rows)
    assert build_report(rows).total.cost_usd == rows[0]["cost_usd"] > 0
