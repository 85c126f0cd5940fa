"""NVML access for the GPU meter: the only module that talks to ``pynvml``.

``NvmlBackend`` wraps a pynvml-like module (the real one, or ``tests/fake_nvml.py``) and turns
every ``NVMLError`` into one of nbcost's own through a single decorator::

    GpuError
    ├── GpuUnavailable    no driver / library / device: the meter switches itself off
    ├── GpuNotSupported   this device lacks the query (no energy counter, no GPM, MIG)
    ├── GpuNoData         nothing new yet (an empty sample buffer); not a failure
    └── GpuLost           the device fell off the bus; stop reading it

``NullBackend`` is the stand-in when NVML cannot load: every query raises GpuUnavailable.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, TypeVar

__all__ = [
    "GpuError",
    "GpuLost",
    "GpuNoData",
    "GpuNotSupported",
    "GpuUnavailable",
    "NullBackend",
    "NvmlBackend",
    "load_backend",
]

F = TypeVar("F", bound=Callable[..., Any])


class GpuError(Exception):
    """An NVML query failed; ``code`` is NVML's return code where there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class GpuUnavailable(GpuError):
    """No NVIDIA driver, NVML library or device."""


class GpuNotSupported(GpuError):
    """The device does not offer this query."""


class GpuNoData(GpuError):
    """The query has nothing new to report yet."""


class GpuLost(GpuError):
    """The GPU is gone (fell off the bus, needs a reset)."""


# NVML return codes (nvml.h), so that the mapping works with any pynvml-like module.
_UNAVAILABLE = {1, 9, 12, 13, 18, 28}  # uninitialized, driver/library/function missing, mismatch
_NOT_SUPPORTED = {3, 4}  # not supported, no permission
_NO_DATA = {6, 21}  # not found, no data
_LOST = {15, 16}  # GPU is lost, reset required


def _map_error(error: Exception) -> GpuError:
    code = getattr(error, "value", None)
    message = f"NVML: {error}"
    if code in _NO_DATA:
        return GpuNoData(message, code)
    if code in _NOT_SUPPORTED:
        return GpuNotSupported(message, code)
    if code in _LOST:
        return GpuLost(message, code)
    if code in _UNAVAILABLE:
        return GpuUnavailable(message, code)
    return GpuError(message, code)


