"""Meters defined by the tests, to prove the meter interface with something other than GPUs and LLMs."""

from __future__ import annotations

from decimal import Decimal

from nbcost.meters.base import Measurement, Meter, Usage


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
