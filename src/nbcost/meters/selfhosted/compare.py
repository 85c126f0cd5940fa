"""Local models against API prices, from spend-log events (``%cost compare --local``, reports).

Two directions, both from counts only (never text):

* the session's **self-hosted** generations: their measured price per million tokens (the GPU
  cost of the windows they ran in, :mod:`.price`), at the observed GPU busy share and at
  ``TARGET_BUSY``, beside what the same tokens cost on API models (genai-prices), and the busy
  share at which the local model would cost what each API charges;
* the session's **API** calls: what their tokens would cost at the measured local price.

Windows are summed once: a ``track()`` block inside a cell is part of the cell (it counts on its
own only when the cell is not among the events, as when a filter kept the block alone).
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from ...display.format import format_count, format_per_mtok, format_usd
from ...display.summary import NO_MATH
from ...pricing.llm import shared_price_book
from .price import EffectivePrice, at_busy_share, break_even_busy_share, effective_price

__all__ = [
    "DEFAULT_API_MODELS",
    "TARGET_BUSY",
    "LocalSummary",
    "api_cost",
    "cheapest_api",
    "local_compare_report",
    "local_summary",
    "summary_compare_report",
    "tagged_events",
]

#: The utilisation a well-fed inference server reaches; the price is also shown there.
TARGET_BUSY = 0.8
#: API models compared when none are named: small and large models of the main providers.
DEFAULT_API_MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "claude-haiku-4-5",
                      "gemini-2.5-flash", "mistral-small-latest")
_WINDOW_ENDS = ("cell_end", "track_end")


@dataclass
class LocalModel:
    """One self-hosted model's tokens and the GPU cost of the windows it generated in."""

    name: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    gpu_cost_usd: Decimal | None = None
    prefill_s: float | None = 0.0
    decode_s: float | None = 0.0
    shared: bool = False

    def price(self) -> EffectivePrice | None:
        if self.gpu_cost_usd is None:
            return None
        return effective_price(self.gpu_cost_usd, self.input_tokens, self.output_tokens,
                               self.prefill_s, self.decode_s)


@dataclass
class LocalSummary:
    """What a spend log says about local generation and API calls."""

    models: dict[str, LocalModel] = field(default_factory=dict)
    busy_s: float = 0.0
    held_s: float = 0.0
    api_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def busy_share(self) -> float | None:
        return self.busy_s / self.held_s if self.held_s else None


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def local_summary(events: Iterable[dict[str, Any]],
                  models: Iterable[str] | None = None) -> LocalSummary:
    """The self-hosted models (from window ends' ``meters.local``) and the API calls
    (``llm_call`` events of other providers) of a spend log; ``models``: only these (a
    report's ``--model``), on either side."""
    wanted = set(models or ())
    events = list(events)
    # A nested window (a track() block) is part of its parent's figures: it counts only where
    # its parent is not among the events (a filter kept the block but not its cell).
    windows = {e["window_id"] for e in events
               if e.get("event") in _WINDOW_ENDS and e.get("window_id")}
    summary = LocalSummary()
    for event in events:
        kind = event.get("event")
        if kind == "llm_call":
            attributes = event.get("attributes") or {}
            quantities = event.get("quantities") or {}
            if (attributes.get("provider") != "self-hosted" and not quantities.get("errors")
                    and (not wanted or event.get("key") in wanted)):
                summary.api_calls.append(event)
            continue
        if kind not in _WINDOW_ENDS or event.get("parent_id") in windows:
            continue
        local = (event.get("meters") or {}).get("local")
        if not local:
            continue
        rows = {name: row for name, row in (local.get("by_key") or {}).items()
                if not wanted or name in wanted}
        if not rows:  # only other models generated in this window
            continue
        q = local.get("quantities") or {}
        if q.get("gpu_held_s"):
            summary.busy_s += float(q.get("gpu_busy_s") or 0.0)
            summary.held_s += float(q["gpu_held_s"])
        shared = "shared" in (local.get("flags") or ())
        for name, row in rows.items():
            model = summary.models.setdefault(name, LocalModel(name))
            model.calls += int(row.get("calls") or 0)
            model.input_tokens += int(row.get("input_tokens") or 0)
            model.output_tokens += int(row.get("output_tokens") or 0)
            model.shared = model.shared or shared
            cost = _dec(row.get("gpu_cost_usd"))
            if cost is not None:
                model.gpu_cost_usd = (model.gpu_cost_usd or Decimal(0)) + cost
            for timing in ("prefill_s", "decode_s"):
                value = row.get(timing)
                current = getattr(model, timing)
                setattr(model, timing, None if value is None or current is None
                        else current + float(value))
    return summary


