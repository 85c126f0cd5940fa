"""One key per notebook however it ran.

A notebook's id (``metadata.nbcost.notebook_id``, set by ``nbcost run``) is the key when known.
Otherwise the path is, normalised: JupyterLab logs an absolute or server-root-relative path,
``nbcost run`` the path as typed (relative to where it ran). So a relative path is the same
notebook as the one absolute path that ends with it (among the same user's paths, when
several do), and a path ever seen beside an id takes that id's key.
"""

from __future__ import annotations

import posixpath
import re
from typing import Iterable

__all__ = ["normalise_path", "notebook_keys"]

_DRIVE = re.compile(r"^[A-Za-z]:/")


def normalise_path(path: str) -> str:
    """Forward slashes, no ``.``/``..`` or doubled slashes, no ``file://``."""
    path = path.removeprefix("file://").replace("\\", "/")
    if _DRIVE.match(path):
        path = "/" + path
    normal = posixpath.normpath(path)
    return "" if normal == "." else normal


def _absolute(path: str) -> bool:
    return path.startswith("/") or "://" in path


def notebook_keys(seen: Iterable[tuple[str | None, str | None, str | None]]
                  ) -> dict[tuple[str | None, str | None], str | None]:
    """``(notebook_id, notebook_path)`` → key, for each pair seen (with the user who ran it)."""
    seen = list(seen)
    id_of_path: dict[str, str] = {}
    for notebook_id, path, _ in seen:
        if notebook_id and path:
            id_of_path.setdefault(normalise_path(path), notebook_id)
    absolute: dict[str, set[str | None]] = {}
    for _, path, user in seen:
        if path and _absolute(normalise_path(path)):
            absolute.setdefault(normalise_path(path), set()).add(user)
    for path in id_of_path:
        if _absolute(path):
            absolute.setdefault(path, set())

    def path_key(path: str) -> str:
        return f"id:{id_of_path[path]}" if path in id_of_path else f"path:{path}"

    keys: dict[tuple[str | None, str | None], str | None] = {}
    for notebook_id, path, user in seen:
        if notebook_id:
            keys[notebook_id, path] = f"id:{notebook_id}"
            continue
        if not path:
            keys[notebook_id, path] = None
            continue
        normal = normalise_path(path)
        if normal in id_of_path or _absolute(normal) or not normal:
            keys[notebook_id, path] = path_key(normal)
            continue
        ends = [p for p in absolute if p.endswith("/" + normal)]
        if len(ends) > 1:
            ends = [p for p in ends if user in absolute[p]]
        keys[notebook_id, path] = path_key(ends[0] if len(ends) == 1 else normal)
    return keys
