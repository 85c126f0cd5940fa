"""Turning the sampler's series into a window's figures, cost and waste. Reads memory only.

Per GPU over ``[start, end]``:

* ``held_s``: seconds this process had a context (the billing basis, × the hourly rate);
* ``busy_s``: seconds some kernel ran (utilization buffer, device-wide);
* ``sm_s``: SM-weighted seconds (GPM SM utilization), "full-GPU-equivalent seconds";
* ``energy_j``, ``power_avg_w``: from the energy counter;
* ``mem_peak_bytes``: this process's peak memory on the device;
* waste: ``stall_s`` = held − busy (the GPU waited on the host), ``underfill_s`` = busy − SM
  (kernels too small for the GPU), and, per session, ``idle_between_s`` (held while neither a
  cell nor a kernel ran).

A figure NVML cannot give (no GPM, MIG, no energy counter) is left out, never reported as 0,
and the reason is a flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from ...pricing.gpu import RateQuote, gpu_rate
from ..base import Measurement
from .series import MAX_EXTRAPOLATION_S, DeviceSeries

__all__ = ["DeviceFigures", "device_figures", "measurement"]

#: NVML's energy counter updates about every 100 ms: the error of an edge.
ENERGY_PERIOD_S = 0.1
_MICRO_USD = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class DeviceFigures:
    """One GPU's figures over one span; None where NVML could not give the figure."""

    key: str
    name: str
    held_s: float
    busy_s: float | None
    sm_s: float | None
    energy_j: float | None
    mem_peak_bytes: float | None
    uncertainty_s: float  # of busy_s (and sm_s): one sample period per edge, plus unread tail
    energy_uncertainty_j: float
    flags: tuple[str, ...]
    stall_s: float | None = None  # held − busy: the GPU waited on the host
    underfill_s: float | None = None  # busy − SM-weighted: kernels too small for the GPU
    idle_between_s: float | None = None  # session figures only: held while no cell ran


def device_figures(s: DeviceSeries, start: float, end: float) -> DeviceFigures:
    d = s.device
    wall_s = max(end - start, 0.0)
    flags = []
    if d.mig:
        flags.append("mig")
    if s.errors.overlaps(start, end) or s.lost:
        flags.append("partial")
    if s.shared.overlaps(start, end):
        flags.append("shared")
    if s.device_wide.overlaps(start, end):
        flags.append("device_wide")
    if s.unattributed.overlaps(start, end):
        flags.append("unattributed")
    busy = uncertainty = None
    if s.has_util:
        busy = min(s.busy_between(start, end), wall_s)
        tail = _unread_tail(s.busy_known_until, start, end)
        uncertainty = min(2 * s.sample_period_s + tail, wall_s)
    elif not d.mig:
        flags.append("no_util")
    sm = None
    if s.has_sm:
        sm = s.sm.between(start, end) + _extrapolated(s.sm.last_rate, s.sm.last_time, start, end)
        sm = min(sm, wall_s)
    if not s.has_sm and not d.mig:
        flags.append("no_sm")
    energy = None
    energy_uncertainty = 0.0
    if s.has_energy:
        energy = s.energy.between(start, end)
        energy += _extrapolated(s.energy.last_rate, s.energy.last_time, start, end)
        power = energy / wall_s if wall_s else 0.0
        unread_s = _unread_tail(s.energy.last_time, start, end)
        energy_uncertainty = power * (2 * ENERGY_PERIOD_S + unread_s)
    elif not d.mig:
        flags.append("no_energy")
    held = s.held.between(start, end)
    if s.held_now and not s.lost:  # a state holds until the next poll says otherwise
        held += _extrapolated(1.0, s.held.last_time, start, end)
    held = min(held, wall_s)
    return DeviceFigures(
        key=d.key,
        name=d.name,
        held_s=held,
        busy_s=busy,
        sm_s=sm,
        energy_j=energy,
        mem_peak_bytes=s.memory.peak_between(start, end),
        uncertainty_s=uncertainty or 0.0,
        energy_uncertainty_j=energy_uncertainty,
        flags=tuple(flags),
        stall_s=None if busy is None else max(held - busy, 0.0),
        underfill_s=None if busy is None or sm is None else max(busy - sm, 0.0),
    )


def _unread_tail(last_time: float | None, start: float, end: float) -> float:
    """The end of the span the sampler has not read yet (samples arrive after their period)."""
    if last_time is None:
        return end - start
    return max(end - max(last_time, start), 0.0)


def _extrapolated(rate: float, last_time: float | None, start: float, end: float) -> float:
    """The unread end of a span at the newest reading's rate (reads lag; edges are rate-limited).

    Only up to ``MAX_EXTRAPOLATION_S``: beyond that the sampler is not keeping up and the
    figure is left short rather than guessed.
    """
    tail = _unread_tail(last_time, start, end)
    if last_time is None or tail > MAX_EXTRAPOLATION_S:
        return 0.0
    return rate * tail


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _usd(seconds: float, quote: RateQuote, fraction: float | None) -> Decimal | None:
    if quote.usd_per_hour is None or fraction is None:
        return None
    hours = Decimal(repr(round(seconds, 6))) / 3600
    return (hours * quote.usd_per_hour * Decimal(repr(fraction))).quantize(_MICRO_USD)