def _nvml_errors(method: F) -> F:
    """Translate the wrapped module's NVMLError into a GpuError (and nothing else)."""

    @functools.wraps(method)
    def wrapper(self: NvmlBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self.nvml.NVMLError as error:
            raise _map_error(error) from None

    return wrapper  # type: ignore[return-value]


# nvmlValueType_t → the member of the nvmlValue_t union holding the sample.
_VALUE_FIELDS = {
    0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend:
    """The NVML queries the GPU meter uses, with units in the names."""

    available = True

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml

    @_nvml_errors
    def init(self) -> None:
        self.nvml.nvmlInit()

    @_nvml_errors
    def shutdown(self) -> None:
        self.nvml.nvmlShutdown()

    @_nvml_errors
    def device_count(self) -> int:
        return int(self.nvml.nvmlDeviceGetCount())

    @_nvml_errors
    def handle_by_index(self, index: int) -> Any:
        return self.nvml.nvmlDeviceGetHandleByIndex(index)

    @_nvml_errors
    def handle_by_uuid(self, uuid: str) -> Any:
        return self.nvml.nvmlDeviceGetHandleByUUID(uuid)

    @_nvml_errors
    def uuid(self, handle: Any) -> str:
        return _text(self.nvml.nvmlDeviceGetUUID(handle))

    @_nvml_errors
    def name(self, handle: Any) -> str:
        return _text(self.nvml.nvmlDeviceGetName(handle))

    @_nvml_errors
    def mig_enabled(self, handle: Any) -> bool:
        current, _pending = self.nvml.nvmlDeviceGetMigMode(handle)
        return bool(current)

    @_nvml_errors
    def mig_children(self, handle: Any) -> list[Any]:
        children = []
        for index in range(self.nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                children.append(self.nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index))
            except self.nvml.NVMLError:  # an empty slot
                continue
        return children

    @_nvml_errors
    def mig_ids(self, mig_handle: Any) -> tuple[int, int]:
        """(GPU instance id, compute instance id) of a MIG device."""
        return (
            int(self.nvml.nvmlDeviceGetGpuInstanceId(mig_handle)),
            int(self.nvml.nvmlDeviceGetComputeInstanceId(mig_handle)),
        )

    @_nvml_errors
    def mig_parent(self, mig_handle: Any) -> Any:
        return self.nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig_handle)

    @_nvml_errors
    def utilization_samples(self, handle: Any, last_seen_us: int) -> list[tuple[int, float]]:
        """``[(timestamp µs, percent busy)]`` newer than ``last_seen_us``, oldest first.

        Raises GpuNoData when the buffer holds nothing newer.
        """
        nvml = self.nvml
        value_type, samples = nvml.nvmlDeviceGetSamples(
            handle, nvml.NVML_GPU_UTILIZATION_SAMPLES, last_seen_us
        )
        field = _VALUE_FIELDS.get(value_type, "uiVal")
        rows = [(int(s.timeStamp), float(getattr(s.sampleValue, field))) for s in samples]
        return sorted(row for row in rows if row[0] > last_seen_us)

    @_nvml_errors
    def energy_mj(self, handle: Any) -> int:
        """Energy used since the driver loaded, in millijoules (slow: ~4 ms on Hopper)."""
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle))

    @_nvml_errors
    def compute_processes(self, handle: Any) -> list[tuple[int, int | None]]:
        """``[(pid, used memory bytes or None)]`` of processes with a context on the device."""
        rows = []
        for proc in self.nvml.nvmlDeviceGetComputeRunningProcesses(handle):
            used = getattr(proc, "usedGpuMemory", None)
            # NVML reports "not available" (MIG, WDDM) as None or as the all-ones value.
            if used is None or used >= (1 << 63):
                used = None
            rows.append((int(proc.pid), None if used is None else int(used)))
        return rows

    @_nvml_errors
    def gpm_supported(self, handle: Any) -> bool:
        return bool(self.nvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)

    @_nvml_errors
    def gpm_alloc(self) -> Any:
        """A GPM sample buffer, reused for every reading (free it with :meth:`gpm_free`)."""
        return self.nvml.nvmlGpmSampleAlloc()

    @_nvml_errors
    def gpm_take(self, handle: Any, sample: Any) -> None:
        """Fill ``sample`` with the device's GPM counters now."""
        self.nvml.nvmlGpmSampleGet(handle, sample)

    @_nvml_errors
    def gpm_free(self, sample: Any) -> None:
        self.nvml.nvmlGpmSampleFree(sample)

    @_nvml_errors
    def gpm_sm_util_percent(self, older: Any, newer: Any) -> float:
        """Percent of SMs busy between two GPM samples taken > 100 ms apart."""
        nvml = self.nvml
        request = nvml.c_nvmlGpmMetricsGet_t()
        request.version = nvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = 1
        request.sample1 = older
        request.sample2 = newer
        request.metrics[0].metricId = nvml.NVML_GPM_METRIC_SM_UTIL
        nvml.nvmlGpmMetricsGet(request)
        metric = request.metrics[0]
        if metric.nvmlReturn != 0:
            raise nvml.NVMLError(metric.nvmlReturn)
        return float(metric.value)


class NullBackend:
    """Stands in when NVML cannot be loaded: the meter reports 'no GPU' and does nothing."""

    available = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def init(self) -> None:
        raise GpuUnavailable(self.reason)

    def shutdown(self) -> None:
        pass


def load_backend(nvml: Any = None) -> NvmlBackend | NullBackend:
    """The real NVML backend, the one wrapping ``nvml`` if given, or a NullBackend."""
    if nvml is not None:
        return NvmlBackend(nvml)
    if os.environ.get("NBCOST_NO_GPU"):
        return NullBackend("NBCOST_NO_GPU is set")
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return NullBackend("the nvidia-ml-py package (module pynvml) is not installed")
    return NvmlBackend(pynvml)
