"""Whose context is it? Reading this process's hold on a GPU from NVML's process list.

NVML reports host pids, and the driver knows nothing of pid namespaces: in a container without
``--pid=host`` this process's pid is not in the list. Then, if this process has loaded libcuda
and one process is on the GPU, that process is taken to be this one (``device_wide``); with
several, nothing is attributed (``unattributed``). A listed pid that exists in this process's
own namespace is someone else's process on the same machine, unless it descends from this one:
a training script the kernel started (``!python train.py``, ``torchrun``, multiprocessing
workers) holds the GPU for the cell that started it, so its contexts count as this process's.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping

from .series import HeldState

__all__ = ["CudaInProcess", "Descendants", "classify", "pid_exists_here"]


def pid_exists_here(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


class CudaInProcess:
    """Whether this process has loaded libcuda (no context is possible without it).

    Checked at most every 2 s, and only when NVML lists pids we cannot see, so that another
    container's job is not billed to a notebook that never touched CUDA.
    """

    def __init__(self) -> None:
        self._loaded = False
        self._checked_at = -1e9

    def __call__(self, now: float) -> bool:
        if self._loaded or now - self._checked_at < 2.0:
            return self._loaded
        self._checked_at = now
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                self._loaded = any("libcuda.so" in line for line in maps)
        except OSError:  # not Linux: trust the process list alone
            self._loaded = True
        return self._loaded


class Descendants:
    """Which of some pids descend from ``pid``, by their ancestry now (psutil); asked only
    about pids NVML lists besides this process's own, so a GPU of its own costs nothing."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        # pid -> (its start time, descends?): a process's ancestry is fixed at its start, so
        # each is walked once (a reused pid has another start time); a shared GPU's many
        # strangers then cost one /proc read each per poll.
        self._verdicts: dict[int, tuple[float, bool]] = {}

    def __call__(self, pids: Iterable[int]) -> set[int]:
        import psutil

        found, verdicts = set(), {}
        for pid in pids:
            try:
                process = psutil.Process(pid)
                started = process.create_time()
                known = self._verdicts.get(pid)
                if known is not None and known[0] == started:
                    ours = known[1]
                else:
                    ours = any(parent.pid == self.pid for parent in process.parents())
            except psutil.Error:  # gone, or not ours to see
                continue
            verdicts[pid] = (started, ours)
            if ours:
                found.add(pid)
        self._verdicts = verdicts  # only the pids listed now: the cache never grows
        return found


def classify(
    processes: Mapping[int, int | None],
    own_pid: int,
    now: float,
    exists_here: Callable[[int], bool] = pid_exists_here,
    cuda_in_process: Callable[[float], bool] = lambda now: True,
    descendants: set[int] | frozenset[int] = frozenset(),
) -> tuple[str, int | None, bool]:
    """``(HeldState, memory in bytes or None of this process and its descendants, other
    processes present?)``."""
    ours = [pid for pid in processes if pid == own_pid or pid in descendants]
    if ours:
        memories = [processes[pid] for pid in ours if processes[pid] is not None]
        return (HeldState.OWN, sum(memories) if memories else None,
                len(processes) > len(ours))
    if not processes or any(exists_here(pid) for pid in processes):
        # Nobody, or only processes of our own pid namespace: not held by us.
        return HeldState.NONE, None, bool(processes)
    if not cuda_in_process(now):
        return HeldState.NONE, None, True
    if len(processes) == 1:
        return HeldState.DEVICE_WIDE, next(iter(processes.values())), False
    return HeldState.UNATTRIBUTED, None, True
