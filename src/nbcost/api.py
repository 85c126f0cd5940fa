"""The Python API: ``nbcost.session()`` and ``with nbcost.track(label) as t:``.

Works the same in notebooks and plain scripts: the first use starts a session for the process.
"""

from __future__ import annotations

import atexit
import threading
from decimal import Decimal
from typing import Any, Mapping

from .config import parse_tags
from .display.format import format_usd
from .errors import ConfigError
from .records import MeterTotals, WindowRecord
from .session import Session

__all__ = ["Tracked", "session", "set_session", "track"]

_current: Session | None = None
_current_lock = threading.Lock()


def session() -> Session:
    """The process's current session, started on first use (and ended at exit)."""
    global _current
    with _current_lock:
        if _current is None or _current.ended_at is not None:
            _current = Session()
            atexit.register(_current.close)
        return _current


def set_session(new: Session | None) -> Session | None:
    """Make ``new`` the current session (the IPython extension does); returns the old one."""
    global _current
    with _current_lock:
        old, _current = _current, new
        return old


class Tracked:
    """What a ``track()`` block cost; filled in when the block ends."""

    def __init__(self, label: str | None) -> None:
        self.label = label
        self.record: WindowRecord | None = None

    @property
    def cost_usd(self) -> Decimal:
        return self.record.cost_usd if self.record else Decimal(0)

    @property
    def unpriced(self) -> bool:
        return bool(self.record and self.record.unpriced)

    @property
    def gpu(self) -> MeterTotals | None:
        return self.record.gpu if self.record else None

    @property
    def llm(self) -> MeterTotals | None:
        return self.record.llm if self.record else None

    @property
    def wall_s(self) -> float:
        return self.record.wall_s if self.record else 0.0

    def __repr__(self) -> str:
        state = format_usd(self.cost_usd, self.unpriced) if self.record else "running"
        return f"<Tracked {self.label!r}: {state}>"


class track:  # noqa: N801 - used like a function: `with nbcost.track("label") as t:`
    """Measure a block of code as its own window (nested inside the cell it runs in).

    Examples
    --------
    ::

        In [1]: with nbcost.track("fine-tune", tags={"run": "7"}) as t:
           ...:     train()
        In [2]: t.cost_usd
        Out[2]: Decimal('1.92')
    """

    def __init__(self, label: str | None = None,
                 tags: Mapping[str, str] | str | None = None) -> None:
        self.tracked = Tracked(None if label is None else str(label))
        self._tags = _tags_of(tags)
        self._session: Session | None = None
        self._window_id: str | None = None

    def __enter__(self) -> Tracked:
        self._session = session()
        self._window_id = self._session.open_window("track", self.tracked.label, self._tags).id
        return self.tracked

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "ok" if exc_type is None else "error"
        self.tracked.record = self._session.close_window(self._window_id, status)


def _tags_of(tags: Any) -> dict[str, str]:
    """``{"run": "7"}`` or ``"run=7,env=dev"`` as text tags; anything else is a ConfigError."""
    if tags is None:
        return {}
    if isinstance(tags, str):
        return parse_tags(tags, "a tag of track()")
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    raise ConfigError(f"track(tags=...) takes a dict like {{'run': '7'}} or text like "
                      f"'run=7,env=dev'; got {type(tags).__name__} {tags!r}")
