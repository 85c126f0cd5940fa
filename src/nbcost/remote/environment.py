"""What a kernel tells the processes it starts, through their environment.

``NBCOST_PARENT_SESSION`` is set for as long as the session lives; the start-up hook in a Python
child does nothing without it. ``NBCOST_PARENT_WINDOW`` names the innermost open window: a child is
billed to the window open when it was started, which is what a process inherits. Setting one
``os.environ`` key costs about 0.5 µs, so a cell sets it once, at its start; a nested window's
end puts back the one around it, a top-level window's end leaves it (a child started between
cells is billed to the cell before it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, MutableMapping

__all__ = ["FOLDER", "SESSION", "WINDOW", "ParentContext"]

SESSION = "NBCOST_PARENT_SESSION"
FOLDER = "NBCOST_PARENT_FOLDER"  # where children write their logs (one folder per session)
WINDOW = "NBCOST_PARENT_WINDOW"


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
        return cls(session_id, Path(folder), env.get(WINDOW) or None)


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
