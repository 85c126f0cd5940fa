"""Pure integration maths for the GPU sampler's series. No NVML, no threads of its own.

Every figure the meter reports over a window ``[a, b]`` is a difference of a running total:

* busy seconds: each utilization sample covers the period *before* its timestamp at a constant
  rate, so the running total rises linearly through that period and a window that cuts a sample
  gets the clipped share of it;
* held and SM-weighted seconds: the same, built from process-list polls and GPM intervals;
* energy: NVML's counter already is a running total (mJ); reads are interpolated at the edges.

A window therefore costs two binary searches, however long the session is.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right

__all__ = ["CumulativeSeries", "PeakSeries", "SpanSet"]


class CumulativeSeries:
    """A non-decreasing running total known at increasing times, linear in between.

    Before the first point the total is the first value; after the last, the last value: time
    nobody sampled adds nothing (and is reported as a gap elsewhere, never guessed).
    Thread-safe: one writer (the sampler), any readers.
    """

    __slots__ = ("_times", "_totals", "_lock")

    def __init__(self) -> None:
        self._times = array("d")
        self._totals = array("d")
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._times)

    @property
    def last_time(self) -> float | None:
        return self._times[-1] if self._times else None

    @property
    def last_total(self) -> float:
        return self._totals[-1] if self._totals else 0.0

    @property
    def last_rate(self) -> float:
        """Units per second over the newest segment (0 with fewer than two points)."""
        with self._lock:
            if len(self._times) < 2 or self._times[-1] <= self._times[-2]:
                return 0.0
            return (self._totals[-1] - self._totals[-2]) / (self._times[-1] - self._times[-2])

    def append(self, t: float, total: float) -> None:
        """Record the running total ``total`` at time ``t``; out-of-order points are dropped."""
        with self._lock:
            if self._times and t <= self._times[-1]:
                return
            self._times.append(t)
            self._totals.append(max(total, self.last_total))

    def add_span(self, start: float, end: float, rate: float) -> None:
        """Add ``rate`` units per second over ``(start, end]``, clipped to after the last point.

        A gap between the last point and ``start`` stays flat (nothing known, nothing added).
        """
        with self._lock:
            last = self._times[-1] if self._times else None
            if last is not None and end <= last:
                return
            if last is None or start > last:
                self._times.append(start)
                self._totals.append(self.last_total)
            else:
                start = last
            self._times.append(end)
            self._totals.append(self._totals[-1] + max(rate, 0.0) * (end - start))

    def add_block(self, start: float, end: float, amount: float, align: str = "uniform") -> None:
        """Add ``amount`` units over ``(start, end]``, spread evenly or packed at one end.

        ``align="end"`` puts it all just before ``end`` (work that continues into the next
        period), ``"start"`` just after ``start`` (work that began in the period before).
        """
        amount = min(max(amount, 0.0), end - start)
        if align == "end" and 0 < amount < end - start:
            self.add_span(start, end - amount, 0.0)
            self.add_span(end - amount, end, 1.0)
        elif align == "start" and 0 < amount < end - start:
            self.add_span(start, start + amount, 1.0)
            self.add_span(start + amount, end, 0.0)
        else:
            self.add_span(start, end, amount / (end - start) if end > start else 0.0)

    def value_at(self, t: float) -> float:
        with self._lock:
            times, totals = self._times, self._totals
            if not times:
                return 0.0
            i = bisect_right(times, t)
            if i == 0:
                return totals[0]
            if i == len(times):
                return totals[-1]
            t0, t1 = times[i - 1], times[i]
            c0, c1 = totals[i - 1], totals[i]
            return c0 + (c1 - c0) * (t - t0) / (t1 - t0)

    def between(self, start: float, end: float) -> float:
        """The amount added over ``[start, end]``."""
        if end <= start:
            return 0.0
        return max(self.value_at(end) - self.value_at(start), 0.0)


class PeakSeries:
    """Point readings (memory in bytes) with the peak over a window.

    A reading holds until the next one, so the reading just before a window counts for it.
    """

    __slots__ = ("_times", "_values", "_lock", "peak")

    def __init__(self) -> None:
        self._times = array("d")
        self._values = array("d")
        self._lock = threading.Lock()
        self.peak = 0.0

    def __len__(self) -> int:
        return len(self._times)

    def append(self, t: float, value: float) -> None:
        with self._lock:
            if self._times and t <= self._times[-1]:
                return
            self._times.append(t)
            self._values.append(value)
            self.peak = max(self.peak, value)

    def peak_between(self, start: float, end: float) -> float | None:
        """The largest reading in force during ``[start, end]``, or None with no reading."""
        with self._lock:
            first = max(bisect_right(self._times, start) - 1, 0)
            last = bisect_right(self._times, end)
            values = self._values[first:last]
        return max(values) if values else None


class SpanSet:
    """Merged time spans where something held (an NVML error, another process on the GPU)."""

    __slots__ = ("_starts", "_ends", "_lock")

    def __init__(self) -> None:
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._starts)

    def add(self, start: float, end: float) -> None:
        if end < start:
            start, end = end, start
        with self._lock:
            if self._ends and start <= self._ends[-1]:
                self._ends[-1] = max(self._ends[-1], end)
                self._starts[-1] = min(self._starts[-1], start)
            else:
                self._starts.append(start)
                self._ends.append(end)

    def overlaps(self, start: float, end: float) -> bool:
        """True if any span touches ``[start, end]``."""
        with self._lock:
            i = bisect_left(self._ends, start)
            return i < len(self._starts) and self._starts[i] <= end

    def seconds_within(self, start: float, end: float) -> float:
        with self._lock:
            return sum(
                max(0.0, min(e, end) - max(s, start)) for s, e in zip(self._starts, self._ends)
            )
