"""What ``%cost prices`` and ``nbcost prices`` print: the rates in effect and where they come from."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Mapping

from ..config import Settings, load_settings
from .gpu import GPU_RATES, gpu_rate

__all__ = ["describe_gpu_rates", "describe_llm_price", "describe_override", "describe_prices"]

#: genai-prices' unit names in words; others are spelled from their key (``input_audio_mtok``).
_UNIT_WORDS = {
    "input_mtok": "input tokens",
    "output_mtok": "output tokens",
    "cache_read_mtok": "cached input tokens",
    "cache_write_mtok": "cache-write tokens",
    "cache_write_1h_mtok": "1-hour cache-write tokens",
    "requests_kcount": "requests",
}


def _settings(session: Any) -> Settings:
    return session.settings if session is not None else load_settings()


def _device_names(session: Any) -> list[str]:
    meter = session.meters.get("gpu") if session is not None else None
    names = getattr(meter, "device_names", None)
    return list(names()) if callable(names) else []


def describe_gpu_rates(session: Any = None) -> str:
    """The rate each visible GPU is priced at, then the built-in table."""
    settings = _settings(session)
    lines = []
    for name in _device_names(session):
        quote = gpu_rate(name, settings)
        price = f"${quote.usd_per_hour}/GPU-hour" if quote.usd_per_hour is not None else "unpriced"
        lines.append(f"{name}: {price} — {quote.source}")
    if settings.gpu_rate_usd_per_hour is not None:
        lines.append(f"Session rate for every GPU: ${settings.gpu_rate_usd_per_hour}/GPU-hour")
    for model, rate in settings.gpu_rates.items():
        lines.append(f"Your rate for {model}: ${rate}/GPU-hour")
    lines.append("Built-in on-demand rates (USD per GPU-hour; override with `%cost gpu-rate`):")
    width = max(len(r.model) for r in GPU_RATES)
    lines += [f"  {r.model:<{width}}  ${r.usd_per_hour:<6}  {r.source}, {r.as_of}" for r in GPU_RATES]
    return "\n".join(lines)


def describe_prices(session: Any = None, model: str | None = None) -> str:
    """GPU rates, or with ``model`` the LLM price in effect for it."""
    if model:
        return describe_llm_price(model, _settings(session))
    return describe_gpu_rates(session) + "\nLLM prices: `%cost prices MODEL` (genai-prices data)."


def describe_llm_price(model: str, settings: Any) -> str:
    """The price in effect for an LLM model, in words, and where it comes from."""
    from .llm import _version, shared_price_book

    overrides = getattr(settings, "llm_prices", None) or {}
    deployments = getattr(settings, "azure_deployments", None) or {}
    lines = []
    name = model
    if model in deployments:
        name = deployments[model]
        lines.append(f"{model}: Azure deployment of {name} (c.NbCost.azure_deployments)")
    if name in overrides:
        lines.append(f"{name}: {describe_override(overrides[name])} (your price: "
                     f"`%cost llm-price` or c.NbCost.llm_prices)")
        return "\n".join(lines)
    found = shared_price_book().lookup(name, None, None)
    if found is None:
        lines.append(f"{name}: no price known (genai-prices {_version()} has no such model); its "
                     f"calls are recorded as unpriced. Price it with `%cost llm-price {name} "
                     f"--input USD --output USD` (per million tokens) or c.NbCost.llm_prices.")
        return "\n".join(lines)
    provider, info = found
    now = dt.datetime.now(dt.timezone.utc)
    prices = info.get_prices(now)
    lines.append(f"{name}: {provider.name} {info.id} (genai-prices {_version()} bundled data, "
                 f"in effect {now:%Y-%m-%d})")
    tiered = False
    for unit, value in vars(prices).items():
        if value is None or unit.startswith("_"):
            continue
        tiers = getattr(value, "tiers", None)
        base = getattr(value, "base", value)
        line = f"  {_rate(base)} {_per(unit)}"
        for tier in tiers or ():
            tiered = True
            line += f"; {_rate(tier.price)} above {tier.start:,} input tokens"
        lines.append(line)
    if tiered:
        lines.append("  past a threshold, every token of that request pays the higher rate")
    if not isinstance(info.prices, type(prices)):
        lines.append("  prices change over time; the one in effect when a call is made applies")
    if info.price_variants:
        variants = sorted({v for variant in info.price_variants for v in variant.when.values()})
        lines.append(f"  service-tier variants: {', '.join(variants)}")
    return "\n".join(lines)


def describe_override(units: Mapping[str, Decimal]) -> str:
    """A user's per-million-token price, in words: ``$0.50 per million input tokens, ...``."""
    return ", ".join(f"{_rate(Decimal(value))} {_per(unit)}" for unit, value in units.items())


def _per(unit: str) -> str:
    """``per million input tokens``, ``per 1,000 web searches``."""
    if unit in _UNIT_WORDS:
        words = _UNIT_WORDS[unit]
    else:
        words = unit.rsplit("_", 1)[0].replace("_", " ")
        words = words if unit.endswith("_kcount") else f"{words} tokens"
    return f"per 1,000 {words}" if unit.endswith("_kcount") else f"per million {words}"


def _rate(value: Decimal) -> str:
    """A unit price: ``$10``, ``$2.50``, ``$0.075`` (all its digits, at least cents)."""
    text = format(Decimal(value).normalize(), "f")
    whole, _, cents = text.partition(".")
    return f"${whole}" if not cents else f"${whole}.{cents.ljust(2, '0')}"
