"""Helpers for the tests of work that leaves the kernel (child processes, Dask workers)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from llm_support import expected_cost

#: Token counts of the calls the children make: every call differs, so a sum is exact only when
#: each call is counted once.
CALLS = [(1000 + 100 * i, 200 + 10 * i) for i in range(6)]
MODEL = "gpt-4o-mini"

# What a child runs: one chat completion on the loopback server, with the real openai SDK.
CHILD_CALL = '''
import openai, sys
def ask(base_url, model="{model}"):
    client = openai.OpenAI(base_url=base_url, api_key="sk-loopback", max_retries=0)
    client.chat.completions.create(model=model, messages=[{{"role": "user", "content": "hi"}}])
    return True
'''.format(model=MODEL)


def worker_module(folder: Path) -> Path:
    """A module the children import (spawned workers find functions by module name)."""
    (folder / "nbcost_remote_work.py").write_text(CHILD_CALL)
    return folder


def base_urls(srv, calls) -> list[str]:
    return [srv.base_url("openai", input_tokens=i, output_tokens=o) for i, o in calls]


def cost_of(calls) -> Decimal:
    return sum((expected_cost(MODEL, "openai", input_tokens=i, output_tokens=o)
                for i, o in calls), Decimal(0))


def tokens_of(calls) -> dict[str, int]:
    return {"input_tokens": sum(i for i, _ in calls), "output_tokens": sum(o for _, o in calls),
            "calls": len(calls)}
