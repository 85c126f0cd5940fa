"""``nbcost run``: execute a notebook headless with nbcost loaded, and keep its cost record.

The kernel loads nbcost at start (``extra_extensions``), so every cell is recorded exactly as in
JupyterLab. Afterwards each code cell gets ``metadata.nbcost`` (the compact record, the same shape
the lab extension writes) and the notebook gets ``metadata.nbcost.notebook_id``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .config import load_settings, profile_config
from .display.summary import Table
from .ledger import read_log
from .records import MeterTotals, WindowInfo, compact_record
from .report import COLUMNS, Group
from .rows import parse_ts, rows_from_events

__all__ = ["RunResult", "run_notebook"]


@dataclass
class RunResult:
    notebook: Any
    ledger_path: Path | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def table(self) -> Table:
        """One line per top-level cell (and the time between cells), then the total."""
        sources = {c.get("execution_count"): c.source for c in self.notebook.cells
                   if c.cell_type == "code"}
        lines, total = [], Group("total")
        for row in self.rows:
            if row.get("parent_id"):
                continue
            line = Group(_row_name(row, sources))
            line.add(row)
            lines.append(line)
            total.add(row)
        return Table("nbcost · cost per cell", ["cell", *COLUMNS[1:]],
                     [g.cells(count=False) for g in lines], total.cells(count=False))


def _row_name(row: dict[str, Any], sources: dict[Any, str]) -> str:
    if row["kind"] == "between_cells":
        return "(between cells)"
    first = (row.get("label") or sources.get(row.get("execution_count"), "").strip() or " ")
    first = first.splitlines()[0]
    return f"[{row.get('execution_count')}] " + (first if len(first) <= 40 else first[:39] + "…")


def _compact_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """The compact record of a ``cell_end`` event, built as the kernel builds it (so ``start``
    and ``end`` are ISO 8601 UTC strings, like the lab extension's)."""
    start, end = parse_ts(event.get("started_at")), parse_ts(event.get("ended_at"))
    info = WindowInfo(id=event["window_id"], kind=event["kind"],
                      start=start.timestamp() if start else 0.0,
                      end=end.timestamp() if end else None, label=event.get("label"),
                      cell_id=event.get("cell_id"), execution_count=event.get("execution_count"))
    meters = {name: MeterTotals.from_json(m) for name, m in (event.get("meters") or {}).items()}
    return compact_record(info, event.get("wall_s") or 0.0, event.get("status") or "ok", meters,
                          event["session_id"], tuple(event.get("flags") or ()))


def run_notebook(path: Path, output: Path | None = None, *, kernel_name: str | None = None,
                 timeout: int | None = None, allow_errors: bool = False) -> RunResult:
    """Execute ``path`` with nbcost loaded; write the executed notebook to ``output``."""
    nb = nbformat.read(path, as_version=4)
    notebook_meta = nb.metadata.setdefault("nbcost", {})
    notebook_meta.setdefault("notebook_id", uuid.uuid4().hex)
    session_id = uuid.uuid4().hex
    settings = load_settings(profile_config())
    env = {**os.environ, "NBCOST_SESSION_ID": session_id, "NBCOST_NOTEBOOK": str(path),
           "NBCOST_NOTEBOOK_ID": notebook_meta["notebook_id"]}
    client = NotebookClient(
        nb, timeout=timeout, allow_errors=allow_errors,
        kernel_name=kernel_name or nb.metadata.get("kernelspec", {}).get("name", "python3"),
        resources={"metadata": {"path": str(path.parent.resolve())}},
        extra_arguments=["--InteractiveShellApp.extra_extensions=nbcost"],
    )
    # The kernel offers the lab extension's comm; headless, the log is the record: take the
    # comm quietly instead of nbclient's "No handler found for comm target 'nbcost'".
    client.comm_open_handlers["nbcost"] = lambda msg: None
    error = None
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else "a cell failed"
    ledger = next(iter(sorted(settings.data_dir.glob(f"spend/*/{session_id}.jsonl"))), None)
    result = RunResult(nb, ledger, error=error)
    if ledger is not None:
        events = read_log(ledger).events
        result.rows = rows_from_events(events)
        _write_cell_metadata(nb, events)
        notebook_meta["session_id"] = session_id
    if output is not None:
        nbformat.write(nb, output)
    return result


def _write_cell_metadata(nb, events: list[dict[str, Any]]) -> None:
    by_count = {e.get("execution_count"): e for e in events
                if e["event"] == "cell_end" and not e.get("parent_id")}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("execution_count") in by_count:
            cell.metadata["nbcost"] = _compact_from_event(by_count[cell.execution_count])
