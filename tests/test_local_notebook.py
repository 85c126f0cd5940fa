"""The issue's end-to-end case in a real kernel (nbclient): a notebook generates with a local
model and calls an API model; each cell shows its cost, the local one its measured price per
million tokens, and ``%cost compare --local`` sets them side by side with the break-even
utilisation. The kernel's GPU is the fake NVML (this machine has none)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from llm_support import FAKE_KEY, srv
from nbclient import NotebookClient

pytest.importorskip("torch")
pytest.importorskip("transformers")

TESTS = str(Path(__file__).resolve().parent)

FAKE_GPU = f"""
import os, sys, time
sys.path.insert(0, {TESTS!r})
from fake_nvml import FakeGpu, live_meter
import nbcost
gpu = FakeGpu("GPU-notebook").process(os.getpid(), time.time() - 5)
nbcost.session().remove_meter("gpu")
nbcost.session().add_meter(live_meter(gpu))
"""

MODEL = """
import torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100,
                                   n_positions=64, eos_token_id=99)).eval()
"""

LOCAL_CELL = """%%cost --label local
now = time.time()
gpu.busy(now, now + 0.3)
out = model.generate(torch.tensor([[1, 2, 3, 4, 5]] * 2), max_new_tokens=8, min_new_tokens=8)
time.sleep(0.5)
"""

API_CELL = """%%cost --label api
import openai
client = openai.OpenAI(base_url={base!r}, api_key={key!r}, max_retries=0)
reply = client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{{"role": "user", "content": "hi"}}])
"""


def texts(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def test_a_notebook_shows_local_and_api_cost_per_million_tokens(srv, nbcost_home, tmp_path):
    base = srv.base_url("openai", input_tokens=2000, output_tokens=1000)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (
        "%load_ext nbcost", FAKE_GPU, MODEL, LOCAL_CELL, API_CELL.format(base=base, key=FAKE_KEY),
        "%cost compare --local --models gpt-4o-mini")]
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute(
        env={**os.environ})
    local, api, compare = (texts(nb.cells[i]) for i in (3, 4, 5))
    assert "Local model" in local and "10 input and 16 output tokens" in local
    out_price = re.search(r"(\$[\d.,]+/Mtok) out", local).group(1)
    assert "GPU" in local and "busy" in local
    assert "gpt-4o-mini" in api and "3,000 tokens" in api
    assert f"gpt2 costs {out_price} out" in compare  # the cell's measured price, again
    assert "gpt-4o-mini is $0.60/Mtok" in compare
    assert re.search(r"gpt-4o-mini\s+\S+\s+\$0\.60/Mtok (local is|the API is) cheaper\s+"
                     r"(\d+ %|never \(over 100 %\))", compare)
    assert "The session's 1 API call (2,000 input, 1,000 output tokens) cost" in compare
