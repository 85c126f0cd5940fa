"""An LLM call's cost split by token kind, at exact per-token unit prices.

The spend log keeps one cost per call. FOCUS wants ``ListUnitPrice × PricingQuantity = ListCost``
on every row, and a call's price differs by token kind (cache reads are cheaper than fresh input,
output dearer), so one FOCUS row per kind needs each kind's price per token. They are measured
the way :class:`nbcost.pricing.llm.PriceBook` measures flat-price coefficients: by pricing a
million tokens of one kind with the same price book (and the same overrides) the call was
priced with. The split is kept only when its parts add up to the call's recorded cost *exactly*;
a tiered, audio-priced or otherwise non-linear price (or price data that changed since) gives
``None``, and the caller records the call as one priced request instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Mapping

__all__ = ["TOKEN_KINDS", "TokenCharge", "split_call"]

_MTOK = Decimal(1_000_000)
#: The kinds a call's tokens are billed as, in the order rows are written. ``input`` is the
#: uncached part (the log's ``input_tokens`` includes cache reads and writes); ``output``
#: includes reasoning tokens, which are billed as output.
TOKEN_KINDS = ("input", "cache_read", "cache_write", "output")


@dataclass(frozen=True, slots=True)
class TokenCharge:
    """``tokens`` of one kind at ``unit_price_usd`` each; ``cost_usd`` is their exact product."""

    kind: str
    tokens: int
    unit_price_usd: Decimal

    @property
    def cost_usd(self) -> Decimal:
        return self.unit_price_usd * self.tokens


def token_counts(quantities: Mapping[str, Any]) -> dict[str, int]:
    """The call's tokens by billed kind (uncached input, cache read, cache write, output)."""
    read = int(quantities.get("cache_read_tokens") or 0)
    write = int(quantities.get("cache_write_tokens") or 0)
    return {"input": max(int(quantities.get("input_tokens") or 0) - read - write, 0),
            "cache_read": read, "cache_write": write,
            "output": int(quantities.get("output_tokens") or 0)}


class UnitPrices:
    """Per-token prices by kind, measured once per model, price source and day."""

    def __init__(self) -> None:
        from .pricing.llm import shared_price_book

        self._book = shared_price_book()
        #: model → USD per million tokens, from the log's ``%cost llm-price`` events so far
        self.overrides: dict[str, dict[str, Decimal]] = {}
        self._cache: dict[tuple, dict[str, Decimal] | None] = {}

    def of(self, event: Mapping[str, Any]) -> dict[str, Decimal] | None:
        attributes = event.get("attributes") or {}
        source = attributes.get("price_source")
        model = event.get("key")
        if not source or not model:
            return None
        at = _parse(event.get("ts"))
        key = (model, source, attributes.get("provider"), attributes.get("base_url"),
               attributes.get("service_tier"), at.date() if at else None,
               tuple(sorted(self.overrides.get(model, {}).items())) if source == "override" else ())
        if key not in self._cache:
            self._cache[key] = self._measure(model, source, attributes, at)
        return self._cache[key]

    def _measure(self, model: str, source: str, attributes: Mapping[str, Any],
                 at: dt.datetime | None) -> dict[str, Decimal] | None:
        if source == "override":
            if model not in self.overrides:
                return None  # set in a config file this log does not carry
            settings = SimpleNamespace(llm_prices={model: self.overrides[model]})
        else:
            settings = SimpleNamespace(llm_prices={})

        def price(**counts: int) -> Decimal | None:
            try:
                found = self._book.price(counts, [model], attributes.get("provider"),
                                         attributes.get("base_url"), settings,
                                         attributes.get("service_tier"), at)
            except Exception:  # noqa: BLE001 - a price the book cannot compute: no split
                return None
            return found.cost_usd

        n = int(_MTOK)
        base = price(input_tokens=n)
        probes = {"cache_read": price(input_tokens=n, cache_read_tokens=n),
                  "cache_write": price(input_tokens=n, cache_write_tokens=n),
                  "output": price(input_tokens=n, output_tokens=n)}
        if base is None or any(v is None for v in probes.values()):
            return None
        return {"input": base / _MTOK, "cache_read": probes["cache_read"] / _MTOK,
                "cache_write": probes["cache_write"] / _MTOK,
                "output": (probes["output"] - base) / _MTOK}


def split_call(event: Mapping[str, Any], prices: UnitPrices) -> list[TokenCharge] | None:
    """The call's priced tokens by kind, or None when no exact split adds up to its cost."""
    cost = event.get("cost_usd")
    if cost is None:
        return None
    units = prices.of(event)
    if units is None:
        return None
    charges = [TokenCharge(kind, n, units[kind])
               for kind, n in token_counts(event.get("quantities") or {}).items() if n]
    if sum((c.cost_usd for c in charges), Decimal(0)) != Decimal(cost):
        return None
    return charges


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
