"""A real session's spend log for the FOCUS and OpenTelemetry export tests: real SDK calls
against the loopback LLM server, the GPU meter on the fake NVML, windows, tags and prices."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
from fake_nvml import FakeGpu, live_meter
from llm_support import FAKE_KEY, SENTINEL, messages

import nbcost
from nbcost.api import set_session
from nbcost.config import Settings
from nbcost.ledger import read_log
from nbcost.meters.llm import LlmMeter
from nbcost.session import Session

GPU_RATE = Decimal("2.5")
#: What the scenario's calls are (the tests derive every expectation from the log itself).
OPENAI = dict(input_tokens=1000, output_tokens=50, cached_tokens=400, reasoning_tokens=10)
ANTHROPIC = dict(input_tokens=3000, cached_tokens=2000, cache_write_tokens=600, output_tokens=90)


def openai_client(srv, **scenario):
    return openai.OpenAI(base_url=srv.base_url("openai", **scenario), api_key=FAKE_KEY,
                         max_retries=0)


def chat(client, model):
    return client.chat.completions.create(model=model, messages=messages())


def run_scenario(srv, data_dir: Path, gpu: bool = True) -> Session:
    """A closed session: two cells (one with a nested block), a call between cells, an
    unpriced model, a `%cost llm-price` override and a config-only one, GPU held throughout."""
    meters = [LlmMeter()]
    fake = None
    if gpu:
        fake = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
        meters.append(live_meter(fake, checkpoint_s=0.3))
    settings = Settings(data_dir=data_dir, user="ada", team="ml", project="search",
                        default_tags={"env": "dev"}, gpu_rate_usd_per_hour=GPU_RATE,
                        self_hosted_auto=False)  # the loopback server is "the API" here
    settings.llm_prices["cfg-model"] = {"input_mtok": Decimal("3"), "output_mtok": Decimal("7")}
    session = Session(settings=settings, meters=meters,
                      notebook={"notebook_path": "work/embed.ipynb", "notebook_id": "nb-1"})
    old = set_session(session)
    try:
        oa = openai_client(srv, **OPENAI)
        cell = session.open_window("cell", label="embed", tags={"exp": "a", "flag": ""},
                                   cell_id="c1", execution_count=1)
        if fake:
            now = time.time()
            fake.busy(now, now + 0.2)
        chat(oa, "gpt-4o-mini")
        chat(oa, "gpt-4o-mini")
        with nbcost.track("inner"):
            chat(oa, "gpt-4o-mini")
        anthropic.Anthropic(base_url=srv.base_url("anthropic", **ANTHROPIC), api_key=FAKE_KEY,
                            max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=messages())
        chat(oa, "no-such-model-xyz")  # unpriced
        time.sleep(0.3)
        session.close_window(cell.id)
        chat(oa, "gpt-4o")  # between cells
        # What `%cost llm-price my-model --input 1 --output 2 --cached 0.5` does.
        units = {"input_mtok": Decimal("1"), "output_mtok": Decimal("2"),
                 "cache_read_mtok": Decimal("0.5")}
        settings.llm_prices["my-model"] = units
        session.log("rate_override", {"meter": "llm", "scope": "my-model",
                                      **{k: str(v) for k, v in units.items()}})
        cell2 = session.open_window("cell", cell_id="c2", execution_count=2)
        chat(oa, "my-model")
        chat(oa, "cfg-model")  # priced by a config override the log does not carry
        time.sleep(0.3)
        session.close_window(cell2.id, status="error")
        time.sleep(0.3)
    finally:
        set_session(old)
        session.close()
    return session


def events_of(session: Session) -> list[dict]:
    return read_log(session.ledger_path).events


def assert_no_prompt(data: bytes, where: str) -> None:
    assert SENTINEL.encode() not in data, f"prompt text leaked into {where}"
    assert FAKE_KEY.encode() not in data, f"API key leaked into {where}"
