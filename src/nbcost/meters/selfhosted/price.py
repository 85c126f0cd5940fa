"""The effective price of self-hosted tokens: a GPU's measured cost over the tokens it made.

Pure arithmetic on Decimals (no meters, no clocks), so every figure can be checked by hand.

Splitting one GPU cost ``C`` between input and output tokens:

* **by time**, where the engine reports prefill and decode seconds (vLLM): input tokens carry
  ``C × prefill / (prefill + decode)``, output tokens the rest;
* **by weighted tokens** otherwise: one output token counts as ``OUTPUT_WEIGHT`` (4) input
  tokens, so ``C / (input + 4 × output)`` is the price of an input token and four times that of
  an output token. Decoding makes one forward pass per token while prefill takes a prompt's
  tokens in parallel, and 4 is the ratio most API price lists use (gpt-4o-mini $0.15 / $0.60).

What the same GPU would cost per token at another utilisation scales with the busy share: tokens
come from busy time while the bill runs on held time, so at busy share ``b`` instead of the
observed ``b0`` a token costs ``price × b0 / b``; the busy share at which local tokens cost what
an API charges for them is ``b0 × local_cost / api_cost``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["OUTPUT_WEIGHT", "EffectivePrice", "at_busy_share", "break_even_busy_share",
           "effective_price"]

MTOK = Decimal(1_000_000)
#: An output token's weight against an input token when the engine gives no prefill/decode time.
OUTPUT_WEIGHT = Decimal(4)
#: $/Mtok figures are kept to a millionth of a dollar.
_STEP = Decimal("0.000001")
RULE_TIME = "prefill/decode time"
RULE_TOKENS = f"tokens, output weighted ×{OUTPUT_WEIGHT}"


@dataclass(frozen=True, slots=True)
class EffectivePrice:
    """USD per million tokens; None where there were no such tokens (or no GPU cost)."""

    input_usd_per_mtok: Decimal | None
    output_usd_per_mtok: Decimal | None
    blended_usd_per_mtok: Decimal | None  # the whole cost over all tokens
    rule: str

    def to_json(self) -> dict[str, Any]:
        return {"input_usd_per_mtok": _text(self.input_usd_per_mtok),
                "output_usd_per_mtok": _text(self.output_usd_per_mtok),
                "blended_usd_per_mtok": _text(self.blended_usd_per_mtok), "split": self.rule}


def _per_mtok(cost: Decimal, tokens: int) -> Decimal | None:
    return (cost * MTOK / tokens).quantize(_STEP) if tokens else None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def effective_price(gpu_cost_usd: Decimal, input_tokens: int, output_tokens: int,
                    prefill_s: float | None = None, decode_s: float | None = None) -> EffectivePrice:
    """``gpu_cost_usd`` over the tokens, split by prefill/decode time when both are known."""
    blended = _per_mtok(gpu_cost_usd, input_tokens + output_tokens)
    if prefill_s is not None and decode_s is not None and prefill_s + decode_s > 0:
        share = Decimal(repr(prefill_s)) / (Decimal(repr(prefill_s)) + Decimal(repr(decode_s)))
        cost_in = gpu_cost_usd * share
        return EffectivePrice(_per_mtok(cost_in, input_tokens),
                              _per_mtok(gpu_cost_usd - cost_in, output_tokens), blended, RULE_TIME)
    weighted = input_tokens + OUTPUT_WEIGHT * output_tokens
    if not weighted:
        return EffectivePrice(None, None, None, RULE_TOKENS)
    unit = gpu_cost_usd * MTOK / weighted
    return EffectivePrice(unit.quantize(_STEP) if input_tokens else None,
                          (unit * OUTPUT_WEIGHT).quantize(_STEP) if output_tokens else None,
                          blended, RULE_TOKENS)


def at_busy_share(usd_per_mtok: Decimal | None, observed: float | None,
                  target: float) -> Decimal | None:
    """What a token would cost if the GPU were busy ``target`` of its held time, not ``observed``."""
    if usd_per_mtok is None or not observed or target <= 0:
        return None
    return (usd_per_mtok * Decimal(repr(observed)) / Decimal(repr(target))).quantize(_STEP)


def break_even_busy_share(local_cost: Decimal, api_cost: Decimal,
                          observed: float | None) -> float | None:
    """The busy share at which the local tokens would cost what the API charges (may be > 1:
    the local model cannot match that API even fully busy)."""
    if not observed or not api_cost:
        return None
    return float(Decimal(repr(observed)) * local_cost / api_cost)
