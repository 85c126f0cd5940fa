"""Records: what a window (a cell or a ``track()`` block) cost, and how costs add up.

Records are read-only: once a window closes its record never changes. ``Tally`` is the one
mutable accumulator, owned by the Session under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from .ledger import iso_utc
from .meters.base import Measurement, Usage, WindowInfo
from .quantities import compact_keys

__all__ = ["Budget", "MeterTotals", "Tally", "WindowInfo", "WindowRecord", "compact_meter", "money"]

ZERO = Decimal(0)


def money(value: Decimal | None) -> str | None:
    """A Decimal as the plain decimal string nbcost writes to disk (never float, never 1E-7)."""
    if value is None:
        return None
    return format(value.normalize(), "f") if value else "0"


@dataclass(frozen=True, slots=True)
class MeterTotals:
    """One meter's figures for a window or a session.

    ``cost_usd`` sums the priced parts; ``unpriced`` says some usage had no price, so the true
    cost is higher than ``cost_usd`` by an unknown amount.
    """

    quantities: Mapping[str, float]
    cost_usd: Decimal = ZERO
    unpriced: bool = False
    by_key: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_measurement(cls, m: Measurement) -> MeterTotals:
        return cls(
            quantities=dict(m.quantities),
            cost_usd=m.cost_usd or ZERO,
            unpriced=m.cost_usd is None or m.unpriced,
            by_key={k: dict(v) for k, v in m.breakdown.items()},
            flags=tuple(m.flags),
            detail=dict(m.detail),
        )

    def __repr__(self) -> str:
        """``t.gpu`` / ``t.llm`` at a prompt: the same lines as the cell summary."""
        from .display.summary import meter_text  # display reads records, not the other way

        return meter_text(self)

    def _repr_html_(self) -> str:
        from .display.summary import meter_html

        return meter_html(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "quantities": dict(self.quantities),
            "cost_usd": money(self.cost_usd),
            "unpriced": self.unpriced,
            "by_key": {
                k: {q: (money(v) if isinstance(v, Decimal) else v) for q, v in figures.items()}
                for k, figures in self.by_key.items()
            },
            "flags": list(self.flags),
            "detail": dict(self.detail),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MeterTotals:
        return cls(
            quantities=dict(data.get("quantities") or {}),
            cost_usd=Decimal(data.get("cost_usd") or 0),
            unpriced=bool(data.get("unpriced")),
            by_key={
                k: {q: (Decimal(v) if q == "cost_usd" and v is not None else v) for q, v in f.items()}
                for k, f in (data.get("by_key") or {}).items()
            },
            flags=tuple(data.get("flags") or ()),
            detail=dict(data.get("detail") or {}),
        )


#: What a key's running sums hold besides its quantities.
_PER_KEY_MONEY = frozenset({"cost_usd", "unpriced"})


class Tally:
    """Running sums of one meter's discrete usage (per window and per session): per key (model),
    its quantities and cost; the meter's own totals are summed from them when frozen, so a
    usage (an LLM call, on its caller's thread) is added once per tally, not twice."""

    __slots__ = ("cost_usd", "unpriced", "by_key", "flags")

    def __init__(self) -> None:
        self.cost_usd = ZERO
        self.unpriced = False
        self.by_key: dict[str, dict[str, Any]] = {}
        self.flags: set[str] = set()

    def add(self, usage: Usage) -> None:
        # A key's cost stays None until one of its calls has a price: a model none of whose
        # calls were priced costs "unpriced" (null), never $0.
        per_key = self.by_key.get(usage.key)
        if per_key is None:
            per_key = self.by_key[usage.key] = {"cost_usd": None}
        get = per_key.get
        for name, amount in usage.quantities.items():
            per_key[name] = get(name, 0) + amount
        if usage.cost_usd is None:
            self.unpriced = True
            per_key["unpriced"] = True
        else:
            self.cost_usd += usage.cost_usd
            per_key["cost_usd"] = (per_key["cost_usd"] or ZERO) + usage.cost_usd
        if usage.flags:
            self.flags.update(usage.flags)

    @property
    def quantities(self) -> dict[str, float]:
        """Each quantity summed over the keys."""
        totals: dict[str, float] = {}
        for per_key in self.by_key.values():
            for name, amount in per_key.items():
                if name not in _PER_KEY_MONEY:
                    totals[name] = totals.get(name, 0) + amount
        return totals

    def freeze(self) -> MeterTotals:
        return MeterTotals(
            quantities=self.quantities,
            cost_usd=self.cost_usd,
            unpriced=self.unpriced,
            by_key={k: dict(v) for k, v in self.by_key.items()},
            flags=tuple(sorted(self.flags)),
        )


@dataclass(frozen=True, slots=True)
class Budget:
    """The budget a window ran under: its own (``%%cost --budget``, scope "cell") or the
    session's (``%cost budget``, scope "session")."""

    usd: Decimal
    hard: bool
    scope: str

    def to_json(self) -> dict[str, Any]:
        return {"usd": money(self.usd), "hard": self.hard, "scope": self.scope}


@dataclass(slots=True)
class WindowRecord:
    """What one finished window cost. ``meters`` maps a meter's name to its figures.

    Read-only, like :class:`WindowInfo` (and for the same reason not a frozen dataclass: every
    cell builds one)."""

    info: WindowInfo
    wall_s: float
    status: str
    meters: Mapping[str, MeterTotals]
    session_id: str
    flags: tuple[str, ...] = ()
    budget: Budget | None = None

    @property
    def cost_usd(self) -> Decimal:
        """The priced cost of every meter together (see ``unpriced``)."""
        return sum((m.cost_usd for m in self.meters.values()), ZERO)

    @property
    def unpriced(self) -> bool:
        return any(m.unpriced for m in self.meters.values())

    @property
    def gpu(self) -> MeterTotals | None:
        return self.meters.get("gpu")

    @property
    def llm(self) -> MeterTotals | None:
        return self.meters.get("llm")

    def compact(self) -> dict[str, Any]:
        """The small JSON record a saved notebook carries in ``cell.metadata.nbcost``."""
        return compact_record(self.info, self.wall_s, self.status, self.meters, self.session_id,
                              self.flags, self.budget)


def compact_meter(name: str, totals: MeterTotals) -> dict[str, Any]:
    """A meter's figures in the compact shape: the headline quantities and the cost."""
    keys = compact_keys(name) or tuple(totals.quantities)
    out: dict[str, Any] = {k: _round(totals.quantities[k]) for k in keys if k in totals.quantities}
    out["cost_usd"] = money(totals.cost_usd)
    if totals.unpriced:
        out["unpriced"] = True
    if name == "gpu":
        out.update(_compact_waste(totals))
    if name == "local":  # the effective price, from the GPU cost of the window's generation
        out.update({k: totals.detail[k] for k in _LOCAL_PRICE if totals.detail.get(k) is not None})
    if name == "llm" and totals.by_key:
        out["by_model"] = {
            model: {k: (money(v) if isinstance(v, Decimal) else v) for k, v in figures.items()}
            for model, figures in totals.by_key.items()
        }
    return out


_WASTE_KINDS = ("idle_between", "stall", "underfill")
_LOCAL_PRICE = ("gpu_cost_usd", "input_usd_per_mtok", "output_usd_per_mtok", "split", "scope")


def _compact_waste(gpu: MeterTotals) -> dict[str, Any]:
    """The GPU's named waste in seconds and dollars, their sum, and the busy-time uncertainty.

    ``waste_usd`` is None where a wasting GPU had no rate (the seconds are still there).
    """
    seconds = gpu.detail.get("waste_s") or {}
    dollars = gpu.detail.get("waste_usd") or {}
    waste = {kind: {"s": _round(seconds[kind]), "usd": dollars.get(kind)}
             for kind in _WASTE_KINDS if kind in seconds}
    if not waste:
        return {}
    priced = [Decimal(w["usd"]) for w in waste.values() if w["usd"] is not None]
    complete = len(priced) == len(waste) or not any(w["s"] for w in waste.values()
                                                     if w["usd"] is None)
    out: dict[str, Any] = {"waste": waste,
                           "waste_usd": money(sum(priced, ZERO)) if complete else None}
    if "uncertainty_s" in gpu.detail:
        out["uncertainty_s"] = gpu.detail["uncertainty_s"]
    return out


def compact_record(info: WindowInfo, wall_s: float, status: str,
                   meters: Mapping[str, MeterTotals], session_id: str,
                   flags: tuple[str, ...] = (), budget: Budget | None = None) -> dict[str, Any]:
    """The compact JSON record: what a saved notebook carries and the live views show.

    ``start``/``end`` are ISO 8601 UTC strings, as in the spend log.
    """
    cost = sum((m.cost_usd for m in meters.values()), ZERO)
    out: dict[str, Any] = {
        "v": 1,
        "session_id": session_id,
        "execution_count": info.execution_count,
        "cell_id": info.cell_id,
        "label": info.label,
        "start": iso_utc(info.start),
        "end": None if info.end is None else iso_utc(info.end),
        "wall_s": round(wall_s, 6),
        "cost_usd": money(cost),
        "unpriced": any(m.unpriced for m in meters.values()),
        "status": status,
        "flags": sorted(set(flags).union(*(m.flags for m in meters.values()))),
    }
    if budget is not None:
        out["budget"] = budget.to_json()
    for name, totals in meters.items():
        if totals.quantities or totals.cost_usd or totals.unpriced:  # a meter with no figures
            out[name] = compact_meter(name, totals)                  # (no GPU) only flags
    return out


def _round(value: float) -> float:
    return round(value, 6) if isinstance(value, float) else value
