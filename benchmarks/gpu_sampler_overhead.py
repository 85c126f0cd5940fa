"""What the GPU sampler costs: NVML call times, and a CPU-bound loop with the sampler on vs off.

    PYTHONPATH=src python3 benchmarks/gpu_sampler_overhead.py

Needs an NVIDIA GPU (PyTorch optional: with it, the process holds a context while measured, so
the sampler runs its held cadence with energy reads every 100 ms).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import CheckSink, import_gpu_meter  # noqa: E402


def nvml_call_costs(backend, handle) -> None:
    import pynvml

    def gpm() -> None:
        backend.gpm_free(backend.gpm_sample(handle))

    last_second = lambda: int((time.time() - 1) * 1e6)  # noqa: E731
    calls = {
        "nvmlDeviceGetComputeRunningProcesses": (
            lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle), 300),
        "nvmlDeviceGetSamples via pynvml (last 1 s)": (
            lambda: pynvml.nvmlDeviceGetSamples(
                handle, pynvml.NVML_GPU_UTILIZATION_SAMPLES, last_second()), 100),
        "nvmlDeviceGetSamples via nbcost's backend (last 1 s)": (
            lambda: backend.utilization_samples(handle, last_second()), 100),
        "nvmlGpmSampleAlloc+Get+Free": (gpm, 100),
        "nvmlDeviceGetTotalEnergyConsumption": (
            lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle), 30),
    }
    for name, (call, n) in calls.items():
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(n):
            try:
                call()
            except Exception:  # noqa: BLE001 - NoData and friends: the cost is what we want
                pass
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        print(f"{name:<50} {1e6 * wall / n:9.1f} µs wall {1e6 * cpu / n:9.1f} µs CPU per call")


def loop_rate(seconds: float) -> float:
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(1000):
            count += 1
    return count / seconds


def interleaved(start_load, rounds: int = 4, seconds: float = 1.0) -> list[float]:
    """Loop rate with the load on / the mean of the rates just before and after it."""
    ratios = []
    for _ in range(rounds):
        before = loop_rate(seconds)
        stop = start_load()
        time.sleep(0.2)
        during = loop_rate(seconds)
        stop()
        after = loop_rate(seconds)
        ratios.append(during / ((before + after) / 2))
    return ratios


def idle_thread():
    """Control: a thread that wakes every 0.2 s and does nothing."""
    import threading

    done = threading.Event()
    thread = threading.Thread(target=lambda: [None for _ in iter(lambda: done.wait(0.2), True)])
    thread.start()
    return lambda: (done.set(), thread.join())


def sampler(GpuMeter, energy: bool = True):
    def start():
        meter = GpuMeter()
        meter.start(CheckSink())
        if not energy:
            for series in meter.sampler.series:
                series.has_energy = False
        return meter.stop

    return start


def main() -> int:
    GpuMeter = import_gpu_meter()
    try:
        import torch

        held = torch.ones(1, device="cuda")  # a context, so the sampler runs its held cadence
    except Exception as error:  # noqa: BLE001
        print(f"(no torch context: {error})")
        held = None
    meter = GpuMeter()
    meter.start(CheckSink())
    if meter.sampler is None:
        print(f"GPU meter off: {meter.reason_off}")
        return 2
    time.sleep(0.5)
    cpu0, t0 = meter.sampler.cpu_s, time.time()
    time.sleep(3.0)
    cpu1, t1 = meter.sampler.cpu_s, time.time()
    # Cells of 0.5 s back to back: two edge reads a second on top of the timed reads.
    for _ in range(6):
        meter.sampler.request_edge()
        time.sleep(0.5)
    cpu2, t2 = meter.sampler.cpu_s, time.time()
    print(f"sampler thread CPU while held: {100 * (cpu1 - cpu0) / (t1 - t0):.3f}% of a core; "
          f"with a cell edge every 0.5 s: {100 * (cpu2 - cpu1) / (t2 - t1):.3f}%")
    nvml_call_costs(meter.sampler.backend, meter.sampler.series[0].device.handle)
    meter.stop()
    print("CPU-bound Python loop on the main thread, rate with the load / without it "
          "(1 s each, interleaved, 4 rounds):")
    for name, load in (("idle control thread", idle_thread),
                       ("nbcost sampler", sampler(GpuMeter)),
                       ("nbcost sampler, no energy reads", sampler(GpuMeter, energy=False))):
        ratios = sorted(interleaved(load))
        print(f"  {name:<34} median {ratios[len(ratios) // 2]:.3f}  all "
              + " ".join(f"{r:.3f}" for r in ratios))
    del held
    return 0


if __name__ == "__main__":
    sys.exit(main())
