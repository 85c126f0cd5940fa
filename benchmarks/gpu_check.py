"""Real-GPU check of nbcost's GPU meter against CUDA-event ground truth (< 2 minutes).

Run on a machine with an NVIDIA GPU and PyTorch (IPython not needed)::

    PYTHONPATH=src python3 benchmarks/gpu_check.py

Each workload runs as a window (a "cell"); nbcost's figures for it are read back from the
sampler's series the way the Session reads them, once right at the window's end ("at edge")
and once after the samples covering its end have arrived ("settled"). Ground truth for busy
time is the sum of per-kernel CUDA-event durations (see notes/nvml-on-h200.md on why wall time
is not). Exits 1 where settled busy time is off by more than max(3%, one sample period), or
another check fails; 2 where there is no CUDA GPU.
"""

from __future__ import annotations

import os
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SRC = Path(__file__).resolve().parent.parent / "src"
GIB = 1 << 30


def import_gpu_meter() -> Any:
    """The GpuMeter class; without nbcost's session dependencies if the machine lacks them."""
    try:
        from nbcost.meters.gpu import GpuMeter
    except ImportError as error:  # nbcost/__init__ pulls in the session (traitlets, ...)
        print(f"(importing nbcost fully failed: {error}; loading the GPU meter alone)")
        for name in [m for m in sys.modules if m == "nbcost" or m.startswith("nbcost.")]:
            del sys.modules[name]
        package = types.ModuleType("nbcost")
        package.__path__ = [str(SRC / "nbcost")]
        sys.modules["nbcost"] = package
        from nbcost.meters.gpu import GpuMeter
    return GpuMeter


