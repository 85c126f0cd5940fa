"""The GPU meter's figures against a scripted fake NVML: edges, duty cycles, buffer reads,
energy, SM weighting, memory, multi-GPU, cost and waste."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from fake_nvml import Clock, FakeGpu, FakeNvml, RecordingSink, Window, drive

from nbcost.meters.base import Meter
from nbcost.meters.gpu import GpuMeter
from nbcost.records import MeterTotals, compact_meter

PID = 4242
GIB = 1 << 30
H200_RATE = Decimal("3.59")


@dataclass
class Settings:
    gpu_rate_usd_per_hour: Decimal | None = None
    gpu_rates: dict = field(default_factory=dict)


def start_meter(gpus, *, env=None, settings=None, local_pids=None, cuda_loaded=True, now=1000.0):
    """A meter on fake GPUs with a scripted clock; the sampler is polled by ``drive``."""
    clock = Clock(now)
    nvml = FakeNvml(gpus, clock)
    local = {PID} if local_pids is None else local_pids
    meter = GpuMeter(nvml, environ=env or {}, clock=clock, pid=PID, threaded=False,
                     pid_exists_here=lambda pid: pid in local or local_pids is None,
                     cuda_in_process=lambda now: cuda_loaded)
    sink = RecordingSink(settings)
    meter.start(sink)
    return meter, clock, nvml, sink


def h200() -> FakeGpu:
    return FakeGpu("GPU-aaaa").process(PID, 1000.0, mem_bytes=2 * GIB)


def test_the_contract():
    meter = GpuMeter()
    assert isinstance(meter, Meter) and meter.name == "gpu"


@pytest.mark.parametrize(
    ("burst", "window"),
    [
        ((1001.0, 1002.0), (1001.0, 1002.0)),  # on sample boundaries
        ((1001.05, 1002.05), (1001.05, 1002.05)),  # mid-sample edges
        ((1001.13, 1001.43), (1001.13, 1001.43)),  # shorter than two samples
        ((1001.13, 1004.13), (1000.5, 1005.0)),  # idle margins around the burst
    ],
)
def test_busy_seconds_of_an_isolated_burst(burst, window):
    gpu = h200().busy(*burst)
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1008.0)
    m = meter.measure(*window)
    assert m.quantities["busy_s"] == pytest.approx(burst[1] - burst[0], abs=1e-6)
    assert m.quantities["held_s"] == pytest.approx(window[1] - window[0])
    assert m.detail["sample_period_s"] == pytest.approx(0.2)


def test_a_window_inside_a_burst_gets_only_its_share():
    meter, clock, _, _ = start_meter([h200().busy(1001.0, 1004.0)])
    drive(meter, clock, 1008.0)
    assert meter.measure(1001.5, 1002.5).quantities["busy_s"] == pytest.approx(1.0)
    assert meter.measure(1003.9, 1004.3).quantities["busy_s"] == pytest.approx(0.1)


@pytest.mark.parametrize("on_s", [0.1, 0.4])
def test_half_duty_cycles(on_s):
    gpu = h200()
    t = 1001.0
    while t < 1005.0:
        gpu.busy(t, t + on_s)
        t += 2 * on_s
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1009.0)
    m = meter.measure(1001.0, 1005.0)
    truth = gpu.busy_seconds(1001.0, 1005.0)
    assert truth == pytest.approx(2.0)
    assert m.quantities["busy_s"] == pytest.approx(truth, abs=0.2)  # one sample period


def test_partial_utilization_is_integrated():
    meter, clock, _, _ = start_meter([h200().busy(1001.0, 1003.0, util=30)])
    drive(meter, clock, 1006.0)
    assert meter.measure(1000.0, 1006.0).quantities["busy_s"] == pytest.approx(0.6, abs=0.01)


def test_rare_reads_lose_nothing_while_the_buffer_holds():
    gpu = h200().busy(1001.0, 1009.0)  # 14 s of buffer, read once after 12 s
    meter, clock, nvml, _ = start_meter([gpu])
    drive(meter, clock, 1012.0, tick_s=12.0)
    assert len(nvml.calls_to("nvmlDeviceGetSamples")) == 2  # the probe and one read
    assert meter.measure(1000.0, 1012.0).quantities["busy_s"] == pytest.approx(8.0)


def test_a_wrapped_buffer_loses_samples_and_does_not_guess_them():
    gpu = h200().busy(1001.0, 1009.0)
    gpu.buffer_len = 20  # 4 s
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1010.0, tick_s=10.0)
    busy = meter.measure(1000.0, 1010.0).quantities["busy_s"]
    assert busy == pytest.approx(3.0, abs=0.01)  # only 1006–1009 was still in the buffer


def test_last_seen_means_frequent_reads_count_each_sample_once():
    gpu = h200().busy(1001.0, 1003.0)
    meter, clock, nvml, _ = start_meter([gpu])
    for _ in range(60):  # edges every 0.5 s force extra buffer reads
        meter.window_started(Window("w", "track", clock.now))
        drive(meter, clock, clock.now + 0.5)
    assert len(nvml.calls_to("nvmlDeviceGetSamples")) > 40
    assert meter.measure(1000.0, 1030.0).quantities["busy_s"] == pytest.approx(2.0)


def test_energy_from_counter_differences_interpolated_at_edges():
    gpu = h200().busy(1002.0, 1004.0, power_w=600)  # idle 100 W
    meter, clock, _, _ = start_meter([gpu])
    for edge in (1001.0, 1002.0, 1004.0, 1005.0):  # cells at these edges: reads on demand
        drive(meter, clock, edge)
        meter.window_started(Window(f"w{edge}", "track", edge))
    drive(meter, clock, 1010.0)
    m = meter.measure(1001.0, 1005.0)
    truth = gpu.energy_j(1005.0) - gpu.energy_j(1001.0)  # 4 s × 100 W + 2 s × 500 W
    assert truth == pytest.approx(1400.0)
    assert m.quantities["energy_j"] == pytest.approx(truth, abs=0.1 * 600 * 2)
    assert m.quantities["power_avg_w"] == pytest.approx(m.quantities["energy_j"] / 4.0)
    assert m.detail["energy_uncertainty_j"] > 0


def test_sm_weighted_seconds_and_underfill():
    gpu = h200().busy(1001.0, 1005.0, sm=1)  # a kernel on ~1% of the SMs
    meter, clock, nvml, _ = start_meter([gpu])
    drive(meter, clock, 1008.0)
    assert len(nvml.calls_to("nvmlGpmSampleGet")) >= 8
    assert len(nvml.calls_to("nvmlGpmSampleAlloc")) == 2 == nvml.gpm_live  # two, reused
    q = meter.measure(1000.0, 1008.0).quantities
    assert q["busy_s"] == pytest.approx(4.0)
    assert q["sm_s"] == pytest.approx(0.04, abs=0.01)
    assert q["underfill_s"] == pytest.approx(q["busy_s"] - q["sm_s"])
    assert q["stall_s"] == pytest.approx(8.0 - 4.0)


def test_peak_memory_is_this_process_only():
    gpu = FakeGpu("GPU-aaaa").process(PID, 1000.0, 1003.0, mem_bytes=2 * GIB)
    gpu.process(PID, 1003.0, 1005.0, mem_bytes=6 * GIB).process(PID, 1005.0, mem_bytes=1 * GIB)
    gpu.process(777, 1000.0, mem_bytes=40 * GIB)
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1008.0)
    assert meter.measure(1000.5, 1002.5).quantities["mem_peak_bytes"] == 2 * GIB
    assert meter.measure(1000.5, 1006.0).quantities["mem_peak_bytes"] == 6 * GIB
    assert meter.measure(1006.0, 1007.0).quantities["mem_peak_bytes"] == 1 * GIB


def test_held_follows_the_process_context():
    gpu = FakeGpu("GPU-aaaa").process(PID, 1002.0, 1006.0)
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1010.0)
    m = meter.measure(1000.0, 1010.0)
    assert m.quantities["held_s"] == pytest.approx(4.0, abs=0.2)
    assert meter.measure(1007.0, 1009.0).quantities == {"held_s": 0.0, "gpus": 0}
    assert meter.measure(1007.0, 1009.0).cost_usd == 0


def test_cost_is_held_time_at_the_hourly_rate_read_at_measuring_time():
    meter, clock, _, sink = start_meter([h200().busy(1001.0, 1002.0)], settings=Settings())
    drive(meter, clock, 1040.0)
    m = meter.measure(1000.0, 1036.0)  # 36 s = 1/100 hour
    assert m.cost_usd == H200_RATE / 100
    assert m.detail["rates"]["0:NVIDIA H200"]["usd_per_hour"] == "3.59"
    assert m.detail["rates"]["0:NVIDIA H200"]["as_of"] == "2026-03"
    waste = m.detail["waste_usd"]
    assert Decimal(waste["stall"]) == (Decimal(35) / 3600 * H200_RATE).quantize(Decimal("1e-8"))
    sink.settings.gpu_rate_usd_per_hour = Decimal("10")  # %cost gpu-rate 10
    assert meter.measure(1000.0, 1036.0).cost_usd == Decimal("0.1")
    sink.settings.gpu_rate_usd_per_hour = None
    sink.settings.gpu_rates["H200"] = Decimal("1.8")
    assert meter.measure(1000.0, 1036.0).cost_usd == Decimal("0.018")


def test_an_unknown_gpu_is_unpriced_with_its_seconds():
    gpu = FakeGpu("GPU-aaaa", name="NVIDIA Mystery 9000").process(PID, 1000.0)
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1005.0)
    m = meter.measure(1000.0, 1004.0)
    assert m.cost_usd is None
    assert "unpriced" in m.flags
    assert m.quantities["held_s"] == pytest.approx(4.0)
    assert m.breakdown["0:NVIDIA Mystery 9000"]["unpriced"] is True
    assert m.detail["waste_usd"]["stall"] is None


def test_a_gpu_without_a_rate_keeps_the_priced_gpus_cost_and_marks_the_rest_unpriced():
    a = h200().busy(1001.0, 1003.0)
    b = FakeGpu("GPU-bbbb", name="NVIDIA Mystery 9000").process(PID, 1000.0).busy(1001.0, 1002.0)
    meter, clock, _, _ = start_meter([a, b])
    drive(meter, clock, 1040.0)
    m = meter.measure(1000.0, 1036.0)
    assert m.cost_usd == H200_RATE / 100  # the H200's 36 s, not None
    assert m.unpriced and "unpriced" in m.flags
    assert m.breakdown["0:NVIDIA H200"]["cost_usd"] == H200_RATE / 100
    assert "unpriced" not in m.breakdown["0:NVIDIA H200"]
    assert m.breakdown["1:NVIDIA Mystery 9000"]["unpriced"] is True
    assert m.breakdown["1:NVIDIA Mystery 9000"]["cost_usd"] is None
    # The H200's stall (34 s) in dollars; the Mystery's stall is marked, not priced.
    stall = (Decimal(34) / 3600 * H200_RATE).quantize(Decimal("1e-8"))
    assert Decimal(m.detail["waste_usd"]["stall"]) == stall
    assert m.detail["waste_unpriced"] == ["stall"]
    totals = MeterTotals.from_measurement(m)
    assert totals.cost_usd == H200_RATE / 100 and totals.unpriced
    compact = compact_meter("gpu", totals)  # "$0.0359 + unpriced", waste likewise
    assert Decimal(compact["cost_usd"]) == H200_RATE / 100 and compact["unpriced"] is True
    assert Decimal(compact["waste"]["stall"]["usd"]) == stall


def test_two_gpus_add_up_with_a_breakdown_at_their_own_rates():
    a = h200().busy(1001.0, 1003.0)
    b = FakeGpu("GPU-bbbb", name="NVIDIA H100 80GB HBM3").process(PID, 1000.0).busy(1001.0, 1002.0)
    c = FakeGpu("GPU-cccc").process(999, 1000.0).busy(1000.0, 1010.0)  # visible, not ours
    meter, clock, _, _ = start_meter([a, b, c])
    drive(meter, clock, 1040.0)
    m = meter.measure(1000.0, 1036.0)
    assert m.quantities["gpus"] == 2
    assert m.quantities["busy_s"] == pytest.approx(3.0)
    assert m.quantities["held_s"] == pytest.approx(72.0)
    assert set(m.breakdown) == {"0:NVIDIA H200", "1:NVIDIA H100 80GB HBM3"}
    assert m.breakdown["1:NVIDIA H100 80GB HBM3"]["busy_s"] == pytest.approx(1.0)
    assert m.cost_usd == (H200_RATE + Decimal("2.69")) / 100
    assert m.breakdown["0:NVIDIA H200"]["cost_usd"] == H200_RATE / 100


def test_cuda_visible_devices_limits_and_renumbers():
    a = h200().busy(1001.0, 1003.0)
    b = FakeGpu("GPU-bbbb", name="NVIDIA L4").process(PID, 1000.0).busy(1001.0, 1002.0)
    meter, clock, _, _ = start_meter([a, b], env={"CUDA_VISIBLE_DEVICES": "1"})
    drive(meter, clock, 1006.0)
    m = meter.measure(1000.0, 1005.0)
    assert set(m.breakdown) == {"0:NVIDIA L4"}
    assert m.quantities["busy_s"] == pytest.approx(1.0)


def test_session_idle_is_held_time_outside_every_top_level_window():
    gpu = h200().busy(1001.0, 1002.0).busy(1010.0, 1011.0)
    meter, clock, _, _ = start_meter([gpu])
    windows = [
        Window("c1", "cell", 1001.0, 1003.0),
        Window("t1", "track", 1001.5, 1002.0, parent_id="c1"),  # nested: inside c1 already
        Window("t2", "track", 1004.0, 1008.0),  # a track() block outside any cell is a window
        Window("c2", "cell", 1010.0, 1012.0),
    ]
    for w in windows:
        drive(meter, clock, w.start)
        meter.window_started(Window(w.id, w.kind, w.start, None, w.parent_id))
        drive(meter, clock, w.end)
        meter.window_ended(w)
    drive(meter, clock, 1020.0)
    s = meter.session_measurement(1000.0, 1020.0)
    assert s.quantities["held_s"] == pytest.approx(20.0)
    assert s.quantities["idle_between_s"] == pytest.approx(20.0 - 8.0)
    assert s.quantities["busy_s"] == pytest.approx(2.0)
    assert s.quantities["stall_s"] == pytest.approx(8.0 - 2.0)
    idle_usd = Decimal(s.detail["waste_usd"]["idle_between"])
    assert idle_usd == (Decimal(12) / 3600 * H200_RATE).quantize(Decimal("1e-8"))
    assert "idle_between_s" not in meter.measure(1001.0, 1003.0).quantities


def test_a_script_block_is_a_window_for_the_session_waste():
    # Issue 8, item 9: held 5.8 s, of which 2.5 s inside a top-level block that was 80 % busy.
    gpu = FakeGpu("GPU-aaaa").process(PID, 1000.0, 1005.8).busy(1001.0, 1003.5, util=80)
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1001.0)
    meter.window_started(Window("t", "track", 1001.0))
    drive(meter, clock, 1003.5)
    meter.window_ended(Window("t", "track", 1001.0, 1003.5))
    drive(meter, clock, 1008.0)
    s = meter.session_measurement(1000.0, 1008.0)
    held = s.quantities["held_s"]  # ~5.8 s, to the sampler's process poll
    assert held == pytest.approx(5.8, abs=0.6)
    assert s.quantities["idle_between_s"] == pytest.approx(held - 2.5, abs=0.01)
    assert s.quantities["stall_s"] == pytest.approx(2.5 * 0.2, abs=0.05)
    # Every held second is idle, stalled or busy, once.
    busy = s.quantities["busy_s"]
    assert s.quantities["idle_between_s"] + s.quantities["stall_s"] + busy == pytest.approx(
        s.quantities["held_s"], abs=0.05)


def test_kernels_running_on_after_a_cell_are_not_idle_time():
    # A cell queues 4 s of kernels and ends after 1 s: the GPU is busy 3 s with no cell open.
    # Busy is not idle, and the three wastes never add up to more than the held time.
    gpu = h200().busy(1001.0, 1005.0, util=100, sm=50)
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1001.0)
    meter.window_started(Window("c", "cell", 1001.0))
    drive(meter, clock, 1002.0)
    meter.window_ended(Window("c", "cell", 1001.0, 1002.0))
    drive(meter, clock, 1010.0)
    s = meter.session_measurement(1000.0, 1010.0)
    q = s.quantities
    assert q["held_s"] == pytest.approx(10.0)
    assert q["idle_between_s"] == pytest.approx(9.0 - 3.0)  # held outside the cell, not busy
    assert q["stall_s"] == pytest.approx(0.0, abs=0.01)
    waste = q["idle_between_s"] + q["stall_s"] + q["underfill_s"]
    assert waste + q["sm_s"] == pytest.approx(q["held_s"], abs=0.05)
    wasted_usd = sum(Decimal(v) for v in s.detail["waste_usd"].values())
    assert wasted_usd <= s.cost_usd


def test_overlapping_top_level_blocks_count_their_time_once():
    meter, clock, _, _ = start_meter([h200()])
    drive(meter, clock, 1001.0)
    meter.window_started(Window("a", "track", 1001.0))
    drive(meter, clock, 1002.0)
    meter.window_started(Window("b", "track", 1002.0))  # another thread's block, also top level
    drive(meter, clock, 1003.0)
    meter.window_ended(Window("a", "track", 1001.0, 1003.0))
    drive(meter, clock, 1004.0)
    meter.window_ended(Window("b", "track", 1002.0, 1004.0))
    drive(meter, clock, 1006.0)
    s = meter.session_measurement(1000.0, 1006.0)
    assert s.quantities["idle_between_s"] == pytest.approx(6.0 - 3.0)
    assert s.quantities["stall_s"] == pytest.approx(3.0)


def test_an_open_cell_counts_as_a_cell_for_the_session():
    meter, clock, _, _ = start_meter([h200()])
    drive(meter, clock, 1002.0)
    meter.window_started(Window("c1", "cell", 1002.0))
    drive(meter, clock, 1006.0)
    s = meter.session_measurement(1000.0, 1006.0)
    assert s.quantities["idle_between_s"] == pytest.approx(2.0)


def test_session_figures_sum_each_ended_window_once_and_equal_a_fresh_sum():
    """A long session's totals (asked at every cell's end) must not walk every window again:
    an ended window the device is known past is summed once. The figures equal a fresh sum."""
    gpu = h200()
    for n in range(40):  # busy in every other cell
        if n % 2:
            gpu = gpu.busy(1001.0 + n, 1001.6 + n, util=70)
    meter, clock, _, _ = start_meter([gpu])
    series = meter.sampler.series[0]
    reads = []
    busy_between = series.busy_between
    series.busy_between = lambda a, b: reads.append((a, b)) or busy_between(a, b)
    figures = []
    for n in range(40):
        start = 1001.0 + n
        drive(meter, clock, start)
        meter.window_started(Window(f"c{n}", "cell", start))
        drive(meter, clock, start + 0.8)
        meter.window_ended(Window(f"c{n}", "cell", start, start + 0.8))
        drive(meter, clock, start + 1.0)
        reads.clear()
        figures.append(meter.session_measurement(1000.0, start + 1.0).quantities)
        assert len(reads) <= 3  # the newest window or two (and the session), not all of them
    incremental = figures[-1]
    meter._inside.clear()  # the same question, every window summed afresh
    fresh = meter.session_measurement(1000.0, 1041.0).quantities
    assert incremental == fresh
    assert incremental["idle_between_s"] == pytest.approx(41.0 - 40 * 0.8, abs=0.05)
    assert incremental["stall_s"] == pytest.approx(40 * 0.8 - 20 * 0.6 * 0.7, abs=0.3)


def test_a_just_closed_window_extends_held_and_energy_to_its_end():
    gpu = h200().busy(1001.0, 1010.0, power_w=600)
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1004.0)
    meter.window_started(Window("c", "cell", 1004.0))
    drive(meter, clock, 1004.6)  # no process or energy read since the edge
    m = meter.measure(1004.0, 1004.6)
    assert m.quantities["held_s"] == pytest.approx(0.6)
    truth = gpu.energy_j(1004.6) - gpu.energy_j(1004.0)
    assert 0 < m.quantities["energy_j"]
    assert abs(m.quantities["energy_j"] - truth) <= m.detail["energy_uncertainty_j"]
    assert m.quantities["busy_s"] == pytest.approx(0.6, abs=m.detail["uncertainty_s"])


def test_measure_reads_memory_only():
    meter, clock, nvml, _ = start_meter([h200().busy(1001.0, 1002.0)])
    drive(meter, clock, 1005.0)
    before = len(nvml.calls)
    meter.measure(1000.0, 1004.0)
    meter.session_measurement(1000.0, 1004.0)
    assert len(nvml.calls) == before
