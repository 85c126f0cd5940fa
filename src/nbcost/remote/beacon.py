"""How a child tells its kernel "I have a log for you" without the kernel asking the disk.

The kernel maps one byte of a file in its children's folder; a child sets it before it writes
its first event. The kernel's window end reads the byte from memory (no syscall: a stat of the
folder would cost the cell path 1-2 µs every cell) and reads child logs only once it is set.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

__all__ = ["Beacon", "raise_beacon"]

NAME = ".children"


class Beacon:
    """The kernel's side: a one-byte shared flag, created with its children's folder."""

    def __init__(self, root: Path, folder: Path) -> None:
        from ..logfile import open_log

        fd = open_log(root, folder / NAME)  # folders 0700 below the data dir, no symlinks
        try:
            if os.fstat(fd).st_size < 1:
                os.ftruncate(fd, 1)
            self._map = mmap.mmap(fd, 1)
        finally:
            os.close(fd)

    @property
    def raised(self) -> bool:
        return self._map[0] != 0

    def close(self) -> None:
        try:
            self._map.close()
        except (BufferError, ValueError):
            pass


def raise_beacon(folder: Path) -> None:
    """The child's side: set the flag (the file exists while its kernel's session does)."""
    fd = os.open(folder / NAME, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.pwrite(fd, b"\x01", 0)
    finally:
        os.close(fd)
