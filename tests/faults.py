"""Fault injection for the spend log: a small full disk, a read-only folder, and a fake file
layer for what a real filesystem cannot be made to do on cue (a write cut short, a write that
blocks until another thread is where a test wants it).

A full disk is a 64 KiB tmpfs and a read-only folder a read-only bind mount when the tests run
as root (as in CI containers); a read-only folder is ``chmod 0500`` otherwise, and a test that
needs a mount and cannot have one is skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or result.returncode})")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "64k") -> Iterator[Path]:
    """``path`` as a tmpfs of ``size``: a disk that fills up for real."""
    if not IS_ROOT:
        pytest.skip("a real full disk needs root to mount a small tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


def fill(folder: Path) -> Path:
    """Fill the disk under ``folder`` to the last byte; returns the filler (delete it to free
    the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 256, 16, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` read-only for new files (files open already keep writing, as on a real
    remount): a read-only bind mount as root, ``chmod 0500`` otherwise."""
    if IS_ROOT:
        _mount("--bind", str(folder), str(folder))
        try:
            _mount("-o", "remount,bind,ro", str(folder))
            yield folder
        finally:
            _umount(folder)
    else:
        mode = folder.stat().st_mode & 0o777
        folder.chmod(0o500)
        try:
            yield folder
        finally:
            folder.chmod(mode)


class FakeOs:
    """The ``os`` module with a scripted ``write``: put it in place of ``nbcost.ledger.os``.

    ``on_write(fd, data) -> int`` replaces the real write while set; everything else is the
    real ``os``.
    """

    def __init__(self) -> None:
        self.on_write: Callable[[int, bytes], int] | None = None

    def __getattr__(self, name: str):
        return getattr(os, name)

    def write(self, fd: int, data) -> int:
        if self.on_write is not None:
            return self.on_write(fd, data)
        return os.write(fd, data)


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
