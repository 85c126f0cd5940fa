"""Shared fixtures: every test writes its spend log under its own temporary NBCOST_HOME."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from nbcost.meters.base import Measurement, Meter, Usage


@pytest.fixture(autouse=True)
def nbcost_home(tmp_path, monkeypatch):
    home = tmp_path / "nbcost-home"
    monkeypatch.setenv("NBCOST_HOME", str(home))
    for name in ("NBCOST_USER", "NBCOST_TEAM", "NBCOST_PROJECT", "NBCOST_TAGS", "NBCOST_GPU_RATE",
                 "NBCOST_GPU_RATES", "NBCOST_SESSION_ID", "NBCOST_NOTEBOOK", "NBCOST_NOTEBOOK_ID"):
        monkeypatch.delenv(name, raising=False)
    return home


class PennyMeter(Meter):
    """A continuous test meter: one cent per second of wall time, measured from the clock."""

    name = "penny"

    def measure(self, start: float, end: float) -> Measurement:
        seconds = end - start
        return Measurement({"seconds": seconds},
                           cost_usd=(Decimal("0.01") * Decimal(str(seconds))).quantize(Decimal("1e-9")))


class TokenMeter(Meter):
    """A discrete test meter: ``meter.call(model, tokens)`` reports one priced call."""

    name = "tokens"
    PRICE_PER_TOKEN = Decimal("0.000002")

    def start(self, sink) -> None:
        self.sink = sink

    def call(self, model: str, tokens: int, priced: bool = True) -> None:
        self.sink.check_budget(self.name)
        cost = self.PRICE_PER_TOKEN * tokens if priced else None
        self.sink.record(Usage(meter=self.name, event="llm_call", key=model,
                               quantities={"calls": 1, "tokens": tokens}, cost_usd=cost))


@pytest.fixture
def wait_until():
    def wait(predicate, timeout=30.0, interval=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return False

    return wait