def _processes(held: list[tuple[DeviceSeries, DeviceFigures]], start: float,
               end: float) -> dict[str, dict[str, Any]]:
    """Per process of ours that held a GPU in the span (when a child did: the kernel's child
    processes count to the window), its role, GPUs and peak memory."""
    out: dict[str, dict[str, Any]] = {}
    for s, f in held:
        for pid, (role, _, _, peak) in s.pids_between(start, end).items():
            entry = out.setdefault(str(pid), {"role": role, "gpus": [], "mem_peak_bytes": 0})
            entry["gpus"].append(f.key)
            entry["mem_peak_bytes"] = max(entry["mem_peak_bytes"], peak)
    if all(e["role"] == "kernel" for e in out.values()):
        return {}  # the kernel alone: nothing to break down
    return out


def measurement(
    figures: list[tuple[DeviceSeries, DeviceFigures]], start: float, end: float, settings: Any
) -> Measurement:
    """Sum the held GPUs' figures, price them at ``settings``' rates and name the waste."""
    held = [(s, f) for s, f in figures if f.held_s > 0]
    flags = sorted({flag for _, f in figures for flag in f.flags if flag == "unattributed"}
                   | {flag for _, f in held for flag in f.flags})
    wall_s = max(end - start, 0.0)
    quantities: dict[str, float] = {"held_s": sum(f.held_s for _, f in held), "gpus": len(held)}
    optional = {
        "busy_s": _sum(f.busy_s for _, f in held),
        "sm_s": _sum(f.sm_s for _, f in held),
        "energy_j": _sum(f.energy_j for _, f in held),
        "mem_peak_bytes": _sum(f.mem_peak_bytes for _, f in held),
        "stall_s": _sum(f.stall_s for _, f in held),
        "underfill_s": _sum(f.underfill_s for _, f in held),
        "idle_between_s": _sum(f.idle_between_s for _, f in held),
    }
    if optional["energy_j"] is not None and wall_s > 0:
        optional["power_avg_w"] = optional["energy_j"] / wall_s
    quantities.update({k: v for k, v in optional.items() if v is not None})
    if held and any(f.idle_between_s is not None for _, f in figures):
        quantities.setdefault("idle_between_s", 0.0)

    # Priced GPUs keep their cost beside one without a rate (as the LLM meter keeps priced
    # calls beside an unpriced model): the total is the priced part, ``unpriced`` marks the rest.
    cost = Decimal(0)
    priced_any = unpriced = False
    waste: dict[str, Decimal | None] = {"idle_between": None, "stall": None, "underfill": None}
    waste_unpriced: set[str] = set()
    rates: dict[str, Any] = {}
    breakdown: dict[str, dict[str, Any]] = {}
    for s, f in held:
        quote = gpu_rate(f.name, settings)
        fraction = s.device.mig_fraction
        rates[f.key] = {**quote.as_json(), "fraction": fraction}
        device_cost = _usd(f.held_s, quote, fraction)
        row: dict[str, Any] = {"held_s": f.held_s, "cost_usd": device_cost}
        for name in ("busy_s", "sm_s", "energy_j", "mem_peak_bytes", "stall_s", "underfill_s",
                     "idle_between_s"):
            if getattr(f, name) is not None:
                row[name] = getattr(f, name)
        breakdown[f.key] = row
        wastes = (("idle_between", f.idle_between_s), ("stall", f.stall_s),
                  ("underfill", f.underfill_s))
        if device_cost is None:  # this GPU's share is unknown, never $0
            row["unpriced"] = unpriced = True
            waste_unpriced.update(kind for kind, seconds in wastes if seconds)
            continue
        priced_any = True
        cost += device_cost
        for kind, seconds in wastes:
            if seconds is not None:
                waste[kind] = (waste[kind] or Decimal(0)) + (_usd(seconds, quote, fraction)
                                                             if seconds else Decimal(0))
    if unpriced:
        flags.append("unpriced")
    for kind in waste:  # waste no GPU could price stays unknown; none at all is $0
        if waste[kind] is None and kind not in waste_unpriced:
            waste[kind] = Decimal(0)
    period = max((s.sample_period_s for s, _ in held), default=None)
    detail = {
        "uncertainty_s": round(sum(f.uncertainty_s for _, f in held), 6),
        "energy_uncertainty_j": round(sum(f.energy_uncertainty_j for _, f in held), 3),
        "sample_period_s": None if period is None else round(period, 6),
        "devices": [f.name for _, f in held],
        "rates": rates,
        "waste_usd": {k: None if v is None else str(v) for k, v in waste.items()},
        "waste_unpriced": sorted(waste_unpriced),  # kinds whose dollars leave out a GPU
        "waste_s": {k: round(v, 6) for k, v in (("idle_between", optional["idle_between_s"]),
                                      ("stall", optional["stall_s"]),
                                      ("underfill", optional["underfill_s"])) if v is not None},
    }
    processes = _processes(held, start, end)
    if processes:
        detail["processes"] = processes
    total = cost if priced_any or not unpriced else None  # no GPU priced: unpriced, never $0
    return Measurement(quantities, total, breakdown, tuple(flags), detail, unpriced=unpriced)