def tagged_events(events: Iterable[dict[str, Any]], tags: dict[str, str]) -> list[dict[str, Any]]:
    """The window ends carrying every one of ``tags`` and the LLM calls made in those windows
    (``%cost compare --local --tag``)."""
    events = list(events)
    kept = {e["window_id"] for e in events
            if e.get("event") in _WINDOW_ENDS and e.get("window_id")
            and all((e.get("tags") or {}).get(key) == value for key, value in tags.items())}
    return [e for e in events
            if (e.get("event") in _WINDOW_ENDS and e.get("window_id") in kept)
            or (e.get("event") == "llm_call" and kept.intersection(e.get("window_ids") or ()))]


def api_cost(model: str, input_tokens: int, output_tokens: int, settings: Any) -> Decimal | None:
    counts = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return shared_price_book().price(counts, [model], None, None, settings).cost_usd


def _per_mtok(model: str, settings: Any) -> tuple[Decimal | None, Decimal | None]:
    return (api_cost(model, 1_000_000, 0, settings), api_cost(model, 0, 1_000_000, settings))


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f} %"


NOTHING_LOCAL = ("No self-hosted generation recorded in this session (transformers generate(), "
                 "vLLM, or a local OpenAI-compatible server): nothing to compare.")


def local_compare_report(events: Iterable[dict[str, Any]], api_models: list[str] | None,
                         local_model: str | None, settings: Any,
                         nothing: str = NOTHING_LOCAL) -> tuple[str, str]:
    """The text and HTML of ``%cost compare --local``; ``nothing``: what to say when no
    self-hosted generation is among ``events``."""
    return summary_compare_report(local_summary(events), api_models, local_model, settings,
                                  nothing)


def summary_compare_report(summary: LocalSummary, api_models: list[str] | None,
                           local_model: str | None, settings: Any,
                           nothing: str = NOTHING_LOCAL) -> tuple[str, str]:
    """:func:`local_compare_report` of a summary already made (``nbcost report --local``)."""
    if not summary.models:
        return nothing, f"<p>{html_lib.escape(nothing)}</p>"
    targets = list(api_models or DEFAULT_API_MODELS)
    busy = summary.busy_share
    lines: list[str] = []
    for model in sorted(summary.models.values(), key=lambda m: -m.output_tokens):
        lines += _local_model_lines(model, busy, targets, settings)
    lines += _api_call_lines(summary, local_model, settings)
    text = "\n".join(lines)
    html = "".join(f"<p>{html_lib.escape(line)}</p>" if not line.startswith("  ")
                   else f"<pre>{html_lib.escape(line)}</pre>" for line in lines if line)
    return text, f"<div class='nbcost-compare {NO_MATH}'>{html}</div>"


