"""The GPU meter inside the real Session: records, session totals and the spend log."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal

import pytest
from fake_nvml import FakeGpu, live_meter

from nbcost.config import Settings
from nbcost.ledger import read_log
from nbcost.session import Session


def test_a_cell_gets_gpu_figures_and_the_session_idle_time_and_checkpoints(tmp_path):
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=3 << 30)
    meter = live_meter(gpu, checkpoint_s=0.3)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    try:
        time.sleep(0.6)  # held before the cell: idle between cells
        info = session.open_window("cell", cell_id="c1", execution_count=1)
        now = time.time()
        gpu.busy(now, now + 0.4)
        time.sleep(0.8)
        record = session.close_window(info.id)
        time.sleep(0.4)
        totals = session.totals()
    finally:
        session.close()
    figures = record.meters["gpu"]
    assert figures.quantities["held_s"] == pytest.approx(record.wall_s, abs=0.1)
    assert figures.quantities["busy_s"] == pytest.approx(0.4, abs=0.25)
    assert figures.quantities["mem_peak_bytes"] == 3 << 30
    assert figures.cost_usd > 0 and not figures.unpriced
    compact = record.compact()["gpu"]
    assert {"held_s", "busy_s", "sm_s", "energy_j", "mem_peak_bytes", "cost_usd"} <= set(compact)
    assert totals["gpu"].quantities["idle_between_s"] == pytest.approx(1.0, abs=0.4)
    session.flush()
    events = [json.loads(line) for line in session.ledger_path.read_text().splitlines()]
    checkpoints = [e for e in events if e.get("event") == "gpu_checkpoint"]
    assert len(checkpoints) >= 3
    held = [event["quantities"]["held_s"] for event in checkpoints]
    assert held == sorted(held) and held[-1] > 1.0
    costs = [Decimal(event["cost_usd"]) for event in checkpoints]
    assert costs == sorted(costs) and costs[-1] > 0
    assert checkpoints[-1]["held_now"] is False  # the final one, when the session closed


def test_a_scripts_track_block_is_a_window_for_the_session_waste(tmp_path):
    # Outside IPython there are no cells: a top-level `with nbcost.track()` is the window.
    import nbcost
    from nbcost.api import set_session

    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5)
    meter = live_meter(gpu)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    old = set_session(session)
    try:
        time.sleep(0.3)
        with nbcost.track("train") as t:
            now = time.time()
            gpu.busy(now, now + 0.6, util=50)  # half busy: the rest of the block is stall
            time.sleep(0.8)
        time.sleep(0.3)
        q = session.totals()["gpu"].quantities
    finally:
        set_session(old)
        session.close()
    block_s = t.wall_s
    assert q["idle_between_s"] < q["held_s"] - block_s / 2  # the block is not idle time
    assert q["stall_s"] > block_s / 4  # it was stalled more than half of its time
    assert q["idle_between_s"] + q["stall_s"] <= q["held_s"] + 1e-6  # nothing counted twice


def test_a_killed_gpu_session_is_rebuilt_from_the_meters_last_checkpoint(tmp_path):
    from nbcost.ledger import read_log
    from nbcost.rows import rows_from_events

    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5)
    meter = live_meter(gpu, checkpoint_s=0.3)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    info = session.open_window("cell", execution_count=1)
    time.sleep(0.3)
    session.close_window(info.id)
    time.sleep(0.5)
    session.close()
    # The kernel was killed: no session_end, the final checkpoint is the last word on the GPU.
    events = [e for e in read_log(session.ledger_path).events if e["event"] != "session_end"]
    last = [e for e in events if e["event"] == "gpu_checkpoint"][-1]
    rows = rows_from_events(events)
    top = [r for r in rows if not r["parent_id"]]
    assert sum(r["gpu_cost_usd"] for r in top) == Decimal(last["cost_usd"]) > 0
    between = rows[-1]
    assert between["kind"] == "between_cells" and between["gpu_cost_usd"] > 0
    assert between["gpu_held_s"] == pytest.approx(
        last["quantities"]["held_s"] - rows[0]["gpu_held_s"])


def _gated_session(tmp_path):
    """A session over a fake GPU whose energy reads wait on a gate the test opens."""
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5)
    meter = live_meter(gpu)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    return gpu, meter, session


def test_a_cell_end_does_not_wait_for_the_gpu_read_and_its_record_is_exact(tmp_path, wait_until):
    gpu, meter, session = _gated_session(tmp_path)
    finals = []
    try:
        info = session.open_window("cell", cell_id="c1", execution_count=1)
        gpu.busy(time.time(), time.time() + 0.3)
        time.sleep(0.7)  # (edge reads are at least 0.5 s apart)
        assert meter.sampler.edge_done.wait(10)  # the start's read is in
        gate = meter._nvml.hold("nvmlDeviceGetTotalEnergyConsumption")
        # The end's read is stuck in NVML: the cell's thread goes on without its record.
        assert session.close_window(info.id, on_final=finals.append) is None
        assert finals == [] and not session.is_open(info.id)
        gate.set()
        assert wait_until(lambda: finals, timeout=10)
        record = finals[0]
        exact = meter.measure(record.info.start, record.info.end)
        assert record.meters["gpu"].quantities == dict(exact.quantities)
        assert record.meters["gpu"].quantities["busy_s"] == pytest.approx(0.3, abs=0.25)
        assert record.meters["gpu"].quantities["energy_j"] > 0
        assert record.meters["gpu"].cost_usd == exact.cost_usd > 0
        session.flush()
        ends = [e for e in read_log(session.ledger_path).events if e["event"] == "cell_end"]
        assert len(ends) == 1 and Decimal(ends[0]["cost_usd"]) == record.cost_usd
    finally:
        session.close()
    assert len(finals) == 1


def test_a_window_still_waiting_is_finished_once_by_flush(tmp_path):
    """A read that never lands (a stuck NVML call) does not lose the cell: ``flush`` (and a
    reset or close) finish it there, once, and the late read finishes nothing twice."""
    gpu, meter, session = _gated_session(tmp_path)
    finals = []
    try:
        info = session.open_window("cell", cell_id="c1", execution_count=1)
        assert meter.sampler.edge_done.wait(10)
        gate = meter._nvml.hold("nvmlDeviceGetTotalEnergyConsumption")
        assert session.close_window(info.id, on_final=finals.append) is None
        session.flush()
        assert len(finals) == 1 and finals[0].info.id == info.id
        gate.set()
        assert meter.sampler.edge_done.wait(10)
        session.flush()
        ends = [e for e in read_log(session.ledger_path).events if e["event"] == "cell_end"]
        assert [e["window_id"] for e in ends] == [info.id]
    finally:
        session.close()
    assert len(finals) == 1


def test_the_lab_extensions_final_for_a_gpu_cell_waits_for_its_exact_record(tmp_path, wait_until):
    """A cell watcher (the comm behind the badge) is told of a GPU cell's end once, when the
    end's read lands: with the exact figures, not the ones at the moment the cell ended."""
    gpu, meter, session = _gated_session(tmp_path)
    ended = []

    class Watcher:
        def cell_started(self, info):
            pass

        def cell_ended(self, record):
            ended.append(record)

        def session_started(self):
            pass

    session.watch_cells(Watcher())
    try:
        window_id = session.open_cell("c1", 1)
        gpu.busy(time.time(), time.time() + 0.3)
        time.sleep(0.7)  # (edge reads are at least 0.5 s apart)
        assert meter.sampler.edge_done.wait(10)
        gate = meter._nvml.hold("nvmlDeviceGetTotalEnergyConsumption")
        session.close_cell(window_id, "ok")  # what a cell without %%cost does
        assert ended == [] and not session.is_open(window_id)
        gate.set()
        assert wait_until(lambda: ended, timeout=10)
        exact = meter.measure(ended[0].info.start, ended[0].info.end)
        assert ended[0].meters["gpu"].quantities == dict(exact.quantities)
        assert ended[0].meters["gpu"].quantities["busy_s"] > 0
        session.flush()
    finally:
        session.close()
    assert [r.info.id for r in ended] == [window_id]
