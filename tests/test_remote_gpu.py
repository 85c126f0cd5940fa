"""GPU time of the kernel's descendants (a training script it started, pool workers) counts to
the window, with a per-process breakdown; other processes on the GPU do not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fake_nvml import Clock, FakeGpu, FakeNvml, RecordingSink, drive

from nbcost.meters.gpu import GpuMeter

pytestmark = pytest.mark.remote

GIB = 1 << 30


def start_meter(gpus, pid, **options):
    clock = Clock(1000.0)
    meter = GpuMeter(FakeNvml(gpus, clock), environ={}, clock=clock, pid=pid, threaded=False,
                     pid_exists_here=lambda pid: True, cuda_in_process=lambda now: True,
                     **options)
    meter.start(RecordingSink())
    return meter, clock


@pytest.fixture
def child():
    """A real child process of this one (what a cell's ``!python train.py`` would be)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_child_holding_the_gpu_counts_to_the_window_and_a_stranger_does_not(child):
    stranger = 1  # init: on this machine, not descended from the test process
    gpu = (FakeGpu("GPU-aaaa").process(child, 1002.0, 1006.0, mem_bytes=3 * GIB)
           .process(stranger, 1000.0, mem_bytes=9 * GIB).busy(1002.0, 1006.0))
    meter, clock = start_meter([gpu], os.getpid())  # the real test process and its real child
    drive(meter, clock, 1010.0)
    m = meter.measure(1000.0, 1010.0)
    assert m.quantities["held_s"] == pytest.approx(4.0, abs=0.6)
    assert m.quantities["busy_s"] == pytest.approx(4.0, abs=0.6)
    assert m.quantities["mem_peak_bytes"] == 3 * GIB  # the child's, not the stranger's
    assert m.detail["processes"] == {str(child): {"role": "child", "gpus": ["0:NVIDIA H200"],
                                                  "mem_peak_bytes": 3 * GIB}}
    assert "shared" in m.flags  # the stranger was there too
    assert meter.measure(1007.0, 1009.0).quantities["held_s"] == 0.0
    meter.stop()


def test_kernel_and_children_are_broken_down_per_process():
    kernel, worker_a, worker_b = 4242, 5001, 5002
    gpu = (FakeGpu("GPU-aaaa").process(kernel, 1000.0, mem_bytes=1 * GIB)
           .process(worker_a, 1001.0, 1004.0, mem_bytes=2 * GIB)
           .process(worker_b, 1001.0, 1004.0, mem_bytes=4 * GIB))
    meter, clock = start_meter([gpu], kernel,
                               descendants=lambda pids: {worker_a, worker_b} & set(pids))
    drive(meter, clock, 1006.0)
    m = meter.measure(1000.0, 1006.0)
    assert m.quantities["mem_peak_bytes"] == 7 * GIB  # memory adds up across our processes
    assert m.detail["processes"] == {
        str(kernel): {"role": "kernel", "gpus": ["0:NVIDIA H200"], "mem_peak_bytes": 1 * GIB},
        str(worker_a): {"role": "child", "gpus": ["0:NVIDIA H200"], "mem_peak_bytes": 2 * GIB},
        str(worker_b): {"role": "child", "gpus": ["0:NVIDIA H200"], "mem_peak_bytes": 4 * GIB}}
    assert "shared" not in m.flags
    # The kernel alone on its GPU has no breakdown to give.
    assert "processes" not in meter.measure(1005.2, 1006.0).detail
    meter.stop()


def test_ancestry_is_walked_once_per_process(child):
    from nbcost.meters.gpu.attribution import Descendants

    descendants = Descendants(os.getpid())
    assert descendants([child, 1]) == {child}
    assert set(descendants._verdicts) == {child, 1}
    descendants._verdicts[child] = (descendants._verdicts[child][0], False)  # a cached verdict
    assert descendants([child]) == set()  # is used while the process is the same one
    assert descendants([os.getpid() + 10**7]) == set()  # no such process
    assert descendants._verdicts == {}  # forgets processes no longer listed
