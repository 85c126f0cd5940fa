"""The figures nbcost reports, read from ``quantities.json``: the one list that the export
columns, the compact record, the summaries, the widget and the lab extension all follow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

__all__ = ["QUANTITIES", "Quantity", "compact_keys", "quantity_keys"]


@dataclass(frozen=True, slots=True)
class Quantity:
    key: str  # the quantity's name in a meter's figures; units in the name
    label: str  # what a person reads
    unit: str
    compact: bool  # part of the compact record a notebook carries


def _load() -> dict[str, tuple[Quantity, ...]]:
    data = json.loads(resources.files(__package__).joinpath("quantities.json").read_text("utf-8"))
    return {meter: tuple(Quantity(**q) for q in items)
            for meter, items in data.items() if not meter.startswith("_")}


#: ``{"gpu": (Quantity, ...), "llm": (...)}`` in their fixed order.
QUANTITIES = _load()


def quantity_keys(meter: str) -> tuple[str, ...]:
    return tuple(q.key for q in QUANTITIES.get(meter, ()))


def compact_keys(meter: str) -> tuple[str, ...]:
    return tuple(q.key for q in QUANTITIES.get(meter, ()) if q.compact)