@dataclass
class CheckSink:
    """The MeterSink the Session would be: collects checkpoints, prints warnings."""

    settings: Any = None
    events: list[tuple[float, str, dict]] = field(default_factory=list)
    warned: set[str] = field(default_factory=set)

    def record(self, usage: Any) -> None:
        pass

    def log(self, event: str, fields: dict) -> None:
        self.events.append((time.time(), event, dict(fields)))

    def warn_once(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            print(f"[warn_once {key}] {message}")

    def check_budget(self, meter: str) -> None:
        pass

    def current_cell(self) -> dict:
        return {}


@dataclass(frozen=True)
class Window:
    id: str
    kind: str
    start: float
    end: float | None = None
    parent_id: str | None = None


@dataclass
class Result:
    name: str
    wall_s: float
    truth_busy_s: float | None
    edge: Any  # Measurement right at the end
    settled: Any  # Measurement after the samples arrived
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def q(m: Any, name: str) -> float | None:
    return None if m is None else m.quantities.get(name)


def fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


class Check:
    def __init__(self, torch: Any, GpuMeter: Any) -> None:
        self.torch = torch
        self.sink = CheckSink()
        self.meter = GpuMeter()
        self.results: list[Result] = []
        self.session_start = time.time()
        self.meter.start(self.sink)
        if self.meter.sampler is None:
            raise SystemExit(f"nbcost's GPU meter is off: {self.meter.reason_off}")
        self.device = torch.device("cuda:0")
        self.a = torch.randn(8192, 8192, device=self.device, dtype=torch.bfloat16)
        self.b = torch.randn(8192, 8192, device=self.device, dtype=torch.bfloat16)
        self.matmul_s = self._calibrate_matmul()
        self.sleep_cycles_per_s = self._calibrate_sleep()

    # --- workloads (each returns the summed per-kernel CUDA-event time) -----------------------
    def _timed(self, launches: int, kernel: Callable[[], None]) -> list[tuple[Any, Any]]:
        events = []
        for _ in range(launches):
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            start.record()
            kernel()
            end.record()
            events.append((start, end))
        return events

    @staticmethod
    def _event_seconds(events: list[tuple[Any, Any]]) -> float:
        return sum(s.elapsed_time(e) for s, e in events) / 1000.0

    def _matmul(self) -> None:
        self.torch.matmul(self.a, self.b)

    def _calibrate_matmul(self) -> float:
        self._timed(20, self._matmul)
        self.torch.cuda.synchronize()
        events = self._timed(100, self._matmul)
        self.torch.cuda.synchronize()
        return self._event_seconds(events) / 100

    def _calibrate_sleep(self) -> float:
        cycles = 10_000_000
        events = self._timed(5, lambda: self.torch.cuda._sleep(cycles))
        self.torch.cuda.synchronize()
        return cycles * 5 / self._event_seconds(events)

    def busy(self, seconds: float) -> float:
        """Queue ``seconds`` of matmuls without host sync, then wait for them."""
        events = self._timed(max(1, round(seconds / self.matmul_s)), self._matmul)
        self.torch.cuda.synchronize()
        return self._event_seconds(events)

    def duty(self, period_on_s: float, cycles: int) -> float:
        total = 0.0
        for _ in range(cycles):
            total += self.busy(period_on_s)
            time.sleep(period_on_s)
        return total

    def tiny(self, seconds: float) -> float:
        """One-thread spin kernels: the GPU is "busy" while one SM of many works."""
        chunk_s = 0.05
        cycles = int(self.sleep_cycles_per_s * chunk_s)
        events = self._timed(round(seconds / chunk_s), lambda: self.torch.cuda._sleep(cycles))
        self.torch.cuda.synchronize()
        return self._event_seconds(events)

    # --- running a window ---------------------------------------------------------------------
    def window(self, name: str, work: Callable[[], float | None], cell: bool = True) -> Result:
        start = time.time()
        info = Window(id=name, kind="cell" if cell else "track", start=start)
        self.meter.window_started(info)
        truth = work()
        end = time.time()
        self.meter.window_ended(Window(id=name, kind=info.kind, start=start, end=end))
        edge = self.meter.measure(start, end)  # what the cell's record gets
        # The samples covering the end (and the one after, which places it) arrive within
        # ~0.4 s; the sampler reads them on its cadence or, here, on request.
        time.sleep(0.5)
        self.meter.sampler.request_edge()
        self.meter.sampler.edge_done.wait(0.1)
        settled = self.meter.measure(start, end)
        result = Result(name, end - start, truth, edge, settled)
        self.results.append(result)
        return result

    def check_busy(self, r: Result) -> None:
        busy = q(r.settled, "busy_s")
        period = r.settled.detail.get("sample_period_s") or 0.2
        tolerance = max(0.03 * r.truth_busy_s, period)
        if busy is None:
            r.failures.append("no busy_s")
            return
        error = busy - r.truth_busy_s
        edge = q(r.edge, "busy_s")
        edge_error = "-" if edge is None else f"{edge - r.truth_busy_s:+.3f}s"
        r.notes.append(f"busy err {error:+.3f}s ({100 * error / r.truth_busy_s:+.1f}%), "
                       f"tol ±{tolerance:.3f}s; at the edge (the cell's record) {edge_error}")
        if abs(error) > tolerance:
            r.failures.append(f"busy off by {error:+.3f}s > {tolerance:.3f}s")

    def check_held(self, r: Result) -> None:
        held = q(r.settled, "held_s")
        if held is None or abs(held - r.wall_s) > 0.25:
            r.failures.append(f"held {fmt(held)}s vs wall {r.wall_s:.3f}s")

    def energy_direct(self) -> float:
        """The energy counter read directly (the benchmark may; a kernel's cell path may not)."""
        import pynvml

        handle = self.meter.sampler.series[0].device.handle
        return pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0


def print_table(results: list[Result]) -> None:
    head = (f"{'window':<22}{'wall s':>8}{'truth':>8}{'busy':>8}{'@edge':>8}{'±s':>7}"
            f"{'sm s':>8}{'held s':>8}{'J':>9}{'W':>7}{'mem GiB':>9}  result")
    print(head)
    print("-" * len(head))
    for r in results:
        m = r.settled
        mem = q(m, "mem_peak_bytes")
        print(f"{r.name:<22}{r.wall_s:>8.3f}{fmt(r.truth_busy_s):>8}{fmt(q(m, 'busy_s')):>8}"
              f"{fmt(q(r.edge, 'busy_s')):>8}{fmt(m.detail.get('uncertainty_s'), '', 2):>7}"
              f"{fmt(q(m, 'sm_s')):>8}{fmt(q(m, 'held_s')):>8}{fmt(q(m, 'energy_j'), '', 0):>9}"
              f"{fmt(q(m, 'power_avg_w'), '', 0):>7}{fmt(None if mem is None else mem / GIB):>9}"
              f"  {'FAIL ' + '; '.join(r.failures) if r.failures else 'ok'}")
        for note in r.notes:
            print(f"{'':<22}{note}")


def end_to_end(check: Check, failures: list[str]) -> None:
    """``nbcost.track()`` through the real Session and spend log, where nbcost imports fully."""
    try:
        import nbcost
        from nbcost.ledger import read_log  # noqa: F401 - proves the full package loads
    except ImportError as error:
        print(f"end-to-end via nbcost.track(): skipped ({error})")
        return
    session = nbcost.session()
    with nbcost.track("gpu_check 2 s busy") as tracked:
        truth = check.busy(2.0)
    gpu = tracked.gpu
    if gpu is None:
        failures.append("nbcost.track() recorded no GPU figures")
        return
    busy = gpu.quantities.get("busy_s")
    print(f"end-to-end via nbcost.track(): cost ${tracked.cost_usd}, gpu {dict(gpu.quantities)}, "
          f"truth busy {truth:.3f} s, flags {gpu.flags}")
    if busy is None or abs(busy - truth) > max(0.03 * truth, 0.2):
        failures.append(f"nbcost.track() busy {busy} vs truth {truth:.3f}")
    session.close()
    path = getattr(session, "ledger_path", None)
    if path is not None and Path(path).exists():
        lines = Path(path).read_text().splitlines()
        events = [line for line in lines if '"gpu_checkpoint"' in line]
        print(f"spend log {path}: {len(events)} gpu_checkpoint events")


def main() -> int:
    try:
        import torch
    except ImportError:
        print("gpu_check: PyTorch is not installed; this check needs torch with CUDA.")
        return 2
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible to PyTorch; run this on a GPU machine.")
        return 2
    GpuMeter = import_gpu_meter()
    started = time.time()
    check = Check(torch, GpuMeter)
    sampler = check.meter.sampler
    s0 = sampler.series[0]
    print(f"device: {s0.device.name} ({s0.device.uuid}); CUDA_VISIBLE_DEVICES="
          f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}; torch {torch.__version__}")
    print(f"matmul 8192² bf16: {check.matmul_s * 1e3:.3f} ms; _sleep: "
          f"{check.sleep_cycles_per_s / 1e9:.3f} Gcycles/s; util sample period "
          f"{s0.sample_period_s:.3f} s; GPM: {s0.has_sm}; energy counter: {s0.has_energy}")
    check.busy(2.0)  # warm the clocks (the first burst after idle reads low)
    time.sleep(0.5)

    for seconds in (1, 3, 10):
        t0, e0 = time.time(), check.energy_direct()
        r = check.window(f"busy {seconds} s", lambda s=seconds: check.busy(s))
        t1, e1 = time.time(), check.energy_direct()
        check.meter.sampler.request_edge()  # as a window edge at t1 would
        check.check_busy(r)
        check.check_held(r)
        time.sleep(0.6)  # edge reads are at most one per 0.5 s
        span = check.meter.measure(t0, t1)
        ours = q(span, "energy_j")
        bound = max(span.detail.get("energy_uncertainty_j", 0.0), 0.02 * (e1 - e0))
        r.notes.append(f"energy over the window + 0.7 s: counter read directly {e1 - e0:.0f} J, "
                       f"nbcost {fmt(ours, '', 0)} J (bound ±{bound:.0f} J)")
        if ours is None or abs(ours - (e1 - e0)) > bound:
            r.failures.append("energy differs from the directly read counter")
    for on_s, cycles in ((0.1, 20), (0.4, 6)):
        r = check.window(f"duty 50% {int(on_s * 1e3)} ms", lambda: check.duty(on_s, cycles))
        check.check_busy(r)
        check.check_held(r)
    r = check.window("tiny kernels 1 SM", lambda: check.tiny(3.0))
    check.check_busy(r)
    sm, busy = q(r.settled, "sm_s"), q(r.settled, "busy_s")
    if sm is not None and busy:
        r.notes.append(f"SM-weighted {sm:.3f}s = {100 * sm / busy:.1f}% of busy; "
                       f"underfill {fmt(q(r.settled, 'underfill_s'))}s")
        if sm > 0.1 * busy:
            r.failures.append("SM-weighted time does not show the kernels use few SMs")

    before = q(check.meter.measure(time.time() - 0.3, time.time()), "mem_peak_bytes") or 0.0

    def allocate() -> None:
        block = torch.empty(4 * GIB, dtype=torch.uint8, device=check.device)
        block.fill_(1)
        torch.cuda.synchronize()
        time.sleep(2.0)  # the process list is read once a second
        del block
        torch.cuda.empty_cache()

    r = check.window("4 GiB allocation", allocate)
    delta = (q(r.settled, "mem_peak_bytes") or 0.0) - before
    r.notes.append(f"peak memory rose by {delta / GIB:.3f} GiB over the {before / GIB:.3f} GiB "
                   "held before (context + caching allocator)")
    if abs(delta - 4 * GIB) > 0.05 * 4 * GIB:
        r.failures.append(f"memory delta {delta / GIB:.3f} GiB is not 4 GiB ±5%")

    steady: list[float] = []

    def idle() -> None:  # the sampler's own cost, away from the edges' reads
        time.sleep(1.0)
        cpu0, t0 = sampler.cpu_s, time.time()
        time.sleep(3.0)
        steady.append((sampler.cpu_s - cpu0) / (time.time() - t0))
        time.sleep(1.0)

    r = check.window("idle, context held", idle, cell=False)
    steady_share = steady[0]
    check.check_held(r)
    if (q(r.settled, "busy_s") or 0.0) > 0.2:
        r.failures.append("busy while idle")
    time.sleep(2.0)  # held between cells: idle_between_s

    end = time.time()
    session = check.meter.session_measurement(check.session_start, end)
    check.meter.stop()
    print()
    print_table(check.results)
    print()
    print("session:", {k: round(v, 3) for k, v in session.quantities.items()})
    print("session cost_usd:", session.cost_usd, "flags:", session.flags)
    print("waste_usd:", session.detail.get("waste_usd"), "rate:", session.detail.get("rates"))
    failures = [f"{r.name}: {f}" for r in check.results for f in r.failures]

    checkpoints = [t for t, event, _ in check.sink.events if event == "gpu_checkpoint"]
    gaps = [b - a for a, b in zip(checkpoints, checkpoints[1:])]
    print(f"gpu_checkpoint events: {len(checkpoints)}, largest gap {max(gaps, default=0):.2f} s")
    if not gaps or max(gaps) > 5.2:
        failures.append("gpu_checkpoint gaps over 5 s while held")
    wall = end - check.session_start
    share = sampler.cpu_s / wall
    print(f"sampler thread CPU: {sampler.cpu_s:.3f} s over {wall:.1f} s = {100 * share:.3f}% of "
          f"a core ({sampler.ticks} ticks, {2 * len(check.results)} window edges, ~5 ms of CPU "
          f"each); held, away from edges: {100 * steady_share:.3f}%")
    if steady_share > 0.005:
        failures.append(f"sampler uses {100 * steady_share:.2f}% of a core while held (> 0.5%)")
    end_to_end(check, failures)
    print(f"gpu_check finished in {time.time() - started:.1f} s")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
