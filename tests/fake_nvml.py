"""A fake NVML for machines without a GPU: the pynvml functions the GPU meter calls, driven by
a scripted timeline.

A :class:`FakeGpu` is told what happens when (``busy(2.0, 3.0, util=100, sm=50)``,
``process(pid, 1.0, mem_bytes=...)``, ``fail(4.0, 4.5)``) and answers NVML's questions the
way the real driver does: the utilization buffer holds one sample per ``period_s``, each the
busy share of the period *before* its timestamp, keeps the newest ``buffer_len`` of them and
returns only those newer than the caller's last-seen timestamp (NOT_FOUND when none); the
energy counter is the integral of power, updated every ``energy_period_s``; GPM SM utilization
is the SM-weighted share between two samples. Every call is logged with the thread it came from.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from nbcost.records import WindowInfo

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999
NVML_GPU_UTILIZATION_SAMPLES = 1
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_GPM_METRIC_SM_UTIL = 2
NVML_GPM_METRICS_GET_VERSION = 1
INF = math.inf


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"fake NVML error {self.value}"


class Clock:
    """A scripted ``time.time``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class _Activity:
    start: float
    end: float
    util: float  # percent of the time some kernel runs
    sm: float  # percent of SMs busy while it runs
    power_w: float


@dataclass
class _Process:
    pid: int
    start: float
    end: float
    mem_bytes: int | None


@dataclass
class FakeGpu:
    """One scripted GPU (or MIG slice)."""

    uuid: str
    name: str = "NVIDIA H200"
    period_s: float = 0.2
    buffer_len: int = 70
    energy_period_s: float = 0.1
    idle_w: float = 100.0
    has_energy: bool = True
    has_gpm: bool = True
    mig_children: list["FakeGpu"] = field(default_factory=list)
    parent: "FakeGpu | None" = None
    mig_ids: tuple[int, int] = (0, 0)
    activities: list[_Activity] = field(default_factory=list)
    processes: list[_Process] = field(default_factory=list)
    failures: list[tuple[float, float, tuple[str, ...], int]] = field(default_factory=list)

    # --- scripting ----------------------------------------------------------------------------
    def busy(self, start: float, end: float, util: float = 100, sm: float = 100,
             power_w: float = 500) -> "FakeGpu":
        self.activities.append(_Activity(start, end, util, sm, power_w))
        return self

    def process(self, pid: int, start: float, end: float = INF,
                mem_bytes: int | None = 1 << 30) -> "FakeGpu":
        self.processes.append(_Process(pid, start, end, mem_bytes))
        return self

    def fail(self, start: float, end: float, *functions: str, code: int = NVML_ERROR_UNKNOWN
             ) -> "FakeGpu":
        """Calls to ``functions`` (all calls if none named) raise between start and end."""
        self.failures.append((start, end, functions, code))
        return self

    def add_mig(self, uuid: str, name: str, gi: int, ci: int = 0) -> "FakeGpu":
        child = FakeGpu(uuid=uuid, name=name, parent=self, mig_ids=(gi, ci), has_energy=False,
                        has_gpm=False)
        self.mig_children.append(child)
        return child

    # --- ground truth -------------------------------------------------------------------------
    @staticmethod
    def _overlap(a: _Activity, start: float, end: float) -> float:
        return max(0.0, min(a.end, end) - max(a.start, start))

    def busy_seconds(self, start: float, end: float) -> float:
        return sum(self._overlap(a, start, end) * a.util / 100 for a in self.activities)

    def sm_seconds(self, start: float, end: float) -> float:
        return sum(self._overlap(a, start, end) * a.util / 100 * a.sm / 100
                   for a in self.activities)

    def energy_j(self, t: float) -> float:
        extra = sum(self._overlap(a, 0.0, t) * (a.power_w - self.idle_w) for a in self.activities)
        return self.idle_w * t + extra

    def counter_mj(self, now: float) -> int:
        updated = math.floor(now / self.energy_period_s) * self.energy_period_s
        return int(self.energy_j(updated) * 1000)

    def samples(self, now: float, after_us: int = 0) -> list[tuple[int, int]]:
        """The buffer at ``now``: the newest ``buffer_len`` samples, those after ``after_us``."""
        newest = math.floor(now / self.period_s + 1e-9)
        first = max(newest - self.buffer_len + 1, 1, math.floor(after_us / 1e6 / self.period_s))
        rows = []
        for k in range(first, newest + 1):
            end = k * self.period_s
            share = self.busy_seconds(end - self.period_s, end) / self.period_s
            rows.append((int(round(end * 1e6)), int(round(min(share, 1.0) * 100))))
        return rows


@dataclass
class _Value:
    uiVal: int


@dataclass
class _Sample:
    timeStamp: int
    sampleValue: _Value


