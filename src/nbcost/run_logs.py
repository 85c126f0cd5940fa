"""Which spend logs one ``nbcost run`` wrote.

One run can start several sessions in its kernel (``%cost reset``, ``%reload_ext nbcost``), each
with its own log. The runner passes ``NBCOST_RUN_ID``; a session that writes it into its
``session_start`` is found by it. A session that does not is found by what links it to the run:
the session id the runner asked for, a ``parent_session_id`` naming a session of the run, or the
kernel's pid together with the notebook id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from .ledger import iso_utc
from .rows import parse_ts

__all__ = ["find_run_logs"]


def find_run_logs(data_dir: Path, *, run_id: str, session_ids: Iterable[str] = (),
                  notebook_id: str | None = None, kernel_pid: int | None = None,
                  since: float | None = None) -> list[Path]:
    """The spend logs one run's kernel wrote, in the order its sessions started.

    A session belongs to the run when its ``session_start`` carries the run's ``run_id``; or,
    carrying no run id, has one of ``session_ids``, follows a session of the run
    (``parent_session_id``) or was started by the run's kernel (``pid`` and ``notebook_id``) at
    or after ``since``. Only the first line of each log since the run's start day is read.
    """
    spend = data_dir / "spend"
    first_day = iso_utc(since)[:10] if since is not None else ""
    starts: list[tuple[Path, dict[str, Any]]] = []
    try:
        days = sorted(p for p in spend.iterdir() if p.is_dir() and p.name >= first_day)
    except OSError:
        return []
    for day in days:
        try:
            logs = sorted(day.glob("*.jsonl"))
        except OSError:
            continue
        for log in logs:
            event = _first_event(log)
            if event is not None and event.get("event") == "session_start":
                starts.append((log, event))
    mine = set(session_ids)
    pids = {kernel_pid} if kernel_pid is not None else set()
    found: dict[Path, dict[str, Any]] = {}
    changed = True
    while changed:  # to a fixed point: a session found by id gives the pid of the others
        changed = False
        for log, event in starts:
            if log in found or event.get("run_id") not in (None, run_id):  # another run's
                continue
            by_kernel = (event.get("pid") in pids and event.get("notebook_id") == notebook_id
                         and _started(event) >= (since or 0) - 1)
            if (event.get("run_id") == run_id or event.get("session_id") in mine
                    or event.get("parent_session_id") in mine or by_kernel):
                found[log] = event
                mine.add(event.get("session_id"))
                if isinstance(event.get("pid"), int):
                    pids.add(event["pid"])
                changed = True
    return sorted(found, key=lambda log: (_started(found[log]), str(log)))


def _first_event(log: Path) -> dict[str, Any] | None:
    try:
        with open(log, "rb") as f:  # one session_start line; never the whole log
            line = f.readline(1 << 16)
        event = json.loads(line)
    except (OSError, ValueError):
        return None
    return event if isinstance(event, dict) else None


def _started(event: Mapping[str, Any]) -> float:
    try:
        moment = parse_ts(event.get("started_at") or event.get("ts"))
    except (TypeError, ValueError):
        return 0.0
    return moment.timestamp() if moment else 0.0
