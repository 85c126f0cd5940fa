"""What the recorded LLM calls would have cost on the cheapest acceptable model.

"Acceptable" is a list the reader chooses: ``nbcost audit --compare-models A,B,...``, by
default the what-if's own list (:data:`nbcost.meters.llm.whatif.DEFAULT_COMPARE_MODELS`). Each
model used is compared with that list and with itself, so the saving is never negative; the
audit says that the choice is by price alone, not by quality.

The calls' recorded token counts are priced with genai-prices' current prices through the
same :class:`~nbcost.pricing.llm.PriceBook` that priced them. A price is linear in the token
counts of one call except across a tier (genai-prices prices *all* of a call's tokens at the
tier its input exceeds), so the calls are summed per tier in SQL and each sum is priced as
``calls × price(mean call)``, corrected for rounding by the price per token of each kind. That
costs a few lookups per model, however many calls there are, and is exact except where one
cell's calls to a model fall on both sides of a tier (a cell records its calls per model
together, so they are placed by their mean input; see :func:`audit_queries.model_token_buckets`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from ..meters.llm.whatif import DEFAULT_COMPARE_MODELS
from ..pricing.llm import shared_price_book
from . import audit_queries as q

__all__ = ["ModelWhatIf", "WhatIf", "what_if"]

UNITS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
ZERO = Decimal(0)


@dataclass
class ModelWhatIf:
    model: str
    calls: int
    cost_usd: Decimal  # what the successful calls cost as recorded (priced part)
    unpriced_calls: int
    cheapest: str | None = None  # the cheapest acceptable model, itself included
    cheapest_usd: Decimal | None = None

    @property
    def saving_usd(self) -> Decimal | None:
        """None when some calls had no recorded price: the saving cannot be known."""
        if self.cheapest_usd is None or self.unpriced_calls:
            return None
        return self.cost_usd - self.cheapest_usd


@dataclass
class WhatIf:
    candidates: list[str]
    models: list[ModelWhatIf] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # candidates genai-prices has no price for

    @property
    def saving_usd(self) -> Decimal | None:
        savings = [m.saving_usd for m in self.models]
        if not savings or any(s is None for s in savings):
            return None
        return sum(savings, ZERO)


def _thresholds(model: str, book, at: dt.datetime) -> list[int] | None:
    """The input-token tiers of ``model``'s price; None when it has no price."""
    from genai_prices.types import TieredPrices

    found = book.lookup(model, None, None)
    if found is None:
        return None
    prices = found[1].get_prices(at)
    return sorted({tier.start for value in vars(prices).values() if isinstance(value, TieredPrices)
                   for tier in value.tiers})


def _price(book, counts: Mapping[str, int], model: str, settings: Any,
           at: dt.datetime) -> Decimal | None:
    counts = {u: int(n) for u, n in counts.items() if n} or {"input_tokens": 0}
    return book.price(counts, [model], None, None, settings, at=at).cost_usd


