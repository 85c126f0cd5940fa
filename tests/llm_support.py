"""Helpers for the LLM meter tests: a recording sink, SDK clients on the loopback server."""

from __future__ import annotations

import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices

from nbcost.config import Settings
from nbcost.errors import BudgetExceeded
from nbcost.meters.base import Usage

SENTINEL = "NBCOST-SENTINEL-7f3a91"
FAKE_KEY = "sk-nbcost-fake-key-0123456789"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class RecordingSink:
    """A MeterSink that keeps what it is given (the Session's stand-in for unit tests)."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.settings = Settings(data_dir=data_dir or Path("."), user="test")
        self.usages: list[Usage] = []
        self.warnings: dict[str, str] = {}
        self.refusals = 0
        self.spent_usd = Decimal(0)
        self._lock = threading.Lock()

    def record(self, usage: Usage) -> None:
        with self._lock:
            self.usages.append(usage)
            self.spent_usd += usage.cost_usd or 0

    def log(self, event: str, fields: Any) -> None:
        pass

    def warn_once(self, key: str, message: str) -> None:
        self.warnings.setdefault(key, message)

    def check_budget(self, meter: str) -> None:
        budget = self.settings.budget_usd
        if budget is not None and self.settings.budget_hard and self.spent_usd >= budget:
            self.refusals += 1
            raise BudgetExceeded(self.spent_usd, budget)

    def current_cell(self) -> dict:
        return {}


def expected_cost(model: str, provider: str, **units: int) -> Decimal:
    """genai-prices' own price for these units (the reference every test compares with)."""
    units = {k: v for k, v in units.items() if v}
    return genai_prices.calc_price(genai_prices.Usage(**units), model, provider_id=provider).total_price


def messages() -> list[dict]:
    return [{"role": "user", "content": f"Say hello. {SENTINEL}"}]


# --- fixtures (import them into a test module to use them) ---------------------------------

import gc  # noqa: E402

import pytest  # noqa: E402

import nbcost.testing  # noqa: E402
from nbcost.meters.llm import LlmMeter  # noqa: E402
from nbcost.session import Session  # noqa: E402


@pytest.fixture(scope="module")
def srv():
    with nbcost.testing.llm_server() as server:
        yield server


@pytest.fixture
def llm(nbcost_home):
    """A real Session with only the LLM meter, writing under the test's NBCOST_HOME. After the
    test: no file nbcost wrote holds the prompt sentinel or the API key."""
    session = Session(meters=[LlmMeter()])
    try:
        yield session
    finally:
        session.close()
        gc.collect()
        assert_no_secrets(nbcost_home)


def assert_no_secrets(home: Path) -> None:
    files = [p for p in Path(home).rglob("*") if p.is_file()]
    assert files, "nbcost wrote no spend log"
    for path in files:
        data = path.read_bytes()
        assert SENTINEL.encode() not in data, f"prompt text leaked into {path}"
        assert FAKE_KEY.encode() not in data, f"API key leaked into {path}"


def llm_calls(session: Session) -> list[Usage]:
    return [u for u in session.usages if u.meter == "llm"]


def one_call(session: Session) -> Usage:
    calls = llm_calls(session)
    assert len(calls) == 1, [(u.key, u.flags) for u in calls]
    return calls[0]


def tokens(usage: Usage) -> dict[str, int]:
    q = usage.quantities
    return {k: q[k] for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens",
                              "output_tokens", "reasoning_tokens")}


def dump(items: Any) -> list:
    """Comparable form of what user code saw (chunk types and contents)."""
    out = []
    for item in items:
        data = item.model_dump() if hasattr(item, "model_dump") else repr(item)
        out.append((type(item).__qualname__, data))
    return out


def without_nbcost(session: Session, run):
    """Run ``run()`` with the LLM meter removed (SDKs unpatched), then put the meter back."""
    meter = session.meters["llm"]
    meter.stop()
    try:
        return run()
    finally:
        meter.start(session)
