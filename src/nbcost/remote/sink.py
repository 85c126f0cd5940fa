"""What every sink outside the kernel (a child process, a Dask or Ray worker) shares: meters
there only record usage, which travels to the kernel; the rest of the MeterSink is the kernel's."""

from __future__ import annotations

import sys
from typing import Any, Mapping

__all__ = ["RemoteSink"]


class RemoteSink:
    """Base of the sinks outside the kernel. Subclasses define ``record`` and ``settings``."""

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def log(self, event: str, fields: Mapping[str, Any]) -> None:
        """Meters' own events (GPU checkpoints) have no place here: the kernel meters GPUs."""

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(message, file=sys.stderr, flush=True)

    def check_budget(self, meter: str) -> None:
        """Budgets are the kernel's: work outside it is never refused (its spend still counts)."""

    def current_cell(self) -> Mapping[str, Any]:
        return {}
