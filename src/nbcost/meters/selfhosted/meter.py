"""``LocalModelMeter``: self-hosted generations joined with the GPU time that made them.

The LLM meter records each self-hosted call (``provider: "self-hosted"``, $0 of API spend) and
hands it here (:meth:`note`); the Session adds this meter on the first such call, so a session
without local models never runs it. For a window it reports the local tokens, generation
time, tokens/s, the GPU's busy share, and what those tokens cost at the measured GPU price: ``gpu_cost_usd`` over them as $/M input and output tokens
(:mod:`.price`). Its own ``cost_usd`` is 0: the GPU dollars are already the GPU meter's (this
process's GPU) or are not this notebook's bill (a server process, flagged ``shared``).

Where the GPU time comes from:

* generation in this process (transformers, vLLM's ``LLM``, a server thread in the kernel):
  the GPU meter's figures for the same span — held time priced at the GPU's rate;
* an OpenAI-compatible server run by another process here: the pid listening on the base
  URL's port (psutil); every GPU that pid has a context on counts as held for the whole
  span (a server keeps its GPU), busy time is the device's, and the figures are flagged
  ``shared``: the server's GPU may serve other clients too;
* a server on another machine: tokens and throughput only, no price (flag ``remote``).

Nothing here runs on the per-cell path: ``measure`` returns at once for a span without local
generation; the process lookup happens at most once a minute per base URL.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable

from ..base import Measurement, Meter, MeterSink, Usage
from .price import EffectivePrice, effective_price
from .server import listening_pid

__all__ = ["LocalCall", "LocalModelMeter"]

_MICRO_USD = Decimal("0.00000001")
_PID_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class LocalCall:
    """One self-hosted generation, as this meter keeps it (no text)."""

    end: float  # time.time() when it completed
    latency_s: float
    model: str
    origin: str | None  # the server's scheme://host:port; None for an in-process engine
    input_tokens: int
    output_tokens: int
    prefill_s: float | None = None
    decode_s: float | None = None

    @property
    def start(self) -> float:
        return self.end - self.latency_s


@dataclass
class _Group:
    """Calls whose GPU time has one source: this process, or one server process."""

    source: str
    calls: list[LocalCall]
    gpu_cost_usd: Decimal | None = None
    busy_s: float | None = None
    basis_s: float | None = None  # held seconds the busy share is of
    flags: tuple[str, ...] = ()
    pid: int | None = None


class LocalModelMeter(Meter):
    """Effective $/Mtok of local generation from measured GPU cost, per window (the session's
    figures are its tokens and throughput: its GPU time also paid for work that made no tokens).

    Args:
        find_pid: ``(base_url) -> pid | None``; tests may pass their own.
        max_calls: how many recent calls are kept (older windows are already logged).
    """

    name = "local"

    def __init__(self, find_pid: Callable[[str], int | None] = listening_pid,
                 max_calls: int = 4096) -> None:
        self._find_pid = find_pid
        self._calls: deque[LocalCall] = deque(maxlen=max_calls)
        self._pids: dict[str, tuple[float, int | None]] = {}
        self._lock = threading.Lock()
        self._sink: MeterSink | None = None

    def start(self, sink: MeterSink) -> None:
        self._sink = sink

    def note(self, usage: Usage) -> None:
        """A self-hosted ``llm_call`` just recorded (any thread)."""
        a, q = usage.attributes, usage.quantities
        origin = a.get("base_url") if a.get("engine") not in ("transformers", "vllm") else None
        call = LocalCall(usage.at.timestamp(), float(a.get("latency_s") or 0.0), usage.key,
                         origin, int(q.get("input_tokens", 0)), int(q.get("output_tokens", 0)),
                         a.get("prefill_s"), a.get("decode_s"))
        with self._lock:
            self._calls.append(call)

    # --- figures ------------------------------------------------------------------------------
    def measure(self, start: float, end: float) -> Measurement | None:
        return self._figures(start, end, session=False)

    def session_measurement(self, start: float, end: float) -> Measurement | None:
        return self._figures(start, end, session=True)

    def _figures(self, start: float, end: float, session: bool) -> Measurement | None:
        with self._lock:
            calls = [c for c in self._calls if start - 1e-6 <= c.end <= end + 1e-6]
        if not calls:
            return None
        if session:  # the session's GPU time includes work that made no tokens (training,
            # idle between cells): its price per token is the windows' (%cost compare --local)
            m = _measurement([_Group("session", calls)], start, end)
            return Measurement(m.quantities, Decimal(0), m.breakdown, (), {"scope": "session"})
        groups = self._groups(calls)
        for group in groups:
            self._price_group(group, start, end)
        return _measurement(groups, start, end)

    def _groups(self, calls: list[LocalCall]) -> list[_Group]:
        by_source: dict[str, _Group] = {}
        for call in calls:
            pid = None if call.origin is None else self._pid(call.origin)
            if call.origin is None or pid == os.getpid():
                source = "this process"
            elif pid is None:
                source = f"remote {call.origin}"
            else:
                source = f"pid {pid}"
            group = by_source.setdefault(source, _Group(source, [], pid=pid))
            group.calls.append(call)
        return list(by_source.values())

    def _pid(self, origin: str) -> int | None:
        now = time.monotonic()
        cached = self._pids.get(origin)
        if cached is None or now - cached[0] > _PID_TTL_S:
            try:
                pid = self._find_pid(origin)
            except Exception:
                pid = None
            cached = self._pids[origin] = (now, pid)
        return cached[1]

    def _gpu_meter(self) -> Any:
        meters = getattr(self._sink, "meters", None)
        return meters.get("gpu") if isinstance(meters, dict) else None

    def _price_group(self, group: _Group, start: float, end: float) -> None:
        gpu = self._gpu_meter()
        if group.source.startswith("remote"):
            group.flags = ("remote",)
            return
        if gpu is None or getattr(gpu, "sampler", None) is None:
            group.flags = ("no_gpu_time",)
            return
        if group.source == "this process":
            m = gpu.measure(start, end)
            held = (m.quantities.get("held_s") or 0.0) if m is not None else 0.0
            if m is None or not held:
                group.flags = ("no_gpu_time",)
                return
            group.gpu_cost_usd = m.cost_usd
            group.busy_s, group.basis_s = m.quantities.get("busy_s"), held
            group.flags = tuple(f for f in m.flags if f in ("partial", "unpriced", "shared"))
            return
        self._price_server(gpu, group, start, end)

    def _price_server(self, gpu: Any, group: _Group, start: float, end: float) -> None:
        """Another process's server: the GPUs its pid holds, held for the whole span."""
        from ...pricing.gpu import gpu_rate
        from ..gpu.backend import GpuError

        settings = getattr(self._sink, "settings", None)
        wall_s = max(end - start, 0.0)
        cost, busy, basis, unpriced, found = Decimal(0), 0.0, 0.0, False, False
        for s in gpu.sampler.series:
            try:
                pids = {pid for pid, _ in gpu.sampler.backend.compute_processes(s.device.handle)}
            except GpuError:
                continue
            if group.pid not in pids:
                continue
            found = True
            quote = gpu_rate(s.device.name, settings)
            fraction = s.device.mig_fraction
            if quote.usd_per_hour is None or fraction is None:
                unpriced = True
            else:
                hours = Decimal(repr(round(wall_s, 6))) / 3600
                cost += (hours * quote.usd_per_hour * Decimal(repr(fraction))).quantize(_MICRO_USD)
            basis += wall_s
            if s.has_util:
                busy += min(_device_busy(gpu.sampler.backend, s, start, end), wall_s)
        if not found:
            group.flags = ("shared", "no_gpu_time")
            return
        group.gpu_cost_usd = None if unpriced and not cost else cost
        group.busy_s, group.basis_s = busy, basis
        group.flags = ("shared", "unpriced") if unpriced else ("shared",)


