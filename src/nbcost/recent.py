"""What a session keeps in memory of its finished windows and usage: the last few, and counts.

A session may run for days and a million ``track()`` blocks; every window and every LLM call is
in the spend log, so memory holds only what the live views need at once: the last finished
windows (the panel's final message looks up the cell that just ended), the last top-level cells
(the panel's history after a reload) and running counts. ``%cost``, ``%cost compare`` and the
exports read the older ones back from the log (:mod:`nbcost.history`).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Iterator, TypeVar

__all__ = ["CELLS_KEPT", "Recent", "RecentWindows"]

T = TypeVar("T")
#: The finished top-level cells kept for the panel's history (``display.payload.MAX_HISTORY``).
CELLS_KEPT = 200


class Recent(Generic[T]):
    """The last ``maxlen`` items appended (oldest first), and how many were appended in all.

    Reads like a list of the items it still holds: ``len``, indexing (``[-1]`` is the newest),
    iteration. ``complete`` says whether it still holds every item ever appended. Appends come
    under the session's lock; ``list(recent)`` is safe from any thread (one C-level copy).
    """

    __slots__ = ("_items", "appended")

    def __init__(self, maxlen: int) -> None:
        self._items: deque[T] = deque(maxlen=maxlen)
        self.appended = 0

    def append(self, item: T) -> None:
        self._items.append(item)
        self.appended += 1

    @property
    def maxlen(self) -> int:
        return self._items.maxlen or 0

    @property
    def complete(self) -> bool:
        """True while nothing has been dropped: these are all the items there ever were."""
        return self.appended == len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))

    def __reversed__(self) -> Iterator[T]:
        return reversed(list(self._items))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self._items)[index]
        return self._items[index]

    def __bool__(self) -> bool:
        return bool(self._items)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: the last {len(self._items)} of {self.appended:,} "
                f"(at most {self.maxlen})>")


class RecentWindows(Recent):
    """Finished windows (``WindowRecord``): the last few, the last ``cells_kept`` top-level
    cells (what a reattached panel shows) and counts of the top-level windows and cells."""

    __slots__ = ("cells", "top_level", "top_cells")

    def __init__(self, maxlen: int, cells_kept: int) -> None:
        super().__init__(maxlen)
        self.cells: deque = deque(maxlen=cells_kept)
        self.top_level = 0  # windows with no parent: the rows of `%cost`
        self.top_cells = 0  # of them cells: what the status bar counts

    def append(self, record) -> None:
        self._items.append(record)
        self.appended += 1
        info = record.info
        if info.parent_id is None:
            self.top_level += 1
            if info.kind == "cell":
                self.top_cells += 1
                self.cells.append(record)

    def find(self, window_id: str):
        """The record of window ``window_id`` if it is among the last few, else None."""
        try:
            newest = self._items[-1]  # the usual question: the cell that just ended
        except IndexError:
            return None
        if newest.info.id == window_id:
            return newest
        for record in reversed(list(self._items)):
            if record.info.id == window_id:
                return record
        return None