def _bucket_cost(book, model: str, sums: Mapping[str, int], calls: int, bounds: tuple[int, int | None],
                 settings: Any, at: dt.datetime) -> Decimal | None:
    """The cost of ``calls`` calls whose token counts sum to ``sums``, all in one tier (their
    input within ``bounds``): linear there, so ``calls × price(mean) + Σ per-token price ×
    what the rounded mean left out``."""
    mean = {u: int(sums[u]) // calls for u in UNITS}
    low, high = bounds
    mean["input_tokens"] = min(max(mean["input_tokens"], low + 1 if low else 0),
                               high if high is not None else mean["input_tokens"])
    base = _price(book, mean, model, settings, at)
    if base is None:
        return None
    total = base * calls
    for unit in UNITS:
        rest = int(sums[unit]) - mean[unit] * calls
        if not rest:
            continue
        # One token more (or less, at the tier's top) of this kind, priced in the same tier.
        step = -1 if unit == "input_tokens" and high is not None and mean[unit] >= high else 1
        probe = dict(mean)
        probe[unit] += step
        if unit != "input_tokens" and step > 0 and sum(
                probe[u] for u in ("cache_read_tokens", "cache_write_tokens")) > probe["input_tokens"]:
            probe["input_tokens"] += 1  # cached tokens are part of the input
            extra = _price(book, {**mean, "input_tokens": probe["input_tokens"]}, model, settings, at)
            per_token = _price(book, probe, model, settings, at) - extra
        else:
            per_token = (_price(book, probe, model, settings, at) - base) * step
        total += per_token * rest
    return total


def _cost_on(book, candidate: str, model: str, sums: Mapping[str, Any],
             buckets: list[dict[str, Any]], thresholds: list[int], settings: Any,
             at: dt.datetime) -> Decimal | None:
    if not thresholds:  # a flat price: the summed counts price the same as every call apart
        return _price(book, {u: sums[u] for u in UNITS}, candidate, settings, at)
    edges = [0, *thresholds]
    total = ZERO
    for bucket in buckets:
        if bucket["model"] != model:
            continue
        index = bucket["bucket"]
        bounds = (edges[index], thresholds[index] if index < len(thresholds) else None)
        cost = _bucket_cost(book, candidate, bucket, bucket["calls"], bounds, settings, at)
        if cost is None:
            return None
        total += cost
    return total


def what_if(con, candidates: list[str] | None = None, settings: Any = None,
            at: dt.datetime | None = None) -> WhatIf:
    """Per model used, the cheapest of ``candidates`` (and itself) for its recorded calls."""
    at = at or dt.datetime.now(dt.timezone.utc)
    book = shared_price_book()
    candidates = list(dict.fromkeys(candidates or DEFAULT_COMPARE_MODELS))
    sums = q.model_token_sums(con)
    result = WhatIf(candidates)
    tiers: dict[str, list[int] | None] = {}
    for name in {*candidates, *(row["model"] for row in sums)}:
        tiers[name] = [] if name in (getattr(settings, "llm_prices", None) or {}) else \
            _thresholds(name, book, at)
    result.unknown = [c for c in candidates if tiers[c] is None]
    all_thresholds = sorted({t for ts in tiers.values() if ts for t in ts})
    buckets = q.model_token_buckets(con, all_thresholds) if all_thresholds else []
    for row in sums:
        entry = ModelWhatIf(row["model"], row["calls"], Decimal(row["cost_usd"]),
                            row["unpriced_calls"])
        for candidate in dict.fromkeys([*candidates, row["model"]]):
            thresholds = tiers.get(candidate)
            if thresholds is None:
                continue
            # Buckets were cut at every model's thresholds; a candidate's own tiers are a subset.
            cost = _cost_on(book, candidate, row["model"], row, _merge(buckets, all_thresholds,
                                                                        thresholds),
                            thresholds, settings, at)
            if cost is not None and (entry.cheapest_usd is None or cost < entry.cheapest_usd):
                entry.cheapest, entry.cheapest_usd = candidate, cost
        result.models.append(entry)
    result.models.sort(key=lambda m: (-m.cost_usd, m.model))
    return result


def _merge(buckets: list[dict[str, Any]], cut_at: list[int], thresholds: list[int]) -> list[dict]:
    """Buckets cut at ``cut_at`` regrouped by the (fewer) ``thresholds`` of one price."""
    if not thresholds:
        return []
    merged: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"calls": 0, **{u: 0 for u in UNITS}})
    for bucket in buckets:
        # The bucket's lowest input exceeds cut_at[:index]; so it exceeds these thresholds.
        index = sum(1 for t in thresholds if t in cut_at[:bucket["bucket"]])
        target = merged[bucket["model"], index]
        target.update(model=bucket["model"], bucket=index)
        target["calls"] += bucket["calls"]
        for unit in UNITS:
            target[unit] += int(bucket[unit])
    return list(merged.values())