def _device_busy(backend: Any, s: Any, start: float, end: float) -> float:
    """The device's busy seconds in the span. The sampler reads utilization rarely while this
    process holds no GPU, so the span's unread end is read from NVML's buffer now (once, at
    the window's end, and only for a window in which a server on this machine generated)."""
    from ..gpu.backend import GpuError

    known = s.busy_known_until
    busy = s.busy_between(start, min(end, known)) if known is not None and known > start else 0.0
    since = max(start, known or start)
    try:
        samples = backend.utilization_samples(s.device.handle, int(since * 1e6))
    except GpuError:  # nothing newer (or no buffer): what the sampler read is what there is
        return busy
    period = s.sample_period_s
    for stamp_us, percent in samples:
        t = stamp_us / 1e6  # each sample is the busy share of the period before it
        busy += percent / 100 * max(0.0, min(t, end) - max(t - period, since))
    return busy


# --- the window's figures -----------------------------------------------------------------------

def _busy_union(calls: Iterable[LocalCall], start: float, end: float) -> float:
    """Seconds in which at least one generation ran (concurrent calls count once)."""
    total, reach = 0.0, start
    for a, b in sorted((max(c.start, start), min(c.end, end)) for c in calls):
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total


def _sum_optional(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


def _measurement(groups: list[_Group], start: float, end: float) -> Measurement:
    calls = [c for g in groups for c in g.calls]
    inp = sum(c.input_tokens for c in calls)
    out = sum(c.output_tokens for c in calls)
    generate_s = _busy_union(calls, start, end)
    quantities: dict[str, float] = {"calls": len(calls), "input_tokens": inp,
                                    "output_tokens": out, "generate_s": round(generate_s, 6)}
    if generate_s > 0:
        quantities["output_tokens_per_s"] = round(out / generate_s, 3)
    busy = [g.busy_s for g in groups if g.basis_s]
    basis = sum(g.basis_s or 0.0 for g in groups if g.basis_s)
    busy_share = None
    if busy and all(b is not None for b in busy) and basis:
        busy_share = min(sum(busy) / basis, 1.0)  # type: ignore[arg-type]
        quantities["gpu_busy_share"] = round(busy_share, 6)
        # The parts of the share, so that windows add up (a session's share is Σbusy / Σheld).
        quantities["gpu_busy_s"] = round(sum(busy), 6)  # type: ignore[arg-type]
        quantities["gpu_held_s"] = round(basis, 6)
    priced = [g for g in groups if g.gpu_cost_usd is not None]
    gpu_cost = sum((g.gpu_cost_usd for g in priced), Decimal(0)) if priced else None  # type: ignore[misc]

    breakdown: dict[str, dict[str, Any]] = {}
    for group in groups:
        by_model: dict[str, list[LocalCall]] = {}
        for call in group.calls:
            by_model.setdefault(call.model, []).append(call)
        seconds = {m: sum(c.latency_s for c in cs) for m, cs in by_model.items()}
        total_s = sum(seconds.values())
        for model, model_calls in by_model.items():
            row = breakdown.setdefault(model, {"calls": 0, "input_tokens": 0, "output_tokens": 0,
                                               "generate_s": 0.0, "gpu_cost_usd": None})
            row["calls"] += len(model_calls)
            row["input_tokens"] += sum(c.input_tokens for c in model_calls)
            row["output_tokens"] += sum(c.output_tokens for c in model_calls)
            row["generate_s"] = round(row["generate_s"] + seconds[model], 6)
            row["source"] = group.source
            if group.gpu_cost_usd is not None:  # the group's GPU cost by generation time
                share = (Decimal(repr(seconds[model])) / Decimal(repr(total_s)) if total_s
                         else Decimal(1) / len(by_model))
                row["gpu_cost_usd"] = (row["gpu_cost_usd"] or Decimal(0)) + (
                    group.gpu_cost_usd * share).quantize(_MICRO_USD)
            row["prefill_s"] = _sum_optional([c.prefill_s for c in model_calls])
            row["decode_s"] = _sum_optional([c.decode_s for c in model_calls])
    for row in breakdown.values():
        if row["gpu_cost_usd"] is not None:
            price = effective_price(row["gpu_cost_usd"], row["input_tokens"], row["output_tokens"],
                                    row["prefill_s"], row["decode_s"])
            row.update(_price_fields(price))
    flags = sorted({f for g in groups for f in g.flags})
    detail: dict[str, Any] = {
        "gpu_cost_usd": None if gpu_cost is None else str(gpu_cost),
        "gpu_busy_share": None if busy_share is None else round(busy_share, 6),
        "sources": {g.source: {"pid": g.pid, "flags": list(g.flags)} for g in groups},
    }
    if gpu_cost is not None:
        prefill = _sum_optional([c.prefill_s for c in calls])
        decode = _sum_optional([c.decode_s for c in calls])
        detail.update(effective_price(gpu_cost, inp, out, prefill, decode).to_json())
    # Cost 0: the GPU dollars are the GPU meter's (or a shared server's), never counted twice.
    return Measurement(quantities, Decimal(0), breakdown, tuple(flags), detail)


def _price_fields(price: EffectivePrice) -> dict[str, Any]:
    return {"usd_per_mtok_input": price.input_usd_per_mtok,
            "usd_per_mtok_output": price.output_usd_per_mtok, "split": price.rule}