@dataclass
class _ProcessInfo:
    pid: int
    usedGpuMemory: int | None


@dataclass
class _GpmSample:
    gpu: FakeGpu | None = None
    t: float = 0.0
    freed: bool = False


@dataclass
class _Metric:
    metricId: int = 0
    nvmlReturn: int = 0
    value: float = 0.0


class _MetricsGet:
    def __init__(self) -> None:
        self.version = 0
        self.numMetrics = 0
        self.sample1: _GpmSample | None = None
        self.sample2: _GpmSample | None = None
        self.metrics = [_Metric() for _ in range(4)]


@dataclass
class _Support:
    isSupportedDevice: int


#: How long NVML calls took on an H200 (driver 580, see the notes on NVML): an edge read
#: (energy, then the utilization sample buffer) costs ~5 ms of the sampler thread.
H200_LATENCY_S = {
    "nvmlDeviceGetTotalEnergyConsumption": 0.0034,
    "nvmlDeviceGetSamples": 0.0014,
    "nvmlDeviceGetComputeRunningProcesses": 0.00001,
}


class FakeNvml:
    """Module-like: ``GpuMeter(nvml=FakeNvml([...], clock))``.

    ``latency``: seconds each named call takes (``H200_LATENCY_S``: a real GPU's); ``hold(name)``
    makes calls of that name wait until the returned Event is set (a test's stuck NVML call)."""

    NVMLError = NVMLError
    c_nvmlGpmMetricsGet_t = _MetricsGet

    def __init__(self, gpus: list[FakeGpu], clock: Callable[[], float], *,
                 missing_library: bool = False, latency: dict[str, float] | None = None) -> None:
        self.gpus = gpus
        self.latency = latency or {}
        self._holds: dict[str, threading.Event] = {}
        self.clock = clock
        self.missing_library = missing_library
        self.calls: list[tuple[str, str, bool]] = []  # (function, thread name, on main thread)
        self.initialized = 0
        self.gpm_live = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # NVML_* constants, as pynvml has them
        value = globals().get(name)
        if name.startswith("NVML_") and value is not None:
            return value
        raise AttributeError(name)

    def hold(self, function: str) -> threading.Event:
        """Calls to ``function`` wait until the returned Event is set."""
        gate = self._holds[function] = threading.Event()
        return gate

    def calls_to(self, function: str) -> list[tuple[str, str, bool]]:
        return [c for c in self.calls if c[0] == function]

    def _call(self, function: str, gpu: FakeGpu | None = None) -> float:
        thread = threading.current_thread()
        with self._lock:
            self.calls.append((function, thread.name, thread is threading.main_thread()))
        if self.missing_library:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        gate = self._holds.get(function)
        if gate is not None:
            gate.wait(30)
        if function in self.latency:
            time.sleep(self.latency[function])
        now = self.clock()
        for target in (gpu, gpu.parent if gpu else None):
            for start, end, functions, code in (target.failures if target else ()):
                if start <= now < end and (not functions or function in functions):
                    raise NVMLError(code)
        return now

    def _all(self) -> list[FakeGpu]:
        return self.gpus + [c for g in self.gpus for c in g.mig_children]

    # --- init and devices ---------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self._call("nvmlInit")
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")
        self.initialized -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._call("nvmlDeviceGetHandleByIndex")
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        self._call("nvmlDeviceGetHandleByUUID")
        for gpu in self._all():
            if gpu.uuid == uuid:
                return gpu
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> str:
        self._call("nvmlDeviceGetUUID", gpu)
        return gpu.uuid

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> str:
        self._call("nvmlDeviceGetName", gpu)
        return gpu.name

    def nvmlDeviceGetMigMode(self, gpu: FakeGpu) -> tuple[int, int]:
        self._call("nvmlDeviceGetMigMode", gpu)
        mode = 1 if gpu.mig_children else 0
        return mode, mode

    def nvmlDeviceGetMaxMigDeviceCount(self, gpu: FakeGpu) -> int:
        self._call("nvmlDeviceGetMaxMigDeviceCount", gpu)
        return 7 if gpu.mig_children else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, gpu: FakeGpu, index: int) -> FakeGpu:
        self._call("nvmlDeviceGetMigDeviceHandleByIndex", gpu)
        if index >= len(gpu.mig_children):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return gpu.mig_children[index]

    def nvmlDeviceGetGpuInstanceId(self, gpu: FakeGpu) -> int:
        self._call("nvmlDeviceGetGpuInstanceId", gpu)
        return gpu.mig_ids[0]

    def nvmlDeviceGetComputeInstanceId(self, gpu: FakeGpu) -> int:
        self._call("nvmlDeviceGetComputeInstanceId", gpu)
        return gpu.mig_ids[1]

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, gpu: FakeGpu) -> FakeGpu:
        self._call("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", gpu)
        return gpu.parent or gpu

    # --- measurements -------------------------------------------------------------------------
    def nvmlDeviceGetSamples(self, gpu: FakeGpu, sampling_type: int, last_seen_us: int
                             ) -> tuple[int, list[_Sample]]:
        now = self._call("nvmlDeviceGetSamples", gpu)
        if gpu.parent is not None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        rows = [r for r in gpu.samples(now, last_seen_us) if r[0] > last_seen_us]
        if not rows:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return NVML_VALUE_TYPE_UNSIGNED_INT, [_Sample(ts, _Value(v)) for ts, v in rows]

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        now = self._call("nvmlDeviceGetTotalEnergyConsumption", gpu)
        if not gpu.has_energy:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.counter_mj(now)

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: FakeGpu) -> list[_ProcessInfo]:
        now = self._call("nvmlDeviceGetComputeRunningProcesses", gpu)
        return [_ProcessInfo(p.pid, p.mem_bytes) for p in gpu.processes if p.start <= now < p.end]

    def nvmlGpmQueryDeviceSupport(self, gpu: FakeGpu) -> _Support:
        self._call("nvmlGpmQueryDeviceSupport", gpu)
        return _Support(int(gpu.has_gpm))

    def nvmlGpmSampleAlloc(self) -> _GpmSample:
        self._call("nvmlGpmSampleAlloc")
        self.gpm_live += 1
        return _GpmSample()

    def nvmlGpmSampleFree(self, sample: _GpmSample) -> None:
        self._call("nvmlGpmSampleFree")
        assert not sample.freed, "GPM sample freed twice"
        sample.freed = True
        self.gpm_live -= 1

    def nvmlGpmSampleGet(self, gpu: FakeGpu, sample: _GpmSample) -> _GpmSample:
        sample.t = self._call("nvmlGpmSampleGet", gpu)
        sample.gpu = gpu
        return sample

    def nvmlGpmMetricsGet(self, request: _MetricsGet) -> _MetricsGet:
        self._call("nvmlGpmMetricsGet")
        older, newer = request.sample1, request.sample2
        assert newer.t - older.t > 0.1, "GPM samples must be > 100 ms apart"
        metric = request.metrics[0]
        assert metric.metricId == NVML_GPM_METRIC_SM_UTIL
        metric.value = 100 * newer.gpu.sm_seconds(older.t, newer.t) / (newer.t - older.t)
        return request



