"""Whose context is it? Reading this process's hold on a GPU from NVML's process list.

NVML reports host pids, and the driver knows nothing of pid namespaces: in a container without
``--pid=host`` this process's pid is not in the list. Then, if this process has loaded libcuda
and one process is on the GPU, that process is taken to be this one (``device_wide``); with
several, nothing is attributed (``unattributed``). A listed pid that exists in this process's
own namespace is someone else's process on the same machine.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

from .series import HeldState

__all__ = ["CudaInProcess", "classify", "pid_exists_here"]


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


def classify(
    processes: Mapping[int, int | None],
    own_pid: int,
    now: float,
    exists_here: Callable[[int], bool] = pid_exists_here,
    cuda_in_process: Callable[[float], bool] = lambda now: True,
) -> tuple[str, int | None, bool]:
    """``(HeldState, this process's memory in bytes or None, other processes present?)``."""
    if own_pid in processes:
        return HeldState.OWN, processes[own_pid], len(processes) > 1
    if not processes or any(exists_here(pid) for pid in processes):
        # Nobody, or only processes of our own pid namespace: not held by us.
        return HeldState.NONE, None, bool(processes)
    if not cuda_in_process(now):
        return HeldState.NONE, None, True
    if len(processes) == 1:
        return HeldState.DEVICE_WIDE, next(iter(processes.values())), False
    return HeldState.UNATTRIBUTED, None, True
