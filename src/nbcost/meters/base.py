"""The contract between meters and the Session.

A meter measures one kind of spend and knows nothing of IPython or the ledger. There are two
shapes of measurement, and a meter may use either or both:

* **Discrete usage** (an LLM call): the meter calls ``sink.record(Usage(...))`` when the call
  completes. The Session adds it to every window open at that moment and logs it at once.
* **Continuous usage** (GPU time): the Session calls ``meter.measure(start, end)`` when a window
  closes (and while it runs, for live display) and the meter returns a :class:`Measurement` for
  that span from the series it has been collecting in the background.

Example — a meter that charges one cent per second of wall time::

    class PennyMeter(Meter):
        name = "penny"
        def measure(self, start, end):
            seconds = end - start
            return Measurement({"seconds": seconds}, cost_usd=Decimal("0.01") * Decimal(seconds))

    nbcost.session().add_meter(PennyMeter())

Times are ``time.time()`` seconds (UTC epoch), the same clock NVML stamps its samples with.
Quantity names carry their units (``busy_s``, ``energy_j``, ``input_tokens``); the export columns
are ``<meter>_<quantity>``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["Measurement", "Meter", "MeterSink", "Usage", "WindowInfo", "utc_now"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(slots=True)
class WindowInfo:
    """A span of time that costs accrue to: a notebook cell or a ``track()`` block.

    Read-only: nbcost never changes one once built (a window that ends gets a new one, see
    :meth:`ended`), and neither should a meter. (Not a frozen dataclass: building one of those
    costs five times as much, and every cell builds two.)

    Attributes:
        start, end: ``time.time()`` seconds (UTC epoch); ``end`` is None while it runs.
        parent_id: the enclosing window's id; None for a top-level window.
    """

    id: str
    kind: str
    start: float
    label: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    cell_id: str | None = None
    execution_count: int | None = None
    parent_id: str | None = None
    end: float | None = None

    def ended(self, end: float) -> WindowInfo:
        """This window, closed at ``end`` (faster than ``dataclasses.replace`` on a hot path)."""
        return WindowInfo(self.id, self.kind, self.start, self.label, self.tags, self.cell_id,
                          self.execution_count, self.parent_id, end)

    @property
    def is_top_cell(self) -> bool:
        """A notebook's cell, not a ``track()`` block inside one: what badges and panel rows
        show, and what a :class:`~nbcost.session.CellWatcher` is told of."""
        return self.kind == "cell" and self.parent_id is None


@dataclass(slots=True)
class Usage:
    """One discrete, additive piece of usage, reported by a meter when it happens.

    Read-only once reported, like :class:`WindowInfo` (and not a frozen dataclass for the same
    reason: every LLM call builds one, on the caller's thread).

    Attributes:
        meter: the meter's name ("llm").
        event: the spend-log event type it is written as ("llm_call").
        key: what tables break usage down by (the model name).
        quantities: additive counts, summed per window and per key
            (``{"calls": 1, "input_tokens": 1200, ...}``).
        cost_usd: the price of this usage; ``None`` means *unpriced*, never zero.
        attributes: JSON-able facts written to the spend log but not summed
            (provider, base URL, latency). Never prompt text, keys or headers.
        flags: short words for anything degraded ("estimated", "error", "unpriced").
        at: when it completed, UTC.
    """

    meter: str
    event: str
    key: str
    quantities: Mapping[str, float]
    cost_usd: Decimal | None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    at: dt.datetime = field(default_factory=utc_now)


@dataclass(frozen=True, slots=True)
class Measurement:
    """What a continuous meter measured over one span of time.

    Attributes:
        quantities: the span's figures, units in the names (``held_s``, ``energy_j``).
        cost_usd: their price; ``None`` means *unpriced*.
        unpriced: part of the usage had no price: ``cost_usd`` is the priced part only (one GPU
            without a rate beside priced ones), so the true cost is higher by an unknown amount.
        breakdown: the same figures per key (per GPU), for detail tables.
        flags: short words for anything degraded ("partial", "mig", "no_gpu").
        detail: JSON-able extras (uncertainty, waste split, device names).
    """

    quantities: Mapping[str, float]
    cost_usd: Decimal | None
    breakdown: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)
    unpriced: bool = False


class MeterSink(Protocol):
    """What the Session offers a meter. Every method is safe to call from any thread."""

    #: The session's :class:`nbcost.config.Settings` (rates, price overrides); read it at
    #: measuring time, since ``%cost gpu-rate`` and friends change it mid-session.
    settings: Settings

    def record(self, usage: Usage) -> None:
        """Attribute ``usage`` to the open windows and append it to the spend log at once."""

    def log(self, event: str, fields: Mapping[str, Any]) -> None:
        """Append a meter's own event (``gpu_checkpoint``) to the spend log."""

    def warn_once(self, key: str, message: str) -> None:
        """Tell the user ``message`` once per session (keyed by ``key``)."""

    def check_budget(self, meter: str) -> None:
        """Raise :class:`nbcost.BudgetExceeded` if a hard budget is spent; log the refusal."""

    def current_cell(self) -> Mapping[str, Any]:
        """``{"cell_id": ..., "execution_count": ...}`` of the cell running now, or empty."""


class Meter:
    """Base class for meters. Override what your meter needs; every hook is optional.

    The Session calls these from the kernel's main thread and must never be slowed: ``start``
    may launch a background thread, while the window hooks and ``measure`` only read memory.
    """

    #: The meter's name: the prefix of its export columns and the key of its figures.
    name: str = "meter"

    def start(self, sink: MeterSink) -> None:
        """Begin measuring. Called once when the session starts (or the meter is added)."""

    def stop(self) -> None:
        """Stop measuring and release threads and handles. Idempotent."""

    @property
    def watches_windows(self) -> bool:
        """Whether the window hooks below need calling (asked after :meth:`start`): a meter with
        nothing to watch (a GPU meter without a GPU) says False, and no cell pays for them."""
        return True

    def window_started(self, window: WindowInfo) -> None:
        """A cell or ``track()`` block began (timestamps only; do no slow I/O here)."""

    def window_ended(self, window: WindowInfo) -> None:
        """A cell or ``track()`` block ended (timestamps only; do no slow I/O here)."""

    def measure(self, start: float, end: float) -> Measurement | None:
        """Figures for the span ``[start, end]`` (``time.time()`` seconds), or ``None``."""
        return None

    @property
    def measures_windows(self) -> bool:
        """Whether :meth:`measure` may give windows different figures (asked after
        :meth:`start`): a meter that gives every window the same ones (a GPU meter without a
        GPU) says False, and windows without usage reuse them without asking it again."""
        return True

    def settles_later(self) -> bool:
        """Whether figures of a window that just ended are still being read (on the meter's
        own thread); then the Session finishes the window in :meth:`when_settled`."""
        return False

    def when_settled(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` (on any thread) once the pending reads are in; False if they
        already are (the caller then goes on at once)."""
        return False

    def session_measurement(self, start: float, end: float) -> Measurement | None:
        """Figures for the whole session so far; defaults to :meth:`measure`.

        A GPU meter overrides it to add what no window sees: the time the GPU sat held
        between cells.
        """
        return self.measure(start, end)
