"""One device's held and busy seconds inside the session's top-level windows, summed once.

The session's idle-between figure needs, per device, the held and busy time inside every
top-level window so far. Summed afresh, each session total (every cell's end with the lab
extension, every live tick, every session-budget check) costs O(windows): about a second after
ten thousand cells. A window's share never changes once the device's series are known past its
end (a cumulative series is fixed before its last point), so each ended window is summed once
and kept as two numbers; only the newest windows and the open ones are summed at each call.
The sums are taken in time order, as the fresh computation takes them, so both give the same
figures.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["InsideWindows", "union"]


def union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping spans merged (two threads' top-level blocks may overlap), empty ones dropped."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


class InsideWindows:
    """Held and busy seconds of ``series`` (a ``DeviceSeries``) inside the union of the ended
    top-level windows, clipped to the session's ``start``: a running sum of the windows that
    are final, and the merged spans that are not yet (the device not known past their end)."""

    def __init__(self, series: Any, start: float) -> None:
        self.series = series
        self.start = start
        self.taken = 0  # ended windows consumed, of the meter's list
        self.latest_end = start
        self.held = 0.0  # over the final spans, in time order
        self.busy = 0.0
        self.final_until = start  # the end of the last final span
        self.tail: list[tuple[float, float]] = []  # merged spans after it, in time order

    def take(self, flat: Sequence[float]) -> bool:
        """Add the next ended windows (``start, end`` pairs, flat). False when one overlaps a
        span before the newest, out of time order: the caller sums afresh then."""
        tail = self.tail
        for i in range(0, len(flat), 2):
            a, b = max(flat[i], self.start), flat[i + 1]
            self.latest_end = max(self.latest_end, b)
            if b > a and not _extend(tail, a, b, self.final_until):
                return False
        self.taken += len(flat) // 2
        self._settle()
        return True

    def _settle(self) -> None:
        """Fold the spans the device is known past into the running sums. The newest stays in
        the tail: a window still open may yet overlap it."""
        s = self.series
        known = s.held.last_time
        if known is None:
            return
        if s.has_util:
            busy_known = s.busy.last_time
            known = min(known, busy_known) if busy_known is not None else None
        while known is not None and len(self.tail) > 1 and self.tail[0][1] <= known:
            a, b = self.tail.pop(0)
            self.held += s.held.between(a, b)
            self.busy += s.busy_between(a, b)
            self.final_until = b

    def sums(self, open_spans: list[tuple[float, float]]) -> tuple[float, float] | None:
        """``(held, busy)`` inside the ended windows and ``open_spans`` (open windows, to now);
        None when an open window overlaps an ended one out of time order."""
        s = self.series
        spans = list(self.tail)
        for a, b in sorted(open_spans):
            if b > a and not _extend(spans, a, b, self.final_until):
                return None
        held, busy = self.held, self.busy
        for a, b in spans:
            held += s.held.between(a, b)
            busy += s.busy_between(a, b)
        return held, busy


def _extend(spans: list[tuple[float, float]], a: float, b: float, floor: float) -> bool:
    """Add ``(a, b)`` to merged ``spans`` kept in time order (one that overlaps or touches the
    newest joins it); False when it starts before ``floor`` or before the newest span."""
    if a < floor or (spans and a < spans[-1][0]):
        return False
    if spans and a <= spans[-1][1]:
        spans[-1] = (spans[-1][0], max(spans[-1][1], b))
    else:
        spans.append((a, b))
    return True
