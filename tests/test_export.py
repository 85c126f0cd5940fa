"""One schema whatever the machine: every writer follows nbcost.schema, so exports of a GPU
session and of a session without a GPU concatenate without casts and read back typed."""

from __future__ import annotations

import json
import os
import time
import warnings
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_nvml import FakeGpu, FakeNvml

from nbcost.config import Settings
from nbcost.export import dataframe, export_rows, export_session, read_export, to_arrow
from nbcost.ledger import read_log
from nbcost.meters.base import Usage
from nbcost.meters.gpu import GpuMeter
from nbcost.records import compact_meter
from nbcost.rows import rows_from_events
from nbcost.schema import COLUMNS, arrow_schema
from nbcost.session import Session


def llm_call(session: Session, model: str, cost: str | None) -> None:
    session.record(Usage(meter="llm", event="llm_call", key=model,
                         quantities={"calls": 1, "input_tokens": 100, "output_tokens": 20},
                         cost_usd=None if cost is None else Decimal(cost)))


def run_session(tmp_path, gpus: list[FakeGpu]) -> Session:
    """A short session: an LLM call, a cell with a GPU burst (when there is a GPU), a pause."""
    meter = GpuMeter(FakeNvml(gpus, time.time), environ={}, tick_s=0.05,
                     pid_exists_here=lambda pid: True, cuda_in_process=lambda now: True)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    try:
        llm_call(session, "gpt-4o", "0.001")  # outside any cell
        cell = session.open_window("cell", cell_id="c1", execution_count=1, tags={"team": "ml"})
        now = time.time()
        for gpu in gpus:
            gpu.busy(now, now + 0.2)
        llm_call(session, "mystery-model", None)
        time.sleep(0.4)
        session.close_window(cell.id)
        time.sleep(0.2)
    finally:
        session.close()
    return session


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sessions")
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 1, mem_bytes=3 << 30)
    with_gpu = run_session(tmp_path / "gpu", [gpu])
    without = run_session(tmp_path / "cpu", [])
    return [rows_from_events(read_log(s.ledger_path).events) for s in (with_gpu, without)]


def test_the_declared_schema_follows_the_list_of_quantities():
    names = [c.name for c in COLUMNS]
    assert {"gpu_held_s", "gpu_idle_between_s", "gpu_cost_usd", "llm_calls", "llm_models"} <= set(names)
    schema = arrow_schema(COLUMNS)
    assert str(schema.field("execution_count").type) == "int64"
    assert str(schema.field("llm_calls").type) == "int64"
    assert str(schema.field("gpu_mem_peak_bytes").type) == "int64"
    assert str(schema.field("gpu_held_s").type) == "double"
    assert str(schema.field("cost_usd").type) == "decimal128(38, 12)"


def test_parquet_of_a_gpu_and_a_no_gpu_session_concatenate_without_casts(two_sessions, tmp_path):
    gpu_rows, cpu_rows = two_sessions
    assert any(r.get("gpu_held_s") for r in gpu_rows)
    assert not any(r.get("gpu_held_s") for r in cpu_rows)  # this machine has no GPU
    tables = []
    for name, rows in (("gpu", gpu_rows), ("cpu", cpu_rows)):
        path = export_rows(rows, tmp_path / f"{name}.parquet")
        tables.append(pq.read_table(path))
    assert tables[0].schema == tables[1].schema == arrow_schema(COLUMNS)
    both = pa.concat_tables(tables)  # no promotion, no casts: the schemas are identical
    assert both.num_rows == len(gpu_rows) + len(cpu_rows)


