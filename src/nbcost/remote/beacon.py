"""How a child tells its kernel "my log has something new" without the kernel asking the disk.

The kernel maps a few bytes of a file in its children's folder; a child writes a fresh token
there after each event it logs. The kernel's window end compares the token with the last one it
folded (a memory read, no syscall: a stat of the folder would cost the cell path 1-2 µs every
cell) and reads child logs only when it moved, so a notebook whose children called an LLM once
does not reread their logs at every later cell.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

__all__ = ["Beacon", "ChildBeacon"]

NAME = ".children"
SIZE = 16  # pid, event number, nanoseconds


class Beacon:
    """The kernel's side: the shared token, created with its children's folder."""

    def __init__(self, root: Path, folder: Path) -> None:
        from ..logfile import open_log

        fd = open_log(root, folder / NAME)  # folders 0700 below the data dir, no symlinks
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        self.quiet = bytes(SIZE)  # the token as last folded

    def token(self) -> bytes:
        return self._map[:SIZE]

    @property
    def raised(self) -> bool:
        """A child ever wrote (the token left zero)."""
        return self._map[:SIZE] != bytes(SIZE)

    def close(self) -> None:
        try:
            self._map.close()
        except (BufferError, ValueError):
            pass


class ChildBeacon:
    """The child's side: a new token after each event it logged (one ``pwrite``)."""

    def __init__(self, folder: Path) -> None:
        self._fd = os.open(folder / NAME, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
                           | getattr(os, "O_CLOEXEC", 0))
        self._count = 0

    def bump(self) -> None:
        # This process, its event number and the time: never the token the kernel last folded
        # (nor zero), whichever child wrote that one.
        self._count += 1
        token = struct.pack("<IIQ", os.getpid() & 0xFFFFFFFF, self._count & 0xFFFFFFFF,
                            time.time_ns())
        os.pwrite(self._fd, token, 0)

    def close(self) -> None:
        os.close(self._fd)