def _local_model_lines(model: LocalModel, busy: float | None, targets: list[str],
                       settings: Any) -> list[str]:
    head = (f"{model.name} (self-hosted{', shared server' if model.shared else ''}): "
            f"{format_count(model.calls)} generation{'s' * (model.calls != 1)}, "
            f"{format_count(model.input_tokens)} input and {format_count(model.output_tokens)} "
            "output tokens")
    price = model.price()
    if price is None:
        return [head, "  no GPU cost was measured for it (CPU, no NVML, or a server on another "
                "machine): its price per token is unknown.", ""]
    lines = [head, f"  GPU cost {format_usd(model.gpu_cost_usd)} at {_percent(busy)} GPU busy: "
             f"{_mtok(price.output_usd_per_mtok)} out, {_mtok(price.input_usd_per_mtok)} in "
             f"(split by {price.rule})"]
    later = at_busy_share(price.output_usd_per_mtok, busy, TARGET_BUSY)
    rows = []
    for target in targets:
        api = api_cost(target, model.input_tokens, model.output_tokens, settings)
        if api is None:
            rows.append(f"  {target:<22} {'no price known':>14}")
            continue
        _, out_mtok = _per_mtok(target, settings)
        even = break_even_busy_share(model.gpu_cost_usd, api, busy)
        verdict = ("local is cheaper" if model.gpu_cost_usd < api else "the API is cheaper")
        even_text = ("—" if even is None else _percent(even) if even <= 1
                     else "never (over 100 %)")
        rows.append(f"  {target:<22} {format_usd(api):>14} {_mtok(out_mtok):>14} "
                    f"{verdict:<20} {even_text}")
    lines.append(f"  {'same tokens on':<22} {'would cost':>14} {'out price':>14} "
                 f"{'at this utilisation':<20} break-even GPU busy")
    lines += rows
    cheapest = cheapest_api(targets, settings)
    if cheapest is not None and price.output_usd_per_mtok is not None:
        sentence = (f"At {_percent(busy)} GPU busy {model.name} costs "
                    f"{_mtok(price.output_usd_per_mtok)} out")
        if later is not None and busy is not None and busy < TARGET_BUSY:
            sentence += f"; at {_percent(TARGET_BUSY)} it would be {_mtok(later)}"
        sentence += f"; {cheapest[0]} is {_mtok(cheapest[1])}."
        lines.append(sentence)
    lines.append("")
    return lines


def cheapest_api(targets: list[str], settings: Any) -> tuple[str, Decimal] | None:
    prices = [(t, _per_mtok(t, settings)[1]) for t in targets]
    priced = [(t, p) for t, p in prices if p is not None]
    return min(priced, key=lambda tp: tp[1]) if priced else None


def _api_call_lines(summary: LocalSummary, local_model: str | None, settings: Any) -> list[str]:
    calls = summary.api_calls
    if not calls:
        return []
    measured = [m for m in summary.models.values() if m.price() is not None]
    if local_model is not None:
        measured = [m for m in measured if m.name == local_model]
        if not measured:
            return [f"No measured local price for {local_model!r}: name one of "
                    f"{', '.join(sorted(summary.models)) or 'none'}."]
    if not measured:
        return []
    model = max(measured, key=lambda m: m.output_tokens)
    price = model.price()
    assert price is not None
    inp = sum(int((c.get("quantities") or {}).get("input_tokens") or 0) for c in calls)
    out = sum(int((c.get("quantities") or {}).get("output_tokens") or 0) for c in calls)
    actual = sum((Decimal(c["cost_usd"]) for c in calls if c.get("cost_usd") is not None),
                 Decimal(0))
    local = ((price.input_usd_per_mtok or Decimal(0)) * inp
             + (price.output_usd_per_mtok or Decimal(0)) * out) / 1_000_000
    verdict = "cheaper" if local < actual else "dearer"
    return [f"The session's {len(calls)} API call{'s' * (len(calls) != 1)} ({format_count(inp)} "
            f"input, {format_count(out)} output tokens) cost {format_usd(actual)}; at "
            f"{model.name}'s measured price they would cost {format_usd(local)} ({verdict}, "
            f"at {_percent(summary.busy_share)} GPU busy)."]


_mtok = format_per_mtok