def live_meter(gpu: FakeGpu, tick_s: float = 0.05, latency: dict[str, float] | None = None,
               **options: Any):
    """A real GpuMeter on the wall clock over one fake GPU that this process holds (the way the
    session tests drive it); ``latency`` models NVML's call times (``H200_LATENCY_S``);
    ``options`` go to GpuMeter (``checkpoint_s``...)."""
    from nbcost.meters.gpu import GpuMeter

    return GpuMeter(FakeNvml([gpu], time.time, latency=latency), environ={}, tick_s=tick_s,
                    pid_exists_here=lambda pid: True, cuda_in_process=lambda now: True, **options)

def drive(meter: Any, clock: Clock, until: float, tick_s: float = 0.1) -> None:
    """Advance the scripted clock to ``until``, polling the meter's sampler every tick."""
    sampler = meter.sampler
    if sampler.ticks == 0 and not getattr(sampler, "_probed", False):
        sampler._probed = True
        sampler.probe()
    while clock.now + tick_s <= until + 1e-9:
        clock.now = round(clock.now + tick_s, 9)
        sampler.poll()
    clock.now = max(clock.now, until)


# --- what the Session would be, for meter tests ---------------------------------------------------
def Window(id: str, kind: str, start: float, end: float | None = None,  # noqa: N802
           parent_id: str | None = None) -> WindowInfo:
    """A real ``WindowInfo``, as the Session makes it, with the fields the GPU meter reads."""
    return WindowInfo(id=id, kind=kind, start=start, end=end, parent_id=parent_id)


class RecordingSink:
    """A MeterSink that keeps what the meter logs and warns."""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings
        self.events: list[tuple[str, dict]] = []
        self.warnings: dict[str, str] = {}
        self.warn_calls = 0

    def record(self, usage: Any) -> None:
        raise AssertionError("the GPU meter reports no discrete usage")

    def log(self, event: str, fields: dict) -> None:
        self.events.append((event, dict(fields)))

    def warn_once(self, key: str, message: str) -> None:
        self.warn_calls += 1
        self.warnings.setdefault(key, message)

    def check_budget(self, meter: str) -> None:
        pass

    def current_cell(self) -> dict:
        return {}

    def checkpoints(self) -> list[dict]:
        return [fields for event, fields in self.events if event == "gpu_checkpoint"]
