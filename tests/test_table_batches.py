"""A long session's table built in Arrow batches as its log is read (nbcost.table_batches) is
exactly the table built row by row (rows.py, then to_arrow): the same rows, order, values and
types, on a real session's log. Where a finished row can still change (an amended window, a
window ended interrupted) it is the row-by-row table that is built."""

from __future__ import annotations

import json
import os
import shutil
import time
from decimal import Decimal

import pandas as pd
import pyarrow.parquet as pq
import pytest
from export_support import chat, openai_client
from fake_nvml import FakeGpu, live_meter
from llm_support import srv  # noqa: F401

import nbcost
from nbcost import table_batches
from nbcost.api import set_session
from nbcost.config import Settings
from nbcost.export import (dataframe, export_session, log_table, session_dataframe, session_rows,
                           session_table, to_arrow)
from nbcost.ledger import iter_log, read_log
from nbcost.meters.base import Usage
from nbcost.meters.llm import LlmMeter
from nbcost.rows import SpendTable, rows_from_events
from nbcost.session import Session
from nbcost.table_batches import BatchedSpendTable, NotStreamable

LATE_CALL = Usage(meter="llm", event="llm_call", key="gpt-4o-mini",
                  quantities={"calls": 1, "input_tokens": 1000, "output_tokens": 200},
                  cost_usd=Decimal("0.00027"), attributes={"provider": "openai"})


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Batches of a few rows: the scenario's rows span many, ends out of start order."""
    monkeypatch.setattr(table_batches, "BATCH_ROWS", 3)


@pytest.fixture
def live(srv, tmp_path):  # noqa: F811 - the fixture from llm_support
    """A live session on the fake GPU and the real openai SDK (loopback server), as a user's
    notebook leaves it: cells with nested track() blocks three deep, calls inside and between
    them, top-level blocks, and a cell still running (with a call of its own)."""
    fake = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
    settings = Settings(data_dir=tmp_path, user="ada", team="ml", project="search",
                        gpu_rate_usd_per_hour=Decimal("2.5"), self_hosted_auto=False)
    session = Session(settings=settings, meters=[LlmMeter(), live_meter(fake, checkpoint_s=0.2)],
                      notebook={"notebook_path": "work/long.ipynb", "notebook_id": "nb-1"})
    old = set_session(session)
    client = openai_client(srv, input_tokens=1000, output_tokens=50)
    try:
        for number in (1, 2):
            cell = session.open_window("cell", label=f"step {number}", tags={"run": str(number)},
                                       cell_id=f"c{number}", execution_count=number)
            now = time.time()
            fake.busy(now, now + 0.05)
            chat(client, "gpt-4o-mini")
            with nbcost.track("outer", tags={"part": "a"}):
                chat(client, "gpt-4o-mini")
                with nbcost.track("inner"), nbcost.track("innermost"):
                    chat(client, "no-such-model-xyz")  # unpriced
            for _ in range(4):
                with nbcost.track("loop"):
                    pass
            session.close_window(cell.id)
            chat(client, "gpt-4o")  # between cells
        for _ in range(5):  # top-level blocks, as a script's
            with nbcost.track("script block"):
                pass
        running = session.open_window("cell", cell_id="c3", execution_count=3)
        with nbcost.track("done inside the running cell"):
            chat(client, "gpt-4o-mini")
        chat(client, "gpt-4o-mini")  # the running cell's own, so far
        time.sleep(0.3)  # a GPU checkpoint or two
        session.meters["gpu"].stop()  # its last checkpoint: the log stays as it is from here
        yield session, running
    finally:
        set_session(old)
        session.close()


def row_by_row(path, running=()):
    table = SpendTable(running)
    for event in iter_log(path):
        table.add(event)
    return to_arrow(table.rows())


def batched(path, running=()):
    table = BatchedSpendTable(running)
    for event in iter_log(path):
        table.add(event)
    return table.table()


def assert_same_table(new, old):
    assert new.schema == old.schema
    assert new.num_rows == old.num_rows
    for name in old.column_names:
        assert new.column(name).equals(old.column(name)), name


def test_a_running_sessions_table_in_batches_is_the_row_by_row_table(live, tmp_path):
    session, running = live
    session.flush()
    old = row_by_row(session.ledger_path, {running.id})
    new = batched(session.ledger_path, {running.id})  # raises NotStreamable if it can't
    assert_same_table(new, old)
    rows = old.to_pylist()
    kinds = [r["kind"] for r in rows]
    assert kinds.count("cell") == 3 and kinds.count("track") == 2 * 7 + 5 + 1
    assert kinds[-1] == "between_cells"
    assert [r["status"] for r in rows if r["window_id"] == running.id] == ["running"]
    assert any(r["gpu_held_s"] for r in rows) and any(r["llm_calls"] for r in rows)
    assert [r["start"] for r in rows[:-1]] == sorted(r["start"] for r in rows[:-1])
    # What a user gets: the DataFrame, equal to what the rows give, column for column.
    pd.testing.assert_frame_equal(session_dataframe(session), dataframe(session_rows(session)),
                                  check_exact=True)
    path, count = export_session(session, tmp_path / "live.parquet")  # Arrow all the way too
    assert count == old.num_rows and pq.read_table(path).equals(old)


def test_an_amended_window_and_an_interrupted_one_give_the_row_by_row_table(live):
    session, running = live
    first_cell = next(r for r in session.records if r.info.kind == "cell").info.id
    session.fold_remote(LATE_CALL, first_cell, {"kind": "process", "pid": 4321})
    session.flush()
    with pytest.raises(NotStreamable):
        batched(session.ledger_path, {running.id})
    new = session_table(session)
    assert_same_table(new, row_by_row(session.ledger_path, {running.id}))
    amended = next(r for r in new.to_pylist() if r["window_id"] == first_cell)
    assert "amended" in amended["flags"]
    pd.testing.assert_frame_equal(session_dataframe(session), dataframe(session_rows(session)),
                                  check_exact=True)
    session.reset()  # `%cost reset`: the running cell ends interrupted, in the old log
    old_log = read_log(session.ledger_path).events[0]["parent_session_id"]
    path = next(p for p in session.ledger_path.parent.glob(f"{old_log}.jsonl"))
    assert_same_table(log_table(path), row_by_row(path))
    assert "interrupted" in log_table(path).column("status").to_pylist()


def test_a_kernel_that_died_mid_cell_leaves_the_same_table_both_ways(live, tmp_path):
    session, running = live
    session.flush()
    dead = tmp_path / "dead.jsonl"  # the log as a kill -9 left it: the cell never ended
    shutil.copy(session.ledger_path, dead)
    new = batched(dead)
    assert_same_table(new, to_arrow(rows_from_events(read_log(dead).events)))
    row = next(r for r in new.to_pylist() if r["window_id"] == running.id)
    assert row["status"] == "interrupted" and row["llm_calls"] == 2  # its calls, from the log


def test_windows_that_start_alike_keep_the_row_by_row_order(live, tmp_path):
    """Rows are sorted by start, a stable sort: windows with one start (a coarse clock, a log
    written by hand) stay in the order they ended, and a missing start comes first."""
    session, _running = live
    session.flush()
    events = read_log(session.ledger_path).events
    shared = next(e["started_at"] for e in events if e["event"] == "cell_start")
    for event in events:
        if event.get("kind") == "track":
            event["started_at"] = shared
        if event.get("label") == "inner":
            event.pop("started_at")
    path = tmp_path / "alike.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert_same_table(batched(path), row_by_row(path))
    labels = [r["label"] for r in batched(path).to_pylist()]
    assert labels[:2] == ["inner", "inner"]
