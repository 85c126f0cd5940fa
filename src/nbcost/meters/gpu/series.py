"""What the sampler has learnt about one GPU, as running totals over time.

The sampler thread writes; the kernel's main thread reads (``measure``) without touching NVML.
"""

from __future__ import annotations

import statistics
from collections import deque

from .devices import GpuDevice
from .integrate import CumulativeSeries, PeakSeries, SpanSet

__all__ = ["DeviceSeries", "HeldState"]

#: NVML's utilization sample period until the buffer tells us better (Hopper: 200 ms).
DEFAULT_SAMPLE_PERIOD_S = 0.2


class HeldState:
    """Who has a context on the GPU at one process-list poll."""

    OWN = "own"  # our pid is listed
    DEVICE_WIDE = "device_wide"  # our pid is invisible (container) and one process is listed
    UNATTRIBUTED = "unattributed"  # our pid is invisible and several processes are listed
    NONE = "none"  # not held by this process

    HELD = (OWN, DEVICE_WIDE)


class DeviceSeries:
    """Running totals for one device; every time is ``time.time()`` seconds."""

    def __init__(self, device: GpuDevice) -> None:
        self.device = device
        self.busy = CumulativeSeries()  # busy seconds (utilization buffer)
        self.held = CumulativeSeries()  # seconds this process held a context
        self.sm = CumulativeSeries()  # SM-weighted seconds (GPM SM_UTIL)
        self.energy = CumulativeSeries()  # joules since the driver loaded (plus resets)
        self.memory = PeakSeries()  # bytes this process has on the device
        self.errors = SpanSet()  # NVML failed here: figures are partial
        self.shared = SpanSet()  # other processes had contexts on the device
        self.device_wide = SpanSet()  # our pid is invisible; the device's figures stand in
        self.unattributed = SpanSet()  # our pid is invisible among several processes
        self.has_util = not device.mig  # MIG slices report no utilization
        self.has_energy = not device.mig  # the counter exists for the parent GPU only
        self.has_sm = False  # set when GPM answers
        self.lost = False
        self.sample_period_s = DEFAULT_SAMPLE_PERIOD_S
        self.last_util_us = 0
        self.last_held = HeldState.NONE
        self._last_util_t: float | None = None
        self._gaps: deque[float] = deque(maxlen=32)
        self._last_poll_t: float | None = None
        self._energy_offset_j = 0.0
        self._last_energy_j: float | None = None

    @property
    def held_now(self) -> bool:
        return self.last_held in HeldState.HELD

    def add_utilization(self, samples: list[tuple[int, float]]) -> None:
        """Utilization samples ``(timestamp µs, percent)``; each covers the period before it."""
        for stamp_us, percent in samples:
            if stamp_us <= self.last_util_us:
                continue
            t = stamp_us / 1e6
            gap = None if self._last_util_t is None else t - self._last_util_t
            if gap is not None and 0 < gap < 2.0:
                self._gaps.append(gap)
                self.sample_period_s = statistics.median(self._gaps)
            if gap is not None and 0 < gap <= 1.5 * self.sample_period_s:
                start = self._last_util_t
            else:  # the first sample, or one after samples were lost: one period's worth
                start = t - self.sample_period_s
            self.busy.add_span(start, t, min(max(percent, 0.0), 100.0) / 100.0)
            self._last_util_t = t
            self.last_util_us = stamp_us

    def add_process_poll(
        self, t: float, state: str, own_memory_bytes: int | None, others: bool
    ) -> None:
        """One process-list poll; the span since the previous poll gets its state.

        A change of state between polls happened somewhere in between: half the span counts.
        """
        prev_t, prev_state = self._last_poll_t, self.last_held
        if prev_t is None:
            self.held.append(t, self.held.last_total)
        else:
            now_held, was_held = state in HeldState.HELD, prev_state in HeldState.HELD
            rate = 1.0 if now_held and was_held else 0.5 if now_held or was_held else 0.0
            self.held.add_span(prev_t, t, rate)
            span_start = prev_t
            if others:
                self.shared.add(span_start, t)
            if state == HeldState.DEVICE_WIDE:
                self.device_wide.add(span_start, t)
            if state == HeldState.UNATTRIBUTED:
                self.unattributed.add(span_start, t)
        if own_memory_bytes is not None:
            self.memory.append(t, float(own_memory_bytes))
        self._last_poll_t, self.last_held = t, state

    def add_energy(self, t: float, energy_mj: int) -> None:
        """One energy-counter read; a counter that went backwards (driver reload) is continued."""
        joules = energy_mj / 1000.0
        if self._last_energy_j is not None and joules < self._last_energy_j:
            self._energy_offset_j += self._last_energy_j
        self._last_energy_j = joules
        self.energy.append(t, self._energy_offset_j + joules)

    def add_sm(self, start: float, end: float, sm_percent: float) -> None:
        """GPM's SM utilization between two samples taken at ``start`` and ``end``."""
        self.sm.add_span(start, end, min(max(sm_percent, 0.0), 100.0) / 100.0)

    def add_error(self, start: float, end: float) -> None:
        self.errors.add(start, end)
