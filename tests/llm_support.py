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
