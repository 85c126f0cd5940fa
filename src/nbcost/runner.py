"""``nbcost run``: execute a notebook headless with nbcost loaded, and keep its cost record.

The kernel loads nbcost at start (``extra_extensions``), so every cell is recorded exactly as in
JupyterLab. Afterwards each code cell gets ``metadata.nbcost`` (the compact record, the same shape
the lab extension writes) and the notebook gets ``metadata.nbcost.notebook_id``.

A run that stops early still keeps its record: a cell that fails, a kernel that dies (killed, out
of memory) or a cell that runs past ``--timeout`` ends the run, and the executed notebook and the
cost table are written anyway, with that cell marked (``error``, ``interrupted``, ``timeout``).
The spend log survives a killed kernel by design, so what the cell spent before it stopped is
there to read.

One run can write several spend logs: ``%cost reset`` and ``%reload_ext nbcost`` start a new
session (and log) in the same kernel. The run finds them all by its run id (``NBCOST_RUN_ID``,
written into ``session_start``), else by the kernel's pid and the notebook id.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async

from .config import load_settings, profile_config
from .display.summary import Table, format_seconds
from .errors import NbcostError
from .ledger import read_log
from .report import COLUMNS, Group
from .report.command import refuse_spend_log
from .report.notebooks import record_row
from .rows import rows_from_events
from .run_cells import mark_stopped_cell, write_cell_metadata
from .run_logs import find_run_logs

__all__ = ["RunResult", "find_run_logs", "read_notebook", "run_notebook"]

#: The error a cell that ran past ``--timeout`` ends with (after nbclient interrupted it).
TIMEOUT_ENAME = "CellTimeoutError"


@dataclass
class RunResult:
    notebook: Any
    ledger_paths: list[Path] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # one line: why the run stopped early (or what failed), or None
    warnings: list[str] = field(default_factory=list)  # what reading the spend logs skipped
    #: cells the run stopped or interrupted: notebook cell index -> ``timeout``/``interrupted``
    stopped: dict[int, str] = field(default_factory=dict)
    #: the window id of each stopped cell (None where the log lost the cell's start)
    stopped_windows: dict[int, str | None] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C stopped the run (its ``interrupted`` cell did not die)

    @property
    def ledger_path(self) -> Path | None:
        """The run's first spend log (a reset adds more: :attr:`ledger_paths`)."""
        return self.ledger_paths[0] if self.ledger_paths else None

    def table(self) -> Table:
        """One line per top-level cell (and the time between cells), then the total. A cell
        that failed, timed out or was cut short by the kernel's death says so."""
        code = [c for c in self.notebook.cells if c.cell_type == "code"]
        sources = {c.get("execution_count"): c.source for c in code}
        died = {w for i, w in self.stopped_windows.items()
                if self.stopped[i] == "interrupted" and not self.interrupted}
        lines: list[list[str]] = []
        totals = Group("total")
        for row in self.rows:
            if row.get("parent_id"):
                continue
            line = Group(_row_name(row, sources, row.get("window_id") in died))
            line.add(row)
            lines.append(line.cells(count=False))
            totals.add(row)
        for index, window in self.stopped_windows.items():
            if window is None:  # the kernel died before its start reached the log: no figures
                cell = self.notebook.cells[index]  # but the time it ran
                name = _cell_label(cell.get("execution_count"), cell.source)
                wall = (cell.metadata.get("nbcost") or {}).get("wall_s")
                lines.append([f"{name}  ({_marker(self.stopped[index], not self.interrupted)})",
                              format_seconds(wall) if wall is not None else "-",
                              *["-"] * (len(COLUMNS) - 2)])
        return Table("nbcost · cost per cell", ["cell", *COLUMNS[1:]], lines,
                     totals.cells(count=False))


def _marker(status: str, kernel_died: bool = False) -> str | None:
    """What the table says after a cell that did not end well."""
    if status == "interrupted":
        return "kernel died" if kernel_died else "interrupted"
    return {"error": "failed", "timeout": "timed out"}.get(status)


def _cell_label(execution_count: Any, source: str) -> str:
    first = (source.strip() or " ").splitlines()[0]
    number = execution_count if execution_count is not None else " "
    return f"[{number}] " + (first if len(first) <= 40 else first[:39] + "…")


def _row_name(row: dict[str, Any], sources: dict[Any, str], kernel_died: bool = False) -> str:
    if row["kind"] == "between_cells":
        return "(between cells)"
    name = _cell_label(row.get("execution_count"),
                       row.get("label") or sources.get(row.get("execution_count"), ""))
    marker = _marker(row.get("status") or "ok", kernel_died)
    return f"{name}  ({marker})" if marker else name


