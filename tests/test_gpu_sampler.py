"""The sampler thread: where NVML is read from, checkpoints, stopping, surviving its own bugs."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from fake_nvml import FakeGpu, FakeNvml, RecordingSink, Window, drive
from test_gpu_meter import PID, h200, start_meter

from nbcost.meters.gpu import GpuMeter
from nbcost.meters.gpu.sampler import CADENCE_S

# What start() may ask NVML on the main thread: loading it and mapping devices, once.
STARTUP_CALLS = {"nvmlInit", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex",
                 "nvmlDeviceGetUUID", "nvmlDeviceGetName", "nvmlDeviceGetMigMode",
                 "nvmlDeviceGetMaxMigDeviceCount", "nvmlShutdown"}


def threaded_meter(gpu: FakeGpu):
    nvml = FakeNvml([gpu], time.time)
    meter = GpuMeter(nvml, environ={}, pid=PID, tick_s=0.05, pid_exists_here=lambda pid: True,
                     cuda_in_process=lambda now: True)
    sink = RecordingSink()
    return meter, nvml, sink


def test_nothing_on_the_main_thread_reads_the_energy_counter_or_the_buffer():
    now = time.time()
    gpu = FakeGpu("GPU-aaaa").process(PID, now - 5).busy(now + 0.2, now + 0.8, power_w=600)
    meter, nvml, sink = threaded_meter(gpu)
    meter.start(sink)
    startup = len(nvml.calls)
    spans = []
    for i in range(4):  # cells: edges, measure and session figures on the main thread
        start = time.time()
        meter.window_started(Window(f"c{i}", "cell", start))
        time.sleep(0.3)
        end = time.time()
        meter.window_ended(Window(f"c{i}", "cell", start, end))
        meter.measure(start, end)
        meter.session_measurement(now, end)
        spans.append((start, end))
    meter.stop()
    measured = [meter.measure(start, end) for start, end in spans]
    assert {c[0] for c in nvml.calls[:startup] if c[2]} <= STARTUP_CALLS
    energy = nvml.calls_to("nvmlDeviceGetTotalEnergyConsumption")
    assert len(energy) >= 3  # timed and edge reads happened ...
    assert not any(on_main for _, _, on_main in energy)  # ... all on the sampler thread
    assert {thread for _, thread, _ in energy} == {"nbcost-gpu-sampler"}
    main_calls = {c[0] for c in nvml.calls[startup:] if c[2]}
    assert main_calls <= {"nvmlShutdown", "nvmlGpmSampleFree"}, main_calls
    assert sum(m.quantities["energy_j"] for m in measured) > 0
    # On a loaded machine the sampler may lag behind the cells; the unread end of a window is
    # then extrapolated, and the record says so in its uncertainty. The figures stay within it.
    busy = sum(m.quantities["busy_s"] for m in measured)
    uncertainty = sum(m.detail["uncertainty_s"] for m in measured)
    assert busy == pytest.approx(0.6, abs=max(0.25, uncertainty))


def test_measure_after_an_edge_waits_briefly_for_the_edge_read():
    now = time.time()
    meter, nvml, sink = threaded_meter(FakeGpu("GPU-aaaa").process(PID, now - 5))
    meter.start(sink)
    time.sleep(0.6)  # past the edge-read rate limit
    start = time.time()
    meter.window_ended(Window("c", "cell", start - 0.1, start))
    meter.measure(start - 0.1, start)
    assert meter.sampler.edge_done.is_set()
    meter.stop()


def test_checkpoints_at_least_every_five_seconds_while_held():
    gpu = h200().busy(1001.0, 1003.0)
    gpu.processes[0].end = 1017.0
    meter, clock, _, sink = start_meter([gpu])
    drive(meter, clock, 1030.0)
    points = sink.checkpoints()
    times = [p["until"] for p in points]
    held_times = [p["until"] for p in points if p["held_now"]]
    assert held_times[0] == pytest.approx(1000.0, abs=0.2)
    assert all(b - a <= 5.0 + 1e-6 for a, b in zip(held_times, held_times[1:]))
    assert held_times[-1] >= 1017.0 - 5.0
    released = [p for p in points if not p["held_now"]]
    # The process list is read every second: the release is seen within one.
    assert len(released) == 1 and 1017.0 <= released[0]["until"] <= 1018.0
    assert times == sorted(times) and len(points) == len(held_times) + 1
    last = points[-1]
    assert last["meter"] == "gpu" and last["cumulative"] is True
    figures = last["quantities"]
    assert figures["held_s"] == pytest.approx(17.0, abs=0.6)  # ± half a poll at the release
    assert figures["busy_s"] == pytest.approx(2.0)
    # No window ran: all held time is between windows, the busy part of it not idle.
    assert figures["idle_between_s"] == pytest.approx(figures["held_s"] - figures["busy_s"])
    costs = [Decimal(p["cost_usd"]) for p in points]
    assert costs == sorted(costs) and costs[-1] > 0
    assert isinstance(last["cost_usd"], str) and isinstance(last["flags"], list)


def test_stop_ends_the_thread_frees_gpm_samples_and_is_idempotent():
    now = time.time()
    meter, nvml, sink = threaded_meter(FakeGpu("GPU-aaaa").process(PID, now - 5))
    meter.start(sink)
    time.sleep(0.4)
    thread = meter.sampler._thread
    assert thread.is_alive() and nvml.gpm_live >= 1
    meter.stop()
    meter.stop()
    assert not thread.is_alive()
    assert nvml.gpm_live == 0
    assert nvml.initialized == 0
    assert meter.measure(now, time.time()).quantities["held_s"] > 0  # series stay readable
    assert sink.checkpoints()[-1]["held_now"] is False  # the final checkpoint


def test_a_bug_in_the_sampler_is_said_once_and_the_thread_survives(monkeypatch):
    monkeypatch.setitem(CADENCE_S, "processes", (0.1, 0.1))
    now = time.time()
    meter, nvml, sink = threaded_meter(FakeGpu("GPU-aaaa").process(PID, now - 5))
    meter.start(sink)

    def broken(handle):
        raise RuntimeError("a bug in nbcost")

    meter.sampler.backend.compute_processes = broken
    time.sleep(0.8)  # several process-list reads
    assert "gpu:sampler" in sink.warnings and "a bug in nbcost" in sink.warnings["gpu:sampler"]
    assert sink.warn_calls > 1 and meter.sampler.running
    meter.stop()
    assert threading.active_count() >= 1


def test_edge_reads_are_rate_limited_not_dropped():
    gpu = h200().busy(1001.0, 1001.3)
    meter, clock, nvml, _ = start_meter([gpu])
    drive(meter, clock, 1000.95)
    before = len(nvml.calls_to("nvmlDeviceGetTotalEnergyConsumption"))
    for t in (1001.0, 1001.1, 1001.2):  # three edges inside 0.5 s
        meter.window_started(Window(f"w{t}", "track", t))
        drive(meter, clock, t + 0.1)
    drive(meter, clock, 1001.6)
    reads = len(nvml.calls_to("nvmlDeviceGetTotalEnergyConsumption")) - before
    assert reads == 2  # one at the first edge, one deferred for the rest
