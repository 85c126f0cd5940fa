"""Per-file digests of spend logs: what reading a log produced, kept so it is read once.

Parsing JSON is most of a report's time (1,000,000 cells are about 3.5 GB of log). A log is
append-only, so what a file produced stays true while its size and modification time stay the
same: each log's rows are written as Parquet to ``<store>/k=<md5 of its path>/`` beside a
``meta.json`` (the file's size and mtime, lines read, what was skipped, its budget events and
sessions). The next report reads the Parquet of unchanged files and parses only new or grown
ones. The store is ``$NBCOST_CACHE_DIR``, else ``$NBCOST_HOME/cache/report``, else the user cache
dir (``~/.cache/nbcost/report``);
``nbcost report --no-cache`` (``load_spend(cache=False)``) uses a temporary one instead.
A digest that cannot be read is simply made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sources import Input, filesystem

__all__ = ["Digest", "DigestStore", "default_cache_dir"]

#: Bump when what a digest holds changes: older digests are then made again.
VERSION = "3"


def default_cache_dir() -> Path:
    if os.environ.get("NBCOST_CACHE_DIR"):
        return Path(os.environ["NBCOST_CACHE_DIR"])
    if os.environ.get("NBCOST_HOME"):  # everything nbcost keeps in one place
        return Path(os.environ["NBCOST_HOME"]).expanduser() / "cache" / "report"
    import platformdirs

    return Path(platformdirs.user_cache_dir("nbcost")) / "report"


@dataclass
class Digest:
    """What one log produced."""

    url: str
    key: str
    stamp: dict[str, Any]
    lines: int = 0
    counts: dict[str, list[int]] = field(default_factory=dict)  # unit -> [skipped, read]
    examples: list[str] = field(default_factory=list)
    budgets: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    notebooks: list[list[Any]] = field(default_factory=list)  # [id, path, user, latest start]
    unrecorded: bool = True  # some LLM spend without its model (unknown: assume so)
    parquet: list[str] = field(default_factory=list)
    local: bool = True  # some self-hosted generation, whose window ends to read (unknown: so)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "url": self.url, "stamp": self.stamp, "lines": self.lines,
                "counts": self.counts, "examples": self.examples,
                "budgets": [{k: (str(v) if k in ("budget_usd", "spent_usd") and v is not None
                                 else v) for k, v in b.items()} for b in self.budgets],
                "sessions": self.sessions, "models": self.models, "notebooks": self.notebooks,
                "unrecorded": self.unrecorded, "local": self.local}


class DigestStore:
    """A folder of digests, one sub-folder per log."""

    def __init__(self, root: Path | None = None) -> None:
        self.temporary = root is None
        self.cleanup: list[Path] = []  # other folders to remove on close (DuckDB's spill)
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="nbcost-report-"))
        self.root.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        for folder in self.cleanup:
            shutil.rmtree(folder, ignore_errors=True)
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def key(url: str) -> str:
        return hashlib.md5(url.encode()).hexdigest()

    def folder(self, key: str) -> Path:
        return self.root / f"k={key}"

    @staticmethod
    def stamp(source: Input) -> dict[str, Any]:
        """What says a file is unchanged: its size and modification time (or ETag)."""
        if not source.remote:
            st = os.stat(source.url)
            return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        fs, path = filesystem(source.url)
        info = fs.info(path)
        return {"size": info.get("size"),
                "modified": str(info.get("LastModified") or info.get("mtime") or ""),
                "etag": str(info.get("ETag") or "")}

    def load(self, source: Input, stamp: dict[str, Any]) -> Digest | None:
        """The digest of an unchanged file, or None."""
        key = self.key(source.url)
        folder = self.folder(key)
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("version") != VERSION or meta.get("url") != source.url or meta.get("stamp") != stamp:
            return None
        parquet = sorted(str(p) for p in folder.glob("*.parquet"))
        from decimal import Decimal

        budgets = [{k: (Decimal(v) if k in ("budget_usd", "spent_usd") and v is not None else v)
                    for k, v in b.items()} for b in meta.get("budgets", [])]
        return Digest(source.url, key, stamp, meta.get("lines", 0), meta.get("counts", {}),
                      meta.get("examples", []), budgets, meta.get("sessions", []),
                      meta.get("models", []), meta.get("notebooks", []),
                      meta.get("unrecorded", True), parquet, meta.get("local", True))

    def clear(self, key: str) -> None:
        shutil.rmtree(self.folder(key), ignore_errors=True)

    def save(self, digest: Digest) -> None:
        """Write ``meta.json`` last and atomically: a digest without it is never trusted."""
        folder = self.folder(digest.key)
        folder.mkdir(parents=True, exist_ok=True)
        digest.parquet = sorted(str(p) for p in folder.glob("*.parquet"))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(digest.to_json(), out)
        os.replace(tmp, folder / "meta.json")