# -- input checks ---------------------------------------------------------------------------


def read_notebook(path: Path):
    """The notebook at ``path``, or an :class:`NbcostError` that says what is wrong with it."""
    if path.is_dir():
        raise NbcostError(f"{path} is a folder; give the notebook file (.ipynb) to run")
    if not path.exists():
        raise NbcostError(f"no notebook at {path}")
    try:
        nb = nbformat.read(path, as_version=4)
    except OSError as exc:
        raise NbcostError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise NbcostError(f"{path} is not a Jupyter notebook (not UTF-8 text); give an .ipynb "
                          "file") from None
    except Exception as exc:  # nbformat raises NotJSONError, ValidationError, KeyError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NbcostError(f"{path} is not a Jupyter notebook ({reason[:200]}); give an .ipynb "
                          "file") from None
    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(
            isinstance(c, dict) and isinstance(c.get("cell_type"), str)
            and isinstance(c.get("source"), str) for c in cells):
        raise NbcostError(f"{path} is not a Jupyter notebook (its cells are not a list of "
                          "cells); give an .ipynb file")
    return nb


def _check_writable_file(path: Path) -> None:
    """Refuse an output the run could not write, before the notebook runs for nothing."""
    if path.is_dir():
        raise NbcostError(f"-o {path} is a folder; give a file name such as {path / 'out.ipynb'}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise NbcostError(f"cannot write -o {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise NbcostError(f"cannot write -o {path}: permission denied")
    refuse_spend_log(path)


def _check_data_dir(data_dir: Path) -> None:
    """Refuse a data dir the kernel could not write its spend log to: a run without a record
    is what ``nbcost run`` exists to prevent. Creates nothing (the session makes its folders)."""
    spend = data_dir / "spend"
    existing = spend
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    advice = "Set NBCOST_HOME to a writable folder."
    if not existing.is_dir():
        raise NbcostError(f"cannot write spend logs under {data_dir}: {existing} is not a folder. "
                          f"{advice}")
    try:  # a real try, not os.access: root passes that for /proc, a read-only mount, ...
        os.rmdir(tempfile.mkdtemp(prefix=".nbcost-check-", dir=existing))
    except OSError as exc:
        raise NbcostError(f"cannot write spend logs under {data_dir}: {existing} is not writable "
                          f"({exc.strerror or exc}). {advice}") from None


# -- the run --------------------------------------------------------------------------------


class _Interrupted(Exception):
    """Ctrl-C came: run no further cell."""


class _Progress:
    """What nbclient's hooks tell: the kernel's pid, the cell running now (and since when), the
    cells that ran past the timeout; and whether Ctrl-C came, in which cell."""

    def __init__(self) -> None:
        self.client: NotebookClient | None = None
        self.kernel_pid: int | None = None
        self.cell_index: int | None = None
        self.running: int | None = None  # the cell sent to the kernel and not answered yet
        self.began: float | None = None  # when the run sent it
        self.timed_out: list[int] = []
        self.interrupted = False
        self.cut: int | None = None  # the cell running when Ctrl-C came
        self._signalled: Any = None  # the interrupt or shutdown sent (held: a task may be GC'd)

    def notebook_started(self, **_: Any) -> None:
        provisioner = getattr(getattr(self.client, "km", None), "provisioner", None)
        pid = getattr(provisioner, "pid", None)  # a local kernel's; remote ones have none
        self.kernel_pid = pid if isinstance(pid, int) else None
        try:  # instead of nbclient's handler, which shuts the kernel down under the running cell
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self.interrupt)
        except (RuntimeError, NotImplementedError, ValueError):  # not the main thread, Windows
            pass

    def interrupt(self) -> None:
        """Ctrl-C interrupts the running cell, as in JupyterLab (the kernel ends its record),
        and stops the run; a second one stops the kernel."""
        km = self.client.km if self.client is not None else None
        if km is None:
            return
        if not self.interrupted:
            self.interrupted, self.cut = True, self.running
            self._signalled = asyncio.ensure_future(ensure_async(km.interrupt_kernel()))
        else:
            self._signalled = asyncio.ensure_future(ensure_async(km.shutdown_kernel(now=True)))

    def cell_started(self, cell_index: int, **_: Any) -> None:
        if self.interrupted:
            raise _Interrupted
        self.cell_index = self.running = cell_index
        self.began = time.time()

    def cell_executed(self, cell_index: int, execute_reply: Any = None, **_: Any) -> None:
        self.running = None
        content = (execute_reply or {}).get("content") or {}
        if content.get("ename") == TIMEOUT_ENAME:
            self.timed_out.append(cell_index)


def run_notebook(path: Path, output: Path | None = None, *, kernel_name: str | None = None,
                 timeout: int | None = None, allow_errors: bool = False) -> RunResult:
    """Execute ``path`` with nbcost loaded; write the executed notebook to ``output``.

    Raises :class:`NbcostError` for what stops a run before it starts (not a notebook, an
    unwritable output or data dir, no such kernel). A run that stops in a cell returns normally,
    with :attr:`RunResult.error` saying why.

    A cell past ``timeout`` is interrupted (so the kernel ends its record itself) and ends as
    ``timeout``; the run stops there unless ``allow_errors``.
    """
    nb = read_notebook(path)
    if output is not None:
        _check_writable_file(output)
    settings = load_settings(profile_config())
    _check_data_dir(settings.data_dir)
    notebook_meta = nb.metadata.setdefault("nbcost", {})
    if not isinstance(notebook_meta.get("notebook_id"), str) or not notebook_meta["notebook_id"]:
        notebook_meta["notebook_id"] = uuid.uuid4().hex
    session_id, run_id = uuid.uuid4().hex, uuid.uuid4().hex
    env = {**os.environ, "NBCOST_SESSION_ID": session_id, "NBCOST_RUN_ID": run_id,
           "NBCOST_NOTEBOOK": str(path), "NBCOST_NOTEBOOK_ID": notebook_meta["notebook_id"]}
    kernel = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    progress = _Progress()
    client = NotebookClient(
        nb, timeout=timeout, allow_errors=allow_errors, kernel_name=kernel,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": f"the cell ran past --timeout "
                          f"{timeout} s and was interrupted", "traceback": []},
        resources={"metadata": {"path": str(path.parent.resolve())}},
        extra_arguments=["--InteractiveShellApp.extra_extensions=nbcost"],
        on_notebook_start=progress.notebook_started, on_cell_execute=progress.cell_started,
        on_cell_executed=progress.cell_executed,
    )
    progress.client = client
    # The kernel offers the lab extension's comm; headless, the log is the record: take the
    # comm quietly instead of nbclient's "No handler found for comm target 'nbcost'". Its
    # "final" messages fill in a cell whose end the log missed (a kernel killed right after it;
    # the comm opened at kernel start, before nbclient listened, so they are read off every
    # cell's comm messages).
    client.comm_open_handlers["nbcost"] = lambda msg: None
    finals = _KernelFinals()
    handle_comm_msg = client.handle_comm_msg

    def read_finals(outs: Any, msg: dict[str, Any], cell_index: int) -> None:
        finals.handle_msg(msg)
        handle_comm_msg(outs, msg, cell_index)

    client.handle_comm_msg = read_finals
    started = time.time()
    # The kernel's own stderr (its log lines, a traceback when it is stopped mid-cell) would
    # bury the one message that matters; it is kept, and shown when it explains a failure.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as kernel_stderr:
        error, stopped, died = _execute(client, env, kernel, timeout, progress, kernel_stderr)
        kernel_said = _last_words(kernel_stderr)

    logs = find_run_logs(settings.data_dir, run_id=run_id, session_ids={session_id},
                         notebook_id=notebook_meta["notebook_id"], kernel_pid=progress.kernel_pid,
                         since=started)
    result = RunResult(nb, logs, error=error, stopped=stopped, interrupted=progress.interrupted)
    events: list[dict[str, Any]] = []
    for log in logs:
        contents = read_log(log)
        events += contents.events
        result.warnings += contents.warnings
    if logs:
        result.rows = rows_from_events(events)
        write_cell_metadata(nb, events)
        notebook_meta["session_id"] = _session_of(events[0]) if events else session_id
        notebook_meta["run_id"] = run_id
        if len(logs) > 1:
            notebook_meta["session_ids"] = list(dict.fromkeys(_session_of(e) for e in events))
    elif kernel_said:
        result.warnings.append(f"the kernel said: {kernel_said}")
    finals.fill_in(nb)
    result.rows += finals.rows_missing_from(result.rows)
    for index, status in stopped.items():
        result.stopped_windows[index] = mark_stopped_cell(
            nb, index, status, result.rows, events,
            session_id=_session_of(events[-1]) if events else session_id,
            began=progress.began if index == progress.cell_index else None, died=died)
    if output is not None:
        try:
            nbformat.write(nb, output)
        except OSError as exc:
            result.error = "; ".join(filter(None, [result.error, (
                f"could not write the executed notebook to {output}: {exc.strerror or exc}")]))
    return result


