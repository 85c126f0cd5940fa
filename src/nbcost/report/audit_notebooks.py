"""Cells run without a record: the spend no log or metadata accounts for.

A saved notebook's code cell that has an execution count or outputs was run; if it carries no
``metadata.nbcost`` (docs/schema.md), nbcost did not record it (the extension was not loaded,
or the notebook ran elsewhere), so whatever it cost is missing from the audit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable

__all__ = ["NotebookCoverage", "coverage"]


@dataclass
class NotebookCoverage:
    path: str
    code_cells: int = 0
    run: int = 0  # cells with an execution count or outputs
    recorded: int = 0  # of those, with metadata.nbcost
    unrecorded_counts: list[int | None] = field(default_factory=list)  # their execution counts

    @property
    def unrecorded(self) -> int:
        return self.run - self.recorded


def _coverage(path: str, data: bytes) -> NotebookCoverage:
    notebook = json.loads(data)
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise ValueError("no list of cells")
    result = NotebookCoverage(path)
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        result.code_cells += 1
        if cell.get("execution_count") is None and not cell.get("outputs"):
            continue
        result.run += 1
        metadata = cell.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("nbcost"), dict):
            result.recorded += 1
        else:
            result.unrecorded_counts.append(cell.get("execution_count"))
    return result


def coverage(notebooks: Iterable[tuple[str, bytes]]) -> tuple[list[NotebookCoverage], list[str]]:
    """Per notebook (path, file contents), its run and recorded cells; and the notebooks that
    could not be read, each with why. Notebooks with unrecorded cells come first."""
    found, unreadable = [], []
    for path, data in notebooks:
        try:
            found.append(_coverage(path, data))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            unreadable.append(f"{path}: not a notebook ({str(exc)[:80]})")
    found.sort(key=lambda c: (-c.unrecorded, c.path))
    return found, unreadable
