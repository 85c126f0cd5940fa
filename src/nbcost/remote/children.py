"""The kernel's side of its child processes: the environment they inherit, the beacon they
raise, and folding their child logs into the session (see :mod:`nbcost.remote`)."""

from __future__ import annotations

import os
import shutil
import threading
import time
import weakref
from typing import TYPE_CHECKING

from . import environment, spawn
from .beacon import Beacon
from .inbox import Inbox

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["ChildProcesses"]


class ChildProcesses:
    """One session's children: created when the session starts, closed when it ends."""

    def __init__(self, session: Session) -> None:
        from . import child

        child.yield_to_session()  # a kernel started by a kernel meters its own calls
        self.session_id = session.id
        self.folder = session.settings.data_dir / "children" / session.id
        self.beacon = Beacon(session.settings.data_dir, self.folder)
        self.inbox = Inbox(self.folder)
        self._lock = threading.Lock()  # one reader at a time (window end, ticker)
        self._folded = bytes(len(self.beacon.token()))  # the beacon's token as last folded
        environment.expose(session.id, self.folder)
        self.slots = environment.WindowSlots(session.settings.data_dir, self.folder)
        #: ``window_changed(window_id)``: the innermost open window is now this one; children
        #: started from now on are billed to it (on every window's path: one attribute).
        self.window_changed = self.slots.window_changed
        spawn.install(self.slots.write)  # the environment names it when a process starts
        _watch_forks(session)


    def pending(self) -> bool:
        """A child logged something not folded yet (a memory read: the window end asks)."""
        return self.beacon.token() != self._folded

    def collect(self, session: Session) -> None:
        """Fold what children logged since the last look (nothing to do, and no syscall,
        until a child's beacon moved). Returns once what was pending is folded, whichever
        thread (window end, live ticker) does the reading."""
        if not self.pending():
            return
        with self._lock:
            token = self.beacon.token()
            if token == self._folded:
                return  # another thread folded it while this one waited
            for item in list(self.inbox.take()):
                session.fold_remote(item.usage, item.window_id, item.origin)
            self._folded = token

    def close(self, session: Session) -> None:
        """The session ends: fold the last of it, stop telling children, and remove the folder
        (its child logs are in the session's own log now). Kept while the session's log holds
        events it could not write yet: the child logs are then the only copy on disk."""
        self.collect(session)
        spawn.uninstall(self.slots.write)
        environment.withdraw(self.session_id)
        self.beacon.close()
        self.slots.close()
        session.flush()
        if not session.unsaved_events:
            shutil.rmtree(self.folder, ignore_errors=True)


_forked_from: weakref.ref | None = None  # the session a fork() copies into its child
_fork_hook_installed = False


def _watch_forks(session: Session) -> None:
    """A child made by ``fork`` (multiprocessing's default on Linux) runs no start-up hook: it
    is a copy of the kernel, patches included. Switch such a copy to a child log at the fork."""
    global _forked_from, _fork_hook_installed
    _forked_from = weakref.ref(session)
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_in_forked_child)
        _fork_hook_installed = True


def _in_forked_child() -> None:
    session = _forked_from() if _forked_from is not None else None
    if session is None or session.ended_at is not None:
        return
    try:
        from .child import after_fork

        session.ended_at = time.time()  # the kernel's session: this copy never ends it (atexit)
        session._children = None
        patcher = getattr(session.meters.get("llm"), "_patcher", None)
        if patcher is not None:
            after_fork(patcher.recorder)
    except Exception:  # noqa: BLE001 - the child goes on, unmetered
        pass