class _KernelFinals:
    """The kernel's ``final`` comm messages: each finished cell's compact record, as the lab
    extension gets it. The spend log is the record; a finished cell's end reaches it within
    50 ms (docs/schema.md), so a kernel killed at once after a cell leaves these to fill it in."""

    def __init__(self) -> None:
        self.by_count: dict[int, dict[str, Any]] = {}

    def handle_msg(self, msg: dict[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        record = data.get("record") if isinstance(data, dict) else None
        if msg.get("msg_type") == "comm_msg" and data.get("type") == "final" and \
                isinstance(record, dict):
            self.by_count[record.get("execution_count")] = record

    def fill_in(self, nb: Any) -> None:
        for cell in nb.cells:
            if (cell.cell_type == "code" and "nbcost" not in cell.metadata
                    and cell.get("execution_count") in self.by_count):
                cell.metadata["nbcost"] = self.by_count[cell.execution_count]

    def rows_missing_from(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Table rows for the finished cells whose end the spend log missed."""
        logged = {r.get("execution_count") for r in rows
                  if r.get("kind") == "cell" and not r.get("parent_id")}
        missing = []
        for count in sorted(c for c in self.by_count if isinstance(c, int) and c not in logged):
            try:
                missing.append(record_row(self.by_count[count], "", None))
            except (ValueError, TypeError, ArithmeticError):
                pass
        return missing


def _execute(client: NotebookClient, env: dict[str, str], kernel: str, timeout: int | None,
             progress: _Progress, stderr: IO[str]
             ) -> tuple[str | None, dict[int, str], float | None]:
    """Run every cell. Returns a message (None when every cell ran and none timed out), the
    cells to mark (``{cell index: "timeout" | "interrupted"}``) and when the kernel was seen
    dead (None: it was not; nbclient looks once a second)."""
    from jupyter_client.kernelspec import NoSuchKernel

    stopped: dict[int, str] = {}
    error = died = None
    try:
        client.execute(env=env, stderr=stderr)
    except _Interrupted:
        pass
    except CellExecutionError as exc:
        if exc.ename != TIMEOUT_ENAME and not progress.interrupted:
            error = f"a cell failed: {_failure(exc)}"
    except CellTimeoutError:  # nbclient's own timeouts (waiting for output)
        if progress.cell_index is not None:
            progress.timed_out.append(progress.cell_index)
    except DeadKernelError:
        died, index = time.time(), progress.cell_index
        if index is not None:
            stopped[index] = "interrupted"
        error = (f"the kernel died while running {_cell_name(client, index)} (killed, or out of "
                 "memory?); the cells after it did not run")
    except NoSuchKernel:
        raise NbcostError(f"no kernel named {kernel!r} is installed; `jupyter kernelspec list` "
                          "shows the installed ones, --kernel picks one") from None
    except (RuntimeError, TimeoutError) as exc:
        if progress.cell_index is not None:
            raise
        said = _last_words(stderr)
        raise NbcostError(f"the kernel {kernel!r} did not start: {exc}"
                          + (f" (it said: {said})" if said else "")) from None
    if progress.interrupted:
        if progress.cut is not None:
            stopped[progress.cut] = "interrupted"
        where = f" in {_cell_name(client, progress.cut)}" if progress.cut is not None else ""
        return (f"interrupted (Ctrl-C){where}; the cells after it did not run", stopped, died)
    for index in dict.fromkeys(progress.timed_out):
        stopped.setdefault(index, "timeout")
    if progress.timed_out and error is None:
        cells = ", ".join(_cell_name(client, i) for i in dict.fromkeys(progress.timed_out))
        error = (f"{cells} ran past --timeout {timeout} s and {'was' if len(progress.timed_out) == 1 else 'were'} "
                 "interrupted" + ("" if client.allow_errors else "; the cells after it did not run")
                 + "; a larger --timeout lets it finish")
    return error, stopped, died


def _failure(exc: CellExecutionError) -> str:
    """The error a cell ended with, as one line: its name and message (not the traceback's
    last line: an IPython UsageError has no traceback)."""
    message = next((line.strip() for line in str(exc.evalue or "").splitlines() if line.strip()),
                   "")
    return ": ".join(filter(None, [exc.ename, message])) or "an error"


def _cell_name(client: NotebookClient, index: int | None) -> str:
    if index is None:
        return "a cell"
    number = client.nb.cells[index].get("execution_count")
    return f"cell [{number}]" if number else f"cell {index + 1} of the notebook"


def _last_words(stderr: IO[str]) -> str:
    """The last line of the kernel's stderr that is not a routine log line."""
    try:
        stderr.flush()
        stderr.seek(0)
        lines = [line.strip() for line in stderr.read().splitlines()[-200:]]
    except (OSError, ValueError):
        return ""
    lines = [line for line in lines if line and "] WARNING |" not in line]
    return lines[-1][:300] if lines else ""


def _session_of(event: Mapping[str, Any]) -> str:
    return str(event.get("session_id"))
