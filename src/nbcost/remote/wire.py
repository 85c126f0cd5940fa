"""One piece of usage as plain JSON, the way it travels from a child process or a worker back
to the kernel: the spend log's ``llm_call`` fields (money as a decimal string, time as ISO UTC)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from ..ledger import iso_utc
from ..logcheck import money_or_none, parse_ts
from ..meters.base import Usage
from ..records import money

__all__ = ["usage_fields", "usage_from_fields"]


def usage_fields(usage: Usage) -> dict[str, Any]:
    """The fields of ``usage`` as a spend-log event carries them."""
    return {
        "meter": usage.meter,
        "event": usage.event,
        "key": usage.key,
        "quantities": dict(usage.quantities),
        "cost_usd": money(usage.cost_usd),
        "attributes": dict(usage.attributes),
        "flags": list(usage.flags),
        "at": iso_utc(usage.at),
    }


def usage_from_fields(fields: Mapping[str, Any]) -> Usage:
    """The inverse of :func:`usage_fields` (also reads a child log's ``llm_call`` line, whose
    time is its ``ts``). ``ValueError`` for fields that break the spend log's rules."""
    quantities = fields.get("quantities")
    if not isinstance(quantities, Mapping) or not isinstance(fields.get("meter"), str):
        raise ValueError("usage without its meter or quantities")
    at = parse_ts(fields.get("at") or fields.get("ts"))
    cost: Decimal | None = money_or_none(fields.get("cost_usd"))
    return Usage(
        meter=fields["meter"], event=str(fields.get("event") or f"{fields['meter']}_call"),
        key=str(fields.get("key") or "unknown"),
        quantities={str(k): v for k, v in quantities.items()},
        cost_usd=cost,
        attributes=dict(fields.get("attributes") or {}),
        flags=tuple(fields.get("flags") or ()),
        **({"at": at} if at is not None else {}),
    )
