"""The one background thread that reads NVML for the whole kernel.

Measured on an H200 (driver 580), the slow reads cost CPU, not just time: the energy counter
3.4 ms and the utilization buffer 1.4 ms of a core per read; the process list 31 µs, a GPM
sample 43 µs. And every NVML call releases the GIL and takes it back, pulling it away from a busy
main thread. So the sampler wakes rarely (every ``tick_s``), reads each figure on its own
cadence (``CADENCE_S``), and reads energy and utilization *at window edges*: the window
hooks only set an Event (no NVML on the kernel's main thread), the thread wakes within a
millisecond and reads, so an edge is known to the counter's own resolution (~100 ms) however
rare the timed reads are. Edge reads are at most one per ``EDGE_MIN_INTERVAL_S`` (a burst of
tiny cells defers them, it does not skip them). The utilization buffer keeps ~14 s of 200 ms
samples; each read asks only for those newer than the last seen, so nothing is lost.
``measure`` reads these series and never NVML.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from .attribution import CudaInProcess, Descendants, classify, pid_exists_here
from .backend import GpuError, GpuLost, GpuNoData, GpuNotSupported
from .devices import GpuDevice
from .series import DeviceSeries, HeldState

__all__ = ["Sampler"]

Notify = Callable[[str, str], None]

#: Seconds between timed reads, (while held, while not held); None: not read.
CADENCE_S: dict[str, tuple[float, float | None]] = {
    "processes": (1.0, 1.0),  # held? our memory (window edges read it too)
    "utilization": (2.0, 5.0),  # the buffer holds ~14 s
    "energy": (5.0, 10.0),  # edges are read on demand
    "gpm": (1.0, None),  # SM utilization, only while held
}
#: Edge reads (energy + utilization, ~5 ms of CPU) happen at most this often.
EDGE_MIN_INTERVAL_S = 0.5


class Sampler:
    """Reads NVML into one :class:`DeviceSeries` per device, in a daemon thread or by hand.

    Tests call :meth:`probe` and :meth:`poll` directly with a scripted clock.
    """

    def __init__(
        self,
        backend: Any,
        devices: list[GpuDevice],
        *,
        notify: Notify,
        clock: Callable[[], float] = time.time,
        pid: int | None = None,
        tick_s: float = 0.5,
        on_tick: Callable[[float], None] | None = None,
        pid_exists_here: Callable[[int], bool] = pid_exists_here,
        cuda_in_process: Callable[[float], bool] | None = None,
        descendants: Callable[[Any], set[int]] | None = None,
    ) -> None:
        self.backend = backend
        self.series = [DeviceSeries(d) for d in devices]
        self.notify = notify
        self.clock = clock
        self.pid = os.getpid() if pid is None else pid
        self.tick_s = tick_s
        self.on_tick = on_tick
        self.pid_exists_here = pid_exists_here
        self.cuda_in_process = cuda_in_process or CudaInProcess()
        self.descendants = descendants or Descendants(self.pid)
        self.cpu_s = 0.0  # this thread's CPU time, for the overhead benchmark
        self.ticks = 0
        self._gpm: dict[int, list[Any]] = {}  # [previous sample, spare, previous time]
        self._due: dict[tuple[int, str], float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._edge_requested = False
        self._edge_wanted = False
        self._last_edge_read = -1e18
        self.edge_done = threading.Event()
        self.edge_done.set()
        # Run on this thread once the pending edge read is in (a cell finished asynchronously).
        self._after_edge: list[Callable[[], None]] = []
        self._after_edge_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- the thread -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="nbcost-gpu-sampler",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (idempotent) and free GPM samples."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
            if self._thread.is_alive():  # stuck in a slow NVML call: leave its buffers alone
                return
        for previous, spare, _ in self._gpm.values():
            for sample in (previous, spare):
                try:
                    self.backend.gpm_free(sample)
                except GpuError:
                    pass
        self._gpm.clear()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_edge(self) -> None:
        """A window began or ended: read the held GPUs' counters now (from the thread).

        Cheap and safe on the main thread: it only sets an Event.
        """
        self.edge_done.clear()
        self._edge_requested = True
        self._wake.set()

    def after_edge(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` on this thread once the edge read asked for is done; False if it
        is done already (then the caller goes on itself)."""
        with self._after_edge_lock:  # edge_done is set outside it, the list taken inside it
            if self.edge_done.is_set():
                return False
            self._after_edge.append(callback)
            return True

    def _run_after_edge(self) -> None:
        with self._after_edge_lock:
            callbacks, self._after_edge = self._after_edge, []
        for callback in callbacks:
            try:
                callback()
            except Exception as error:  # noqa: BLE001 - the sampler must go on
                self.notify("gpu:after-edge", f"nbcost: finishing a cell's record failed "
                            f"({error!r}); your code is unaffected.")

    def _run(self) -> None:
        started = time.thread_time()
        self._guarded(self.probe)
        self.cpu_s += time.thread_time() - started
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._wake.clear()  # before the poll: a request during it wakes the next wait
            started = time.thread_time()
            self._guarded(self.poll)
            self.cpu_s += time.thread_time() - started
            if time.monotonic() >= next_at:
                next_at += self.tick_s
            delay = next_at - time.monotonic()
            if delay < 0:  # we fell behind (a slow read): don't burst to catch up
                next_at, delay = time.monotonic() + self.tick_s, self.tick_s
            self._wake.wait(delay)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as error:  # nbcost must never take the kernel down
            self.notify("gpu:sampler", f"nbcost: the GPU sampler hit an error ({error!r}); "
                        "GPU figures from now on may be partial.")
            for s in self.series:
                s.add_error(self.clock() - self.tick_s, self.clock())

    # --- one round ----------------------------------------------------------------------------
    def probe(self) -> None:
        """Find out once whether each device offers GPM, then take the first readings."""
        for s in self.series:
            if not s.device.mig:
                try:
                    s.has_sm = self.backend.gpm_supported(s.device.handle)
                except GpuError:
                    s.has_sm = False
        self.poll()  # everything is due: energy, the buffer's history, the process list

    def _due_now(self, s: DeviceSeries, kind: str, now: float) -> bool:
        held_every, idle_every = CADENCE_S[kind]
        every = held_every if s.held_now else idle_every
        key = (s.device.ordinal, kind)
        if every is None or now < self._due.get(key, now):
            return False
        self._due[key] = now + every - 1e-6
        return True

    def poll(self) -> None:
        """One round: the edge reads if asked for (and not too soon), then whatever is due."""
        requested, self._edge_requested = self._edge_requested, False
        now = self.clock()
        self._edge_wanted = self._edge_wanted or requested
        edge = self._edge_wanted and now - self._last_edge_read >= EDGE_MIN_INTERVAL_S
        if edge:
            self._edge_wanted, self._last_edge_read = False, now
        for s in self.series:
            if s.lost:
                continue
            if self._due_now(s, "processes", now) or requested:  # cheap: every edge
                self._read_processes(s, now)
            if s.has_energy and (self._due_now(s, "energy", now) or edge and s.held_now):
                self._read_energy(s)
            if s.has_util and (self._due_now(s, "utilization", now) or edge and s.held_now):
                self._read_util(s)
            if s.has_sm and self._due_now(s, "gpm", now):
                self._read_gpm(s)
        if requested:
            self.edge_done.set()
            self._run_after_edge()
        self.ticks += 1
        if self.on_tick is not None:
            self.on_tick(now)

    # --- reads --------------------------------------------------------------------------------
    def _failed(self, s: DeviceSeries, what: str, error: GpuError) -> None:
        now = self.clock()
        s.add_error(now - 2 * self.tick_s, now)
        if isinstance(error, GpuLost):
            s.lost = True
        self.notify(
            f"gpu:error:{s.device.ordinal}",
            f"nbcost: reading {what} of GPU {s.device.key} failed ({error}); the GPU figures of "
            "cells running now are marked partial.",
        )

    def _read_processes(self, s: DeviceSeries, now: float) -> None:
        try:
            processes = self.backend.compute_processes(s.device.handle)
        except GpuNoData:
            processes = []
        except GpuError as error:
            self._failed(s, "the process list", error)
            # A context does not end because NVML failed: the last state carries on, flagged.
            s.add_process_poll(now, s.last_held, None, others=False)
            return
        listed = dict(processes)
        others = [pid for pid in listed if pid != self.pid]
        children = self.descendants(others) if others else set()
        state, memory, others = classify(listed, self.pid, now, self.pid_exists_here,
                                         self.cuda_in_process, children)
        s.add_process_poll(now, state, memory, others)
        if children or self.pid in listed:  # per process, for the window's detail
            s.add_pids(now, {pid: ("kernel" if pid == self.pid else "child", listed[pid])
                             for pid in listed if pid == self.pid or pid in children})
        if state == HeldState.DEVICE_WIDE:
            self.notify(
                "gpu:pid_not_visible",
                "nbcost: this kernel's process id is not in NVML's process list (a container "
                "without the host pid namespace?); it is the only process on the GPU, so nbcost "
                "counts the whole GPU's figures as this kernel's (flag 'device_wide').",
            )
        elif state == HeldState.UNATTRIBUTED:
            self.notify(
                "gpu:unattributed",
                f"nbcost: this kernel's process id is not in NVML's process list and "
                f"{len(processes)} processes use GPU {s.device.key}, so its GPU time cannot be "
                "attributed to this kernel (flag 'unattributed'); run the container with "
                "--pid=host to fix this.",
            )

    def _read_energy(self, s: DeviceSeries) -> None:
        before = self.clock()
        try:
            energy_mj = self.backend.energy_mj(s.device.handle)
        except GpuNotSupported:
            s.has_energy = False
            self.notify(
                "gpu:no_energy",
                f"nbcost: GPU {s.device.key} has no energy counter (older than Volta?); "
                "energy and power are not reported for it (flag 'no_energy').",
            )
            return
        except GpuNoData:
            return
        except GpuError as error:
            self._failed(s, "the energy counter", error)
            return
        # The read takes milliseconds; stamp it in the middle.
        s.add_energy((before + self.clock()) / 2, energy_mj)

    def _read_util(self, s: DeviceSeries) -> None:
        try:
            samples = self.backend.utilization_samples(s.device.handle, s.last_util_us)
        except GpuNoData:
            return
        except GpuNotSupported:
            s.has_util = False
            return
        except GpuError as error:
            self._failed(s, "the utilization buffer", error)
            return
        s.add_utilization(samples)

    def _read_gpm(self, s: DeviceSeries) -> None:
        """Take a GPM sample into the spare buffer; SM utilization since the previous one.

        Two buffers per device are allocated once and swapped, so a reading is two NVML calls
        (every call hands the GIL back and forth with the kernel's main thread).
        """
        index = s.device.ordinal
        try:
            if index not in self._gpm:
                self._gpm[index] = [self.backend.gpm_alloc(), self.backend.gpm_alloc(), None]
            previous, spare, previous_at = self._gpm[index]
            self.backend.gpm_take(s.device.handle, spare)
            taken_at = self.clock()
            self._gpm[index] = [spare, previous, taken_at]
            if previous_at is not None and taken_at - previous_at > 0.1:  # GPM needs > 100 ms
                s.add_sm(previous_at, taken_at, self.backend.gpm_sm_util_percent(previous, spare))
        except GpuError as error:
            self._failed(s, "GPM", error)
