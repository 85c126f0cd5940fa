"""Real spend logs for the report tests: real Sessions with the LLM meter (the openai SDK against
the loopback server) and the GPU meter (the fake NVML), as a team's kernels would write them."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from fake_nvml import FakeGpu, live_meter

from nbcost.cli import main
from nbcost.config import Settings
from nbcost.ledger import read_log
from nbcost.meters.llm import LlmMeter
from nbcost.session import Session


@dataclass
class Cell:
    """One cell: its tags and label, and the LLM calls it makes (model, input, output, cached)."""

    calls: list[tuple[str, int, int, int]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    label: str | None = None
    busy_s: float = 0.05
    fail: bool = False


def run_session(srv, data_dir: Path, cells: list[Cell], *, user: str = "ann", team: str = "ml",
                project: str = "search", notebook_path: str | None = "work/a.ipynb",
                notebook_id: str | None = None, kill_in_last: bool = False,
                gpu: bool = True, idle_s: float = 0.05) -> Path:
    """Run ``cells`` in one real session; return its spend log. ``kill_in_last``: the log as a
    kernel killed inside the last cell (after its calls) leaves it."""
    meters: list[Any] = [LlmMeter()]
    device = None
    if gpu:
        device = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
        meters.append(live_meter(device, tick_s=0.02, checkpoint_s=0.05))
    # The loopback server stands for the public APIs: an unknown model there is unpriced.
    settings = Settings(data_dir=data_dir, user=user, team=team, project=project,
                        self_hosted_auto=False)
    session = Session(settings=settings, meters=meters,
                      notebook={"notebook_path": notebook_path, "notebook_id": notebook_id})
    killed = None
    try:
        for number, cell in enumerate(cells, start=1):
            time.sleep(idle_s)  # held, idle, between cells
            info = session.open_window("cell", label=cell.label, tags=cell.tags,
                                       cell_id=f"cell-{number}", execution_count=number)
            if device is not None:
                now = time.time()
                device.busy(now, now + cell.busy_s)
            for model, inp, out, cached in cell.calls:
                client = openai.OpenAI(base_url=srv.base_url("openai", input_tokens=inp,
                                                             output_tokens=out, cached_tokens=cached),
                                       api_key="sk-test", max_retries=0)
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
            time.sleep(cell.busy_s + 0.02)
            if kill_in_last and number == len(cells):
                session.flush()
                killed = session.ledger_path.with_name(session.ledger_path.stem + "-killed.jsonl")
                shutil.copy(session.ledger_path, killed)
            session.close_window(info.id, status="error" if cell.fail else "ok")
    finally:
        session.close()
    if killed is not None:
        session.ledger_path.unlink()
        return killed
    return session.ledger_path


def session_total(log: Path):
    """What the session's own log says it spent (its session_end)."""
    from decimal import Decimal

    ends = [e for e in read_log(log).events if e["event"] == "session_end"]
    return Decimal(ends[-1]["cost_usd"])


def report_json(*args: str, capsys) -> tuple[int, dict, str]:
    code = main(["report", *map(str, args), "--format", "json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else {}), captured.err
