"""What ``%cost prices`` and ``nbcost prices`` print: the rates in effect and where they come from."""

from __future__ import annotations

from typing import Any

from ..config import Settings, load_settings
from .gpu import GPU_RATES, gpu_rate

__all__ = ["describe_gpu_rates", "describe_prices"]


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
        from .llm import describe_price

        return describe_price(model, _settings(session))
    return describe_gpu_rates(session) + "\nLLM prices: `%cost prices MODEL` (genai-prices data)."
