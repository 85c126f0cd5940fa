"""A process the kernel starts learns its window as it starts, not at every window.

A child is billed to the window open when it started (:mod:`.environment`). Windows change at
every cell and block, processes start rarely: writing the environment at each window cost every
cell several µs (glibc's ``setenv``, on a cache the cell's own run left cold) for children few
cells have. So the window is written just before Python starts a process, at each place the
standard library starts one:

* ``os.fork`` and ``os.forkpty`` (``os.register_at_fork``): multiprocessing's fork, ``pty``,
  pexpect (ipykernel's ``!cmd``), ``os.spawn*``;
* ``subprocess.Popen._execute_child``: subprocess, asyncio's subprocesses, ``os.popen``;
* ``_posixsubprocess.fork_exec``: multiprocessing's spawn and forkserver;
* ``os.posix_spawn``, ``os.posix_spawnp`` and ``os.system``.

An environment given explicitly (``env=``, often a copy of ``os.environ`` made cells earlier)
that carries nbcost's variables gets their current values too. A process that native code
starts on its own reads the window of the last process Python started.
"""

from __future__ import annotations

import functools
import os
import subprocess
from typing import Any, Callable, Mapping

from .environment import FOLDER, SESSION, WINDOW

__all__ = ["install", "uninstall"]

#: What writes the innermost window into the environment now (the live session's), or None.
_before_start: Callable[[], None] | None = None
_installed = False


def install(before_start: Callable[[], None]) -> None:
    """Call ``before_start()`` before every process Python starts from now on."""
    global _before_start
    _before_start = before_start
    _patch_once()


def uninstall(before_start: Callable[[], None]) -> None:
    """Stop calling ``before_start`` (unless a later session installed its own)."""
    global _before_start
    if _before_start == before_start:  # (a bound method: equal, not the same object)
        _before_start = None


def _starting() -> None:
    before_start = _before_start
    if before_start is not None:
        try:
            before_start()
        except Exception:  # noqa: BLE001 - the user's process starts, billed or not
            pass


def _with_window(env: Any) -> Any:
    """An explicit environment that carries nbcost's variables, with their current values
    (the window, and the session's after a ``%cost reset``)."""
    if not isinstance(env, Mapping) or WINDOW not in env:
        return env
    stale = {name: os.environ[name] for name in (SESSION, FOLDER, WINDOW)
             if name in env and name in os.environ and env[name] != os.environ[name]}
    return {**env, **stale} if stale else env


def _patch_once() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_starting)
    popen_start = subprocess.Popen._execute_child

    @functools.wraps(popen_start)
    def execute_child(self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env,
                      *rest, **kwargs):
        _starting()
        return popen_start(self, args, executable, preexec_fn, close_fds, pass_fds, cwd,
                           _with_window(env), *rest, **kwargs)

    subprocess.Popen._execute_child = execute_child
    try:
        import _posixsubprocess
    except ImportError:  # not POSIX: no fork_exec
        pass
    else:
        _posixsubprocess.fork_exec = _starting_first(_posixsubprocess.fork_exec)
    for name in ("posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            setattr(os, name, _spawning(getattr(os, name)))
    os.system = _starting_first(os.system)


def _starting_first(start: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(start)
    def starting(*args: Any, **kwargs: Any) -> Any:
        _starting()
        return start(*args, **kwargs)

    return starting


def _spawning(spawn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(spawn)
    def spawning(path: Any, argv: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
        _starting()
        return spawn(path, argv, _with_window(env), *args, **kwargs)

    return spawning
