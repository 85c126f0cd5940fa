"""LLM prices: genai-prices' bundled data, the user's overrides, and Azure deployment names.

Where a price comes from, in order:

1. ``settings.llm_prices[model]`` (USD per million tokens: ``input_mtok``, ``output_mtok``,
   ``cache_read_mtok``, ``cache_write_mtok``): the user's override;
2. genai-prices, matched by the client's base URL (``provider_api_url``) and, for a base URL it
   does not know (a proxy, the loopback server), by the SDK's provider; with cache, tiered,
   date-effective and service-tier prices;
3. nothing: the call is *unpriced* (``cost_usd=None``), never $0.

``genai_prices.calc_price`` takes ~60-130 µs, most of it in generic unit bookkeeping. For a model
whose prices are flat (no tiers) the cost is linear in the token counts, so :class:`PriceBook`
measures the coefficients once with ``calc_price`` itself, checks the first result against it,
and then prices a call with four Decimal multiplications. Tiered prices always go the slow way.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

__all__ = ["Price", "PriceBook", "override_cost", "shared_price_book"]

log = logging.getLogger("nbcost.llm")
_MTOK = Decimal(1_000_000)
#: How long a price found for "now" is reused: a price change takes effect at most this late.
_RECENT_S = 60.0
_LINEAR_UNITS = frozenset({"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"})


@dataclass(slots=True)
class Price:
    """What one call cost: ``cost_usd`` None means unpriced; ``model`` is the name priced."""

    cost_usd: Decimal | None
    model: str
    source: str | None


def _genai_prices():
    import genai_prices
    from genai_prices import data_snapshot

    return genai_prices, data_snapshot


def override_cost(units: Mapping[str, Decimal], counts: Mapping[str, int]) -> Decimal:
    """Cost from per-million-token overrides; cache units default to the input price."""
    inp = Decimal(units.get("input_mtok", 0))
    read, write = counts.get("cache_read_tokens", 0), counts.get("cache_write_tokens", 0)
    uncached = counts.get("input_tokens", 0) - read - write
    total = (
        uncached * inp
        + read * Decimal(units.get("cache_read_mtok", inp))
        + write * Decimal(units.get("cache_write_mtok", inp))
        + counts.get("output_tokens", 0) * Decimal(units.get("output_mtok", 0))
    )
    return total / _MTOK


class PriceBook:
    """Prices calls; caches model lookups and flat-price coefficients. Thread-safe enough:
    the caches only ever gain entries and a race computes the same value twice."""

    def __init__(self) -> None:
        self._lookups: dict[tuple, tuple[Any, Any] | None] = {}
        self._linear: dict[tuple, dict[str, Decimal] | None] = {}
        self._verified: set[tuple] = set()
        self._sources: dict[tuple[str, str], str] = {}
        # Verified coefficients by model, tier and units, for ``_RECENT_S``: a call then skips
        # genai-prices' date-effective lookup (cold, it is a third of a call's pricing time).
        self._recent: dict[tuple, tuple[dict[str, Decimal], float]] = {}

    def lookup(self, model: str, provider: str | None, base_url: str | None,
               by_name_alone: bool = True) -> tuple[Any, Any] | None:
        """genai-prices' (provider, model info) for a model name, or None if it knows none.
        ``by_name_alone=False`` skips the last resort (any provider's model of that name): a
        local server's ``Qwen/Qwen2.5-7B`` is not the API of that name."""
        key = (model, provider, base_url, by_name_alone)
        if key in self._lookups:
            return self._lookups[key]
        _, snapshots = _genai_prices()
        snapshot = snapshots.get_snapshot()
        found = None
        attempts = [(None, base_url)] if base_url else []
        attempts += [(provider, None)] if provider else []
        if by_name_alone:
            attempts.append((None, None))  # by the model name alone
        for provider_id, url in attempts:
            try:
                found = snapshot.find_provider_model(model, None, provider_id, url)
                break
            except LookupError:
                continue
        if found is not None:
            self._sources[found[0].id, found[1].id] = f"genai-prices {_version()} {found[0].id}/{found[1].id}"
        self._lookups[key] = found
        return found

    def price(self, counts: Mapping[str, int], models: list[str], provider: str | None,
              base_url: str | None, settings: Any, service_tier: str | None = None,
              at: dt.datetime | None = None, by_name_alone: bool = True) -> Price:
        """Price ``counts`` (``genai_prices.Usage`` keywords) as the first model that has one."""
        overrides = getattr(settings, "llm_prices", None) or {}
        for model in models:
            if model in overrides:
                return Price(override_cost(overrides[model], counts), model, "override")
        for model in models:
            found = self.lookup(model, provider, base_url, by_name_alone)
            if found is not None:
                cost = self._calc(found, counts, service_tier, at)
                return Price(cost, model, self._sources[found[0].id, found[1].id])
        return Price(None, models[0] if models else "unknown", None)

    def _calc(self, found: tuple[Any, Any], counts: Mapping[str, int], tier: str | None,
              at: dt.datetime | None) -> Decimal:
        provider, model = found
        recent_key = (id(model), tier, frozenset(counts)) if at is None else None
        recent = self._recent.get(recent_key) if recent_key is not None else None
        if recent is not None and recent[1] > time.monotonic():  # priced this way just now
            return sum(recent[0][unit] * n for unit, n in counts.items()) / _MTOK
        at = at or dt.datetime.now(dt.timezone.utc)
        context = {"service_tier": tier} if tier else None
        standard = model.get_prices(at)
        key = (id(standard), tier, frozenset(counts))
        coefficients = self._linear.get(key, ...)
        if coefficients is ...:
            coefficients = self._linear[key] = self._coefficients(found, counts, context, at)
        if coefficients is None:
            return self._slow(found, counts, context, at)
        cost = sum(coefficients[unit] * n for unit, n in counts.items()) / _MTOK
        if key not in self._verified:  # check the shortcut against genai-prices once
            slow = self._slow(found, counts, context, at)
            if slow != cost:
                log.warning("nbcost: flat-price shortcut disagrees for %s (%s != %s)", model.id, cost, slow)
                self._linear[key] = None
                return slow
            self._verified.add(key)
        if recent_key is not None:
            self._recent[recent_key] = (coefficients, time.monotonic() + _RECENT_S)
        return cost

    def _slow(self, found: tuple[Any, Any], counts: Mapping[str, int], context: Any,
              at: dt.datetime) -> Decimal:
        genai_prices, _ = _genai_prices()
        provider, model = found
        usage = genai_prices.Usage(**counts)
        return model.calc_price(usage, provider, genai_request_timestamp=at,
                                price_context=context).total_price

    def _coefficients(self, found: tuple[Any, Any], counts: Mapping[str, int], context: Any,
                      at: dt.datetime) -> dict[str, Decimal] | None:
        """USD per million tokens of each unit, measured with calc_price, or None if not flat."""
        from genai_prices.types import TieredPrices

        provider, model = found
        prices = model.get_prices(at, context) if context else model.get_prices(at)
        if not set(counts) <= _LINEAR_UNITS or any(
            isinstance(v, TieredPrices) for v in vars(prices).values()
        ):
            return None
        base = {"input_tokens": 10_000_000}
        base_cost = self._slow(found, base, context, at)
        coefficients = {"input_tokens": base_cost / 10}
        for unit in counts:
            if unit != "input_tokens":
                probe = {**base, unit: 1_000_000}
                coefficients[unit] = self._slow(found, probe, context, at) - base_cost
        return coefficients


_SHARED: PriceBook | None = None


def shared_price_book() -> PriceBook:
    """The process's PriceBook: its caches hold only what the bundled (immutable) genai-prices
    data says, so every session and meter restart can share them."""
    global _SHARED
    if _SHARED is None:
        _SHARED = PriceBook()
    return _SHARED


def _version() -> str:
    from importlib.metadata import version

    return version("genai-prices")
