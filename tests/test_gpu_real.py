"""The GPU meter on a real NVIDIA GPU with PyTorch; skipped anywhere else.

On a bare GPU machine::

    PYTHONPATH=src python3 -m pytest --noconftest -m gpu tests/test_gpu_real.py
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)


def _gpu_meter_class():
    try:
        return importlib.import_module("nbcost.meters.gpu").GpuMeter
    except ImportError:  # a bare GPU machine without nbcost's session dependencies
        for name in [m for m in sys.modules if m == "nbcost" or m.startswith("nbcost.")]:
            del sys.modules[name]
        package = types.ModuleType("nbcost")
        package.__path__ = [str(Path(__file__).resolve().parent.parent / "src" / "nbcost")]
        sys.modules["nbcost"] = package
        return importlib.import_module("nbcost.meters.gpu").GpuMeter


@dataclass(frozen=True)
class Window:
    id: str
    kind: str
    start: float
    end: float | None = None
    parent_id: str | None = None


class Sink:
    settings = None

    def __init__(self):
        self.events = []

    def log(self, event, fields):
        self.events.append((event, fields))

    def warn_once(self, key, message):
        print(key, message)


def test_busy_held_and_energy_come_from_the_sampler_thread():
    import pynvml

    energy_threads = []
    real_energy = pynvml.nvmlDeviceGetTotalEnergyConsumption

    def recording_energy(handle):
        energy_threads.append(threading.current_thread() is threading.main_thread())
        return real_energy(handle)

    pynvml.nvmlDeviceGetTotalEnergyConsumption = recording_energy
    meter = _gpu_meter_class()()
    try:
        meter.start(Sink())
        assert meter.sampler is not None, meter.reason_off
        a = torch.randn(4096, 4096, device="cuda")
        torch.cuda.synchronize()
        start = time.time()
        meter.window_started(Window("cell-1", "cell", start))
        events = []
        while time.time() - start < 2.0:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            a @ a
            e.record()
            events.append((s, e))
        torch.cuda.synchronize()
        end = time.time()
        meter.window_ended(Window("cell-1", "cell", start, end))
        truth = sum(s.elapsed_time(e) for s, e in events) / 1000
        time.sleep(0.7)
        m = meter.measure(start, end)
    finally:
        meter.stop()
        pynvml.nvmlDeviceGetTotalEnergyConsumption = real_energy
    assert m.quantities["held_s"] == pytest.approx(end - start, abs=0.25)
    assert m.quantities["busy_s"] == pytest.approx(truth, abs=max(0.03 * truth, 0.2))
    assert m.quantities["energy_j"] > 0
    assert energy_threads and not any(energy_threads)
