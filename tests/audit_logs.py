"""Spend logs and notebooks for the audit tests, made by real Sessions: the real openai SDK
against the loopback server (priced, unpriced, estimated and refused calls), the GPU meter on
fake NVML (held, busy, idle between cells), budgets that warn and refuse. The people, labels,
tags, paths and a model name are hostile HTML."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from fake_nvml import FakeGpu, live_meter

import nbcost.testing
from nbcost.config import Settings
from nbcost.errors import BudgetExceeded
from nbcost.meters.llm import LlmMeter
from nbcost.session import Session

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(2)</script>"
QUOTE = "\"'><svg onload=alert(3)>"
HOSTILE = (IMG, SCRIPT, QUOTE)
EVIL_MODEL = "<b onmouseover=alert(4)>model</b>"
KEY = "sk-nbcost-fake-key-0123456789"


def _ask(srv, requested: str, stream: bool = False, **scenario) -> None:
    client = openai.OpenAI(base_url=srv.base_url("openai", **scenario), api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(model=requested, stream=stream,
                                           messages=[{"role": "user", "content": "hello"}])
    if stream:
        for _ in reply:  # no include_usage: the meter estimates the tokens
            pass


def _session(base: Path, user: str, team: str, project: str, notebook: str, gpu: FakeGpu | None):
    meters = [LlmMeter()] + ([live_meter(gpu)] if gpu else [])
    # The loopback server stands for the public APIs: an unknown model there is unpriced.
    settings = Settings(data_dir=base, user=user, team=team, project=project,
                        self_hosted_auto=False)
    return Session(settings, meters=meters,
                   notebook={"notebook_path": notebook, "notebook_id": None})


def _gpu_cell(session, gpu: FakeGpu, n: int, **window) -> None:
    cell = session.open_window("cell", execution_count=n, **window)
    now = time.time()
    gpu.busy(now, now + 0.2, util=100, sm=50)  # then 0.2 s stalled
    time.sleep(0.4)
    session.close_window(cell.id)
    time.sleep(0.2)  # held, idle between cells


def make_logs(base: Path) -> Path:
    """Two people's sessions (under ``spend/``) and a notebook folder (``notebooks/``) in
    ``base/home``; returns that folder."""
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 1, mem_bytes=3 << 30)
    with nbcost.testing.llm_server() as srv:
        ann = _session(base / "home", "ann", "vision", "detector", "train.ipynb", gpu)
        try:
            _gpu_cell(ann, gpu, 1, label="warm-up")
            cell = ann.open_window("cell", execution_count=2, label="embed", tags={"run": "7"})
            _ask(srv, "gpt-4o", input_tokens=120_000, output_tokens=4_000, cached_tokens=20_000)
            _ask(srv, "gpt-4o-mini", input_tokens=3_000, output_tokens=900, reasoning_tokens=0)
            ann.close_window(cell.id)
            _gpu_cell(ann, gpu, 3)
        finally:
            ann.close()

        mal = _session(base / "home", IMG, SCRIPT, QUOTE, f"{SCRIPT}/{IMG}.ipynb", None)
        try:
            mal.settings.budget_usd = Decimal("0.05")
            cell = mal.open_window("cell", execution_count=1, label=IMG, tags={SCRIPT: QUOTE})
            _ask(srv, "gpt-4o", input_tokens=30_000, output_tokens=2_000)  # over 80 % and 100 %
            _ask(srv, EVIL_MODEL)  # a model nobody prices
            _ask(srv, "gpt-4o-mini", stream=True)  # estimated
            mal.settings.budget_hard = True
            with pytest.raises(BudgetExceeded):
                _ask(srv, "gpt-4o")
            mal.close_window(cell.id)
        finally:
            mal.close()

    notebooks = base / "home" / "notebooks"
    notebooks.mkdir()
    # Notebooks run elsewhere (their logs are not here): only their cells' records count.
    _notebook(notebooks / f"{IMG}.ipynb", [
        _code(1, outputs=True), _code(2), _code(None, outputs=True), _code(None),
        _code(4, metadata={"nbcost": _record(4, "0.01")})])
    _notebook(notebooks / "clean.ipynb", [_code(1, metadata={"nbcost": _record(1, "0.02")}),
                                          _code(None)])
    (notebooks / "broken.ipynb").write_text("{not json")
    return base / "home"


#: What the cell records in make_logs' notebooks add to the logs' spend.
NOTEBOOK_RECORDS_USD = Decimal("0.03")


def _record(count: int, cost: str) -> dict:
    """A cell's metadata.nbcost as `nbcost run` writes it, from a run on another machine."""
    start = f"2026-11-02T10:0{count}:00.000000Z"
    return {"v": 1, "session_id": f"elsewhere-{count}", "execution_count": count, "cell_id": None,
            "label": None, "start": start, "end": start.replace(":00.000000Z", ":30.000000Z"),
            "wall_s": 30.0, "cost_usd": cost, "unpriced": False, "status": "ok", "flags": []}


def _code(count, outputs=False, metadata=None) -> dict:
    return {"cell_type": "code", "execution_count": count, "metadata": metadata or {},
            "source": "x = 1",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}] if outputs else []}


def _notebook(path: Path, cells: list[dict]) -> None:
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


