"""``GpuMeter``: the Session's view of the GPU sampler.

``start`` maps the visible GPUs and starts the sampler thread (or says once that there is no
GPU); the window hooks note when top-level windows (cells, or ``track()`` blocks outside any cell,
as in a script) run; ``measure`` and ``session_measurement``
read the sampler's series. While a GPU is held, a ``gpu_checkpoint`` event with the session's
running figures goes to the spend log at least every ``checkpoint_s`` seconds, so a killed
kernel loses at most that much.
"""

from __future__ import annotations

import threading
import time
from array import array
from dataclasses import replace
from decimal import Decimal
from typing import Any, Callable, Mapping

from ..base import Measurement, Meter, MeterSink
from .backend import GpuError, NullBackend, load_backend
from .devices import visible_devices
from .figures import device_figures, measurement
from .inside import InsideWindows, union
from .sampler import Sampler

__all__ = ["GpuMeter"]

NO_GPU_MESSAGE = (
    "nbcost: no NVIDIA GPU visible ({reason}); GPU figures are off, everything else works."
)


def _say(line: str) -> None:
    """One informational line on stdout: in a notebook a plain output line, not the red
    stderr box a warning gets (no GPU is a fact about the machine, not a fault)."""
    print(line, flush=True)


class GpuMeter(Meter):
    """Held, busy and SM-weighted GPU time, energy and memory, per window and per session.

    Args:
        nvml: a pynvml-like module to use instead of the real ``pynvml`` (tests pass a fake).
        environ: the environment to read ``CUDA_VISIBLE_DEVICES`` from (default ``os.environ``).
        clock: ``time.time``-like; tests script it.
        pid: the process whose contexts count as held (default: this one).
        threaded: run the sampler in its thread; tests drive ``meter.sampler.poll()`` by hand.
        notice: where the one "no GPU visible" line goes (default: stdout).
    """

    name = "gpu"

    def __init__(
        self,
        nvml: Any = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        pid: int | None = None,
        threaded: bool = True,
        tick_s: float = 0.5,
        edge_wait_s: float = 0.02,
        checkpoint_s: float = 5.0,
        notice: Callable[[str], None] = _say,
        **sampler_options: Any,
    ) -> None:
        self._notice = notice
        self._nvml = nvml
        self._environ = environ
        self._clock = clock
        self._pid = pid
        self._threaded = threaded
        self._tick_s = tick_s
        self._checkpoint_s = checkpoint_s
        self._edge_wait_s = edge_wait_s
        self._sampler_options = sampler_options
        self._sink: MeterSink | None = None
        self._backend: Any = None
        self.sampler: Sampler | None = None
        self.reason_off: str | None = None
        self._off: Measurement | None = None
        self._session_start = 0.0
        self._open_windows: dict[str, float] = {}  # top-level windows: id -> start
        # Ended top-level windows as (start, end) pairs, flat: 16 bytes a cell for a session of
        # any length (a list of tuples is ~100).
        self._windows = array("d")
        self._windows_lock = threading.Lock()
        self._inside: dict[int, InsideWindows] = {}  # per device series: see _inside_windows
        self._last_checkpoint = 0.0
        self._was_held = False
        self._stopped = False

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, sink: MeterSink) -> None:
        if self.sampler is not None and not self._stopped:
            self.stop()  # started again: begin afresh
        self.sampler, self._stopped, self._was_held, self.reason_off = None, False, False, None
        self._inside = {}
        self._sink = sink
        self._session_start = self._clock()
        backend = load_backend(self._nvml)
        try:
            backend.init()
            devices, notes = visible_devices(backend, self._environ)
        except GpuError as error:
            reason = backend.reason if isinstance(backend, NullBackend) else str(error)
            self._switch_off(reason, backend)
            return
        except Exception as error:  # an unexpected pynvml: off, warned once, never raised
            self._switch_off(f"{type(error).__name__}: {error}", backend, fault=True)
            return
        if not devices:
            self._switch_off("CUDA_VISIBLE_DEVICES hides every GPU", backend)
            return
        self._backend = backend
        for note in notes:
            sink.warn_once(f"gpu:devices:{note[:40]}", f"nbcost: {note}")
        if any(d.mig for d in devices):
            sink.warn_once("gpu:mig", "nbcost: this kernel uses a MIG slice; NVML gives no "
                           "utilization or energy for slices, so only held time and memory are "
                           "measured (flag 'mig').")
        self.sampler = Sampler(backend, devices, notify=sink.warn_once, clock=self._clock,
                               pid=self._pid, tick_s=self._tick_s, on_tick=self._on_tick,
                               **self._sampler_options)
        if self._threaded:
            self.sampler.start()

    def _switch_off(self, reason: str, backend: Any, fault: bool = False) -> None:
        """No GPU to measure: say so in one quiet line (a broken pynvml is warned about)."""
        self.reason_off = reason
        try:
            backend.shutdown()
        except Exception:  # noqa: BLE001 - NVML may never have started
            pass
        message = NO_GPU_MESSAGE.format(reason=reason)
        if fault and self._sink is not None:
            self._sink.warn_once("gpu:none", message)
        elif not fault:
            self._notice(message)

    def stop(self) -> None:
        """Stop the sampler and close NVML; the series stay readable. Idempotent."""
        if self.sampler is None or self._stopped:
            return
        self._stopped = True
        self.sampler.stop()
        if self._was_held:
            self._checkpoint(self._clock(), final=True)
        if self.sampler.running:  # stuck in a slow NVML call: don't pull NVML from under it
            return
        try:
            self._backend.shutdown()
        except GpuError:
            pass

    # --- windows ------------------------------------------------------------------------------
    @property
    def watches_windows(self) -> bool:
        return self.sampler is not None  # no GPU: no edges to read, no spans to keep

    @property
    def measures_windows(self) -> bool:
        return self.sampler is not None  # no GPU: the same "no_gpu" figures for every window

    def window_started(self, window: Any) -> None:
        if self.sampler is None:  # no GPU: no figures, no spans to keep (every cell's path)
            return
        if not self._stopped:
            self.sampler.request_edge()
        # Top-level windows of any kind: a script's `track()` blocks are what its cells are to
        # a notebook, so held time outside all of them is the idle between.
        if window.parent_id is None:
            self._open_windows[window.id] = window.start

    def window_ended(self, window: Any) -> None:
        if self.sampler is None:
            return
        if not self._stopped:
            self.sampler.request_edge()
        start = self._open_windows.pop(window.id, None)
        if start is not None:
            end = window.end if window.end is not None else self._clock()
            with self._windows_lock:
                self._windows.extend((start, end))

    # --- figures ------------------------------------------------------------------------------
    def measure(self, start: float, end: float) -> Measurement | None:
        if self.sampler is None:
            return self._off_measurement()
        self._await_edge()
        figures = [(s, device_figures(s, start, end)) for s in self.sampler.series]
        return measurement(figures, start, end, self._settings())

    def session_measurement(self, start: float, end: float) -> Measurement | None:
        if self.sampler is None:
            return self._off_measurement()
        # Held time splits without overlap: inside the top-level windows into busy and stall
        # (held − busy there), outside them into busy (kernels still running after a cell) and
        # idle between (held − busy there); busy splits into SM-weighted and underfill. So the
        # three wastes never add up to more than the held time.
        figures = []
        for s in self.sampler.series:
            f = device_figures(s, start, end)
            held_in, busy_in = self._inside_windows(s, start, end)
            idle, stall = max(f.held_s - held_in, 0.0), f.stall_s
            if f.busy_s is not None:
                busy_in = min(busy_in, f.busy_s)
                stall = max(held_in - busy_in, 0.0)
                idle = max(idle - (f.busy_s - busy_in), 0.0)
            figures.append((s, replace(f, idle_between_s=idle, stall_s=stall)))
        return measurement(figures, start, end, self._settings())

    def _inside_windows(self, s: Any, start: float, end: float) -> tuple[float, float]:
        """Held and busy seconds of ``s`` inside the top-level windows between ``start`` and
        ``end`` (the open ones up to ``end``): each ended window summed once (see
        :mod:`.inside`); afresh only when windows overlap out of order or ``end`` is earlier
        than one of them."""
        inside = self._inside.get(id(s))
        if inside is None or inside.series is not s or inside.start != start:
            inside = self._inside[id(s)] = InsideWindows(s, start)
        with self._windows_lock:
            ended = self._windows[2 * inside.taken:].tolist()
            open_starts = list(self._open_windows.values())
        open_spans = [(max(a, start), end) for a in open_starts]
        sums = None
        if inside.take(ended) and end >= inside.latest_end:
            sums = inside.sums(open_spans)
        if sums is not None:
            return sums
        self._inside.pop(id(s), None)  # out of order: sum every window afresh, now and next time
        with self._windows_lock:
            flat = self._windows.tolist()
        spans = union([(max(a, start), min(b, end)) for a, b in zip(flat[::2], flat[1::2])]
                      + open_spans)
        held = busy = 0.0
        for a, b in spans:
            held += s.held.between(a, b)
            busy += s.busy_between(a, b)
        return held, busy

    def settles_later(self) -> bool:
        sampler = self.sampler
        return (self._threaded and sampler is not None and sampler.running
                and not sampler.edge_done.is_set())

    def when_settled(self, callback: Callable[[], None]) -> bool:
        sampler = self.sampler
        return sampler is not None and sampler.running and sampler.after_edge(callback)

    def _await_edge(self) -> None:
        """Right after a window edge, give the sampler thread a moment to read the counters.

        The thread wakes within a millisecond and the reads take a few; this waits at most
        ``edge_wait_s`` and only while such a read is pending (never during a live update).
        """
        sampler = self.sampler
        if self._threaded and sampler is not None and sampler.running and \
                threading.current_thread() is not sampler._thread:  # (it cannot wait for itself)
            if not sampler.edge_done.is_set():
                sampler.edge_done.wait(self._edge_wait_s)

    def _off_measurement(self) -> Measurement | None:
        if self.reason_off is None:
            return None  # not started
        if self._off is None or self._off.detail["reason"] != self.reason_off:
            # One frozen measurement for every window: the session reuses its figures.
            self._off = Measurement({}, Decimal(0), flags=("no_gpu",),
                                    detail={"reason": self.reason_off})
        return self._off

    def _settings(self) -> Any:
        return getattr(self._sink, "settings", None)

    # --- spend-log checkpoints (sampler thread) -----------------------------------------------
    def _on_tick(self, now: float) -> None:
        held = any(s.held_now for s in self.sampler.series) if self.sampler else False
        # Due one tick early, so that consecutive checkpoints are never more than 5 s apart.
        due = now - self._last_checkpoint >= self._checkpoint_s - self._tick_s - 1e-6
        if (held and due) or (held != self._was_held):
            self._checkpoint(now, final=not held)
        self._was_held = held

    def _checkpoint(self, now: float, final: bool = False) -> None:
        if self._sink is None or self.sampler is None:
            return
        self._last_checkpoint = now
        # The Session's start moves on `%cost reset`; the meter's own start is the fallback.
        since = getattr(self._sink, "started_at", None) or self._session_start
        m = self.session_measurement(since, now)
        if m is None:
            return
        # The documented cumulative shape, which readers rebuild a killed session's GPU from.
        self._sink.log("gpu_checkpoint", {
            "meter": self.name,
            "cumulative": True,
            "quantities": {k: round(v, 6) for k, v in m.quantities.items()},
            "cost_usd": None if m.cost_usd is None else str(m.cost_usd),
            "unpriced": m.cost_usd is None or m.unpriced,
            "flags": list(m.flags),
            "since": since,
            "until": now,
            "held_now": not final,
            "sampler_cpu_s": round(self.sampler.cpu_s, 6),
        })