def test_dataframes_of_both_sessions_concatenate_with_the_declared_dtypes(two_sessions):
    frames = [dataframe(rows) for rows in two_sessions]
    assert dict(frames[0].dtypes) == dict(frames[1].dtypes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas warns when all-NA columns change a dtype
        both = pd.concat(frames, ignore_index=True)
    assert dict(both.dtypes) == dict(frames[0].dtypes)
    assert str(both["execution_count"].dtype) == "Int64"
    assert str(both["llm_calls"].dtype) == "Int64"
    assert str(both["gpu_held_s"].dtype) == "float64"
    assert str(both["start"].dt.tz) == "UTC"
    assert all(isinstance(v, Decimal) for v in both["cost_usd"])
    cell = both[both["kind"] == "cell"]
    assert list(cell["execution_count"]) == [1, 1]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_every_format_reads_back_with_the_declared_types(two_sessions, tmp_path, fmt):
    for n, rows in enumerate(two_sessions):
        path = export_rows(rows, tmp_path / f"s{n}.{fmt}")
        table = read_export(path)
        expected = to_arrow(rows)
        assert table.schema == expected.schema == arrow_schema(COLUMNS)
        assert table.equals(expected), (fmt, _columns_that_differ(table, expected))


def test_an_unpriced_model_costs_null_not_zero(two_sessions):
    gpu_rows, _ = two_sessions
    cell = next(r for r in gpu_rows if r["kind"] == "cell")
    assert cell["unpriced"]
    models = json.loads(cell["llm_models"])
    assert models["mystery-model"]["cost_usd"] is None
    assert models["mystery-model"]["unpriced"] is True


def test_by_model_keeps_a_partly_priced_models_priced_part():
    from nbcost.records import Tally

    tally = Tally()
    for cost in (Decimal("0.002"), None, None):
        tally.add(Usage("llm", "llm_call", "gpt-4o", {"calls": 1}, cost))
    tally.add(Usage("llm", "llm_call", "mystery", {"calls": 1}, None))
    by_model = compact_meter("llm", tally.freeze())["by_model"]
    assert by_model["gpt-4o"] == {"calls": 3, "cost_usd": "0.002", "unpriced": True}
    assert by_model["mystery"] == {"calls": 1, "cost_usd": None, "unpriced": True}


def test_the_window_running_the_export_is_running_not_interrupted(tmp_path):
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[])
    try:
        done = session.open_window("cell", execution_count=1)
        session.close_window(done.id)
        exporting = session.open_window("cell", execution_count=2)
        llm_call(session, "gpt-4o", "0.003")
        path, _ = export_session(session, tmp_path / "live.csv")
        rows = {r["execution_count"]: r for r in read_export(path).to_pylist()}
        assert rows[1]["status"] == "ok"
        assert rows[2]["status"] == "running" and rows[2]["end"] is None
        assert rows[2]["llm_cost_usd"] == Decimal("0.003")  # what it has spent so far
        session.close_window(exporting.id)
    finally:
        session.close()


def test_a_window_the_kernel_died_in_is_still_interrupted(tmp_path):
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[])
    session.open_window("cell", execution_count=1)
    session.flush()  # no close: the kernel died
    rows = rows_from_events(read_log(session.ledger_path).events)
    assert [r["status"] for r in rows if r["kind"] == "cell"] == ["interrupted"]


def _columns_that_differ(a, b):
    return [n for n in a.column_names if not a.column(n).equals(b.column(n))]


def test_focus_is_written_from_events_not_from_the_flat_table(tmp_path):
    from nbcost.errors import ConfigError

    with pytest.raises(ConfigError, match="built from spend-log events"):
        export_rows([], tmp_path / "f.csv", "focus")


def test_cli_export_writes_the_flat_table_of_spend_logs(tmp_path, capsys):
    from testmeters import TokenMeter

    from nbcost.cli import main

    tokens = TokenMeter()
    session = Session(settings=Settings(data_dir=tmp_path / "home", user="t"), meters=[tokens])
    try:
        info = session.open_window("cell", cell_id="c1", execution_count=1)
        tokens.call("m", 1000)
        session.close_window(info.id)
        expected = read_export(export_session(session, tmp_path / "live.parquet")[0])
    finally:
        session.close()
    out = tmp_path / "cli.parquet"
    assert main(["export", "--format", "parquet", str(session.ledger_path), "-o", str(out)]) == 0
    assert "Wrote" in capsys.readouterr().out
    table = read_export(out)
    assert table.schema == expected.schema

    def cells(t):
        return [(r["window_id"], r["cost_usd"]) for r in t.to_pylist() if r["kind"] == "cell"]

    assert cells(table) == cells(expected) and cells(table)[0][1] > 0
