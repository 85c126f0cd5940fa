"""What a kernel tells the processes it starts, through their environment.

``NBCOST_PARENT_SESSION`` is set for as long as the session lives; the start-up hook in a Python
child does nothing without it. ``NBCOST_PARENT_WINDOW`` names the innermost open window: a child is
billed to the window open when it was started, which is what a process inherits. A window's
start makes it the one, a nested window's end puts back the one around it, a top-level window's
end leaves it (a child started between cells is billed to the cell before it). It is written to
the environment only when a process starts (:mod:`.spawn`): a window itself writes nothing.

The variable holds a slot number, not the window's id: glibc keeps every value ever given to
``setenv`` (76 MiB for a million windows' ids). There are 1,024 slots, so glibc keeps at most
1,024 values; the id is written into the slot, in a small file the kernel maps into memory
(:class:`WindowSlots`), and a child reads its slot when it starts. One started so late that
1,024 more windows opened meanwhile reads a later window.
"""

from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, MutableMapping

__all__ = ["FOLDER", "SESSION", "WINDOW", "ParentContext"]

SESSION = "NBCOST_PARENT_SESSION"
FOLDER = "NBCOST_PARENT_FOLDER"  # where children write their logs (one folder per session)
WINDOW = "NBCOST_PARENT_WINDOW"
SLOTS_FILE = ".windows"  # in FOLDER
SLOTS = 1024
SLOT_BYTES = 48  # a window id is 22 characters: room to spare
_SLOT_NAMES = [str(slot) for slot in range(SLOTS)]  # the values the variable ever takes


@dataclass(frozen=True)
class ParentContext:
    """The kernel a child process works for, as the child read it from its environment."""

    session_id: str
    folder: Path
    window_id: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ParentContext | None:
        env = os.environ if environ is None else environ
        session_id, folder = env.get(SESSION), env.get(FOLDER)
        if not session_id or not folder:
            return None
        return cls(session_id, Path(folder), read_window(Path(folder), env.get(WINDOW)))


class WindowSlots:
    """The kernel's side: the innermost open window, for the processes it starts."""

    def __init__(self, root: Path, folder: Path) -> None:
        from ..logfile import open_log

        fd = open_log(root, folder / SLOTS_FILE)  # folders 0700 below the data dir, no symlinks
        try:
            os.ftruncate(fd, SLOTS * SLOT_BYTES)
            self._map = mmap.mmap(fd, SLOTS * SLOT_BYTES)
        finally:
            os.close(fd)
        self._next = 0
        self._lock = threading.Lock()  # processes may start on several threads at once
        self._window: str | None = None  # the innermost window
        self._written: str | None = None  # the window the environment names

    def window_changed(self, window_id: str) -> None:
        """Children started from now on are billed to ``window_id`` (on every window's path:
        one attribute; :meth:`write` puts it in the environment when a process starts)."""
        self._window = window_id

    def write(self) -> None:
        """Name the innermost window in the environment, for a process about to start: the id
        in the next slot, the slot's number in the variable (one of 1,024 values)."""
        with self._lock:
            window_id = self._window
            if window_id is None or window_id == self._written:
                return
            slot = self._next
            self._next = (slot + 1) % SLOTS
            start = slot * SLOT_BYTES
            self._map[start:start + SLOT_BYTES] = window_id.encode()[:SLOT_BYTES].ljust(
                SLOT_BYTES, b"\0")
            os.environ[WINDOW] = _SLOT_NAMES[slot]
            self._written = window_id

    def close(self) -> None:
        try:
            self._map.close()
        except (BufferError, ValueError):
            pass


def read_window(folder: Path, slot: str | None) -> str | None:
    """The window id in ``slot`` of the kernel's slots file (None: no window, or unreadable)."""
    if not slot or not slot.isdigit() or int(slot) >= SLOTS:
        return None
    try:
        fd = os.open(folder / SLOTS_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            raw = os.pread(fd, SLOT_BYTES, int(slot) * SLOT_BYTES)
        finally:
            os.close(fd)
    except OSError:
        return None
    return raw.rstrip(b"\0").decode("ascii", "replace") or None


def expose(session_id: str, folder: Path, environ: MutableMapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    env[SESSION] = session_id
    env[FOLDER] = str(folder)
    env[WINDOW] = ""


def withdraw(session_id: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Remove what :func:`expose` set, unless a later session of this process took it over."""
    env = os.environ if environ is None else environ
    if env.get(SESSION) == session_id:
        for name in (SESSION, FOLDER, WINDOW):
            env.pop(name, None)
