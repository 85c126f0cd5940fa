"""Opening a spend log safely on a shared machine.

A lab server's ``NBCOST_HOME`` may be group-writable: another user could plant a symlink at
``spend/<date>`` or ``<session>.jsonl`` and have nbcost append to (or create) a file of theirs.
So the folders below the data dir are created ``0700`` and walked one at a time with
``O_NOFOLLOW`` (a symlink is refused, not followed); a folder or log owned by another user is
refused; the log itself is created ``0600``. A refusal is an :class:`UnsafeLocation` (an
``OSError``), which the ledger treats like any other unwritable location: it says so and keeps
the events in memory.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["UnsafeLocation", "advice", "open_log"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Walking folder by folder needs openat(); without it (Windows) the plain path is opened.
_WALK = (bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd
         and os.mkdir in os.supports_dir_fd)


class UnsafeLocation(OSError):
    """A folder or file nbcost will not write through: a symlink, or another user's."""


def open_log(root: Path, path: Path) -> int:
    """An ``O_APPEND`` descriptor (read-write, for checking its last byte) of ``path``, created
    ``0600`` with any missing folders between ``root`` and it created ``0700``. ``root`` itself
    (the data dir the user chose) may be a symlink; nothing below it may."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | _CLOEXEC
    if not _WALK:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(path, flags, 0o600)
    folders = path.parent.relative_to(root).parts
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        where = root
        for name in folders:
            where = where / name
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                inner = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(where):
                    raise UnsafeLocation(exc.errno, "it is a symbolic link", str(where)) from None
                raise
            os.close(fd)
            fd = inner
            _check_owner(fd, where)
        try:
            log = os.open(path.name, flags | _NOFOLLOW, 0o600, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeLocation(exc.errno, "it is a symbolic link", str(path)) from None
            raise
    finally:
        os.close(fd)
    try:
        info = os.fstat(log)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeLocation(errno.EINVAL, "it is not a regular file", str(path))
        _check_owner(log, path, info)
        if info.st_mode & 0o077:  # a log an older nbcost created 0644
            os.fchmod(log, 0o600)
    except BaseException:
        os.close(log)
        raise
    return log


def _check_owner(fd: int, where: Path, info: os.stat_result | None = None) -> None:
    owner = (info or os.fstat(fd)).st_uid
    if hasattr(os, "geteuid") and owner != os.geteuid():
        raise UnsafeLocation(errno.EPERM, f"it belongs to another user (uid {owner})", str(where))


def advice(exc: OSError) -> str:
    """What to do about a spend log that cannot be written, in a few words."""
    if isinstance(exc, UnsafeLocation):
        return "set NBCOST_HOME to a folder of your own"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the folder writable or set NBCOST_HOME to a writable folder"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return "set NBCOST_HOME to a folder (a file is in the way)"
    return "check the folder, or set NBCOST_HOME to a writable folder"
