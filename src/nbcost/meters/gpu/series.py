"""What the sampler has learnt about one GPU, as running totals over time.

The sampler thread writes; the kernel's main thread reads (``measure``) without touching NVML.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

from .devices import GpuDevice
from .integrate import CumulativeSeries, PeakSeries, SpanSet

__all__ = ["DeviceSeries", "HeldState", "MAX_EXTRAPOLATION_S"]

#: NVML's utilization sample period until the buffer tells us better (Hopper: 200 ms).
DEFAULT_SAMPLE_PERIOD_S = 0.2
#: How much of a window's unread end is extrapolated from the newest reading.
MAX_EXTRAPOLATION_S = 1.5


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
        self._pending: tuple[float, float, float, float | None] | None = None
        self._util_lock = threading.Lock()
        self._last_share = 0.0
        self._gaps: deque[float] = deque(maxlen=32)
        self._last_poll_t: float | None = None
        self._energy_offset_j = 0.0
        self._last_energy_j: float | None = None
        # Processes of ours seen on the device: pid -> [role, first seen, last seen, peak bytes]
        self.pids: dict[int, list] = {}

    @property
    def held_now(self) -> bool:
        return self.last_held in HeldState.HELD

    def add_utilization(self, samples: list[tuple[int, float]]) -> None:
        """Utilization samples ``(timestamp µs, percent)``; each covers the period before it.

        A sample says how much of its period was busy, not when. Busy time comes in runs, so a
        partly busy sample is packed against the busier of its neighbours (a cell that starts
        work mid-sample gets that work, not a uniform share); a sample is therefore placed once
        its successor is known and counted evenly until then.
        """
        with self._util_lock:
            for stamp_us, percent in samples:
                if stamp_us <= self.last_util_us:
                    continue
                t = stamp_us / 1e6
                gap = None if self._last_util_t is None else t - self._last_util_t
                if gap is not None and 0 < gap < 2.0:
                    self._gaps.append(gap)
                    self.sample_period_s = statistics.median(self._gaps)
                contiguous = gap is not None and 0 < gap <= 1.5 * self.sample_period_s
                # After lost samples (or at the first) a sample covers one period.
                start = self._last_util_t if contiguous else t - self.sample_period_s
                share = min(max(percent, 0.0), 100.0) / 100.0
                previous = self._pending
                if previous is not None:
                    self._place(previous, share if contiguous else None)
                before = previous[2] if previous is not None and contiguous else None
                self._pending = (start, t, share, before)
                self._last_share = share
                self._last_util_t = t
                self.last_util_us = stamp_us

    def _place(self, sample: tuple[float, float, float, float | None], after: float | None) -> None:
        start, end, share, before = sample
        left = share if before is None else before
        right = share if after is None else after
        align = "end" if right - left > 0.25 else "start" if left - right > 0.25 else "uniform"
        self.busy.add_block(start, end, share * (end - start), align)

    def busy_between(self, start: float, end: float) -> float:
        """Busy seconds in ``[start, end]``, the newest (not yet placed) sample counted evenly.

        The end of a window that just closed is not in the buffer yet (a sample appears when
        its period is over): up to ``MAX_EXTRAPOLATION_S`` of it is taken to be as busy as the
        newest sample, and is part of the reported uncertainty.
        """
        with self._util_lock:
            total = self.busy.between(start, end)
            known_until = self.busy.last_time
            if self._pending is not None:
                p_start, p_end, share, _ = self._pending
                total += share * max(0.0, min(end, p_end) - max(start, p_start))
                known_until = p_end
            if known_until is not None and 0 < end - known_until <= MAX_EXTRAPOLATION_S:
                total += self._last_share * (end - max(start, known_until))
        return total

    @property
    def busy_known_until(self) -> float | None:
        return self._pending[1] if self._pending is not None else self.busy.last_time

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

    def add_pids(self, t: float, seen: dict[int, tuple[str, int | None]]) -> None:
        """This process and its descendants with a context at one poll: ``{pid: (role, bytes)}``."""
        for pid, (role, memory) in seen.items():
            entry = self.pids.get(pid)
            if entry is None:
                self.pids[pid] = [role, t, t, memory or 0]
            else:
                entry[2] = t
                entry[3] = max(entry[3], memory or 0)

    def pids_between(self, start: float, end: float, slack_s: float = 1.0) -> dict[int, list]:
        """The processes of ours seen on the device in ``[start, end]`` (a poll's worth early:
        a context is known only at polls)."""
        return {pid: e for pid, e in list(self.pids.items())
                if e[1] <= end and e[2] >= start - slack_s}

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
