"""What-if: the session's recorded LLM usage priced on other models, and pre-flight estimates.

``%cost compare [--models A,B]`` → :func:`compare_report`; ``%cost estimate "text" --model M``
→ :func:`estimate_report`. Both only read token counts and request hashes, never text.
"""

from __future__ import annotations

import html as html_lib
from collections import defaultdict
from decimal import Decimal
from typing import Any, Iterable

from ...display.format import format_usd, plural
from ...display.summary import NO_MATH
from ...pricing.llm import shared_price_book
from ..base import Usage
from .tokens import Estimator

__all__ = ["DEFAULT_COMPARE_MODELS", "compare_report", "estimate_report"]

#: Compared when ``--models`` is not given (plus the models the session used).
DEFAULT_COMPARE_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "o3", "claude-sonnet-4-5",
                          "claude-haiku-4-5", "gemini-2.5-pro", "gemini-2.5-flash",
                          "mistral-large-latest", "mistral-small-latest")
_UNITS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _counts(usage: Usage) -> dict[str, int]:
    q = usage.quantities
    return {unit: int(q.get(unit, 0) or 0) for unit in _UNITS if q.get(unit)} or {"input_tokens": 0}


def _money(value: Decimal | None) -> str:
    return format_usd(value, unpriced=value is None)


def _llm_calls(usages: Iterable[Usage]) -> list[Usage]:
    return [u for u in usages if u.meter == "llm" and not u.quantities.get("errors")]


def compare_report(usages: list[Usage], models: list[str] | None, settings: Any) -> tuple[str, str]:
    """The recorded calls priced on ``models``, cheapest first, with the saving against what
    they cost; and identical repeated requests that a response cache would have saved."""
    calls = _llm_calls(usages)
    if not calls:
        text = "No LLM calls recorded yet in this session: nothing to compare."
        return text, f"<p>{html_lib.escape(text)}</p>"
    book = shared_price_book()
    actual = sum((u.cost_usd for u in calls if u.cost_usd is not None), Decimal(0))
    unpriced_actual = sum(1 for u in calls if u.cost_usd is None)
    targets = list(models) if models else list(dict.fromkeys([*DEFAULT_COMPARE_MODELS,
                                                              *(u.key for u in calls)]))
    rows = []
    for model in targets:
        total: Decimal | None = Decimal(0)
        for usage in calls:
            price = book.price(_counts(usage), [model], None, None, settings)
            if price.cost_usd is None:
                total = None
                break
            total += price.cost_usd
        rows.append((model, total))
    priced = sorted((r for r in rows if r[1] is not None), key=lambda r: r[1])
    unknown = [model for model, total in rows if total is None]

    tokens_in = sum(int(u.quantities.get("input_tokens", 0)) for u in calls)
    tokens_out = sum(int(u.quantities.get("output_tokens", 0)) for u in calls)
    head = (f"{len(calls)} LLM calls, {tokens_in:,} input and {tokens_out:,} output tokens, "
            f"cost {_money(actual)}" + (f" (+{unpriced_actual} unpriced)" if unpriced_actual else ""))
    table = [(model, _money(total), _money(actual - total) if not unpriced_actual else "—")
             for model, total in priced]
    lines = [head, "", f"{'model':<28} {'would cost':>14} {'saving':>14}"]
    lines += [f"{m:<28} {c:>14} {s:>14}" for m, c, s in table]
    if unknown:
        lines.append(f"no price known for: {', '.join(unknown)}")
    repeat_note = _repeats(calls)
    if repeat_note:
        lines += ["", repeat_note]

    cells = "".join(f"<tr><td>{html_lib.escape(m)}</td><td>{c}</td><td>{s}</td></tr>"
                    for m, c, s in table)
    html = (f"<p>{html_lib.escape(head)}</p><table><thead><tr><th>model</th><th>would cost</th>"
            f"<th>saving</th></tr></thead><tbody>{cells}</tbody></table>")
    if unknown:
        html += f"<p>no price known for: {html_lib.escape(', '.join(unknown))}</p>"
    if repeat_note:
        html += f"<p>{html_lib.escape(repeat_note)}</p>"
    return "\n".join(lines), f"<div class='nbcost-compare {NO_MATH}'>{html}</div>"


def _repeats(calls: list[Usage]) -> str:
    """Identical requests (same request hash) after the first: what a cache would have saved."""
    groups: dict[str, list[Usage]] = defaultdict(list)
    for usage in calls:
        digest = usage.attributes.get("request_hash")
        if digest:
            groups[digest].append(usage)
    repeated = [u for group in groups.values() for u in group[1:]]
    if not repeated:
        return ""
    saved = sum((u.cost_usd for u in repeated if u.cost_usd is not None), Decimal(0))
    unpriced = any(u.cost_usd is None for u in repeated)  # what they cost is not known
    distinct = sum(1 for group in groups.values() if len(group) > 1)
    return (f"{plural(len(repeated), 'call')} repeated an earlier identical request ({distinct} distinct); "
            f"a response cache would have saved {format_usd(saved, unpriced)}.")


def estimate_report(text: str, model: str, settings: Any) -> str:
    """Pre-flight: about how many tokens ``text`` is and what sending it to ``model`` costs."""
    estimator = Estimator()
    tokens = estimator.count(text)
    book = shared_price_book()
    price_in = book.price({"input_tokens": tokens, "output_tokens": 0}, [model], None, None, settings)
    per_1k_out = book.price({"input_tokens": 0, "output_tokens": 1000}, [model], None, None, settings)
    line = f"≈ {tokens:,} input tokens ({estimator.method}, an estimate)"
    if price_in.cost_usd is None:
        return (f"{line}; no price known for {model!r} (price it with "
                f"`%cost llm-price {model} --input USD --output USD`).")
    return (f"{line}; as input to {model}: {_money(price_in.cost_usd)}, and each 1,000 output "
            f"tokens add {_money(per_1k_out.cost_usd)} ({price_in.source}).")
