"""On-demand GPU rates (USD per GPU-hour) and how a device name finds its rate.

The built-in figures are third-party readings of public price pages (see
``docs/gpu.md``); each carries its source and the date it was read. They are defaults to
override, not quotes: ``%cost gpu-rate 2.10`` (every GPU of the session),
``Settings.gpu_rates = {"H100": Decimal("2.10")}`` or ``NBCOST_GPU_RATES="H100=2.1"``.
A GPU the table does not know stays *unpriced*: its seconds are shown, no price is invented.

Matching works on words of NVML's name, so ``"NVIDIA A100-SXM4-80GB"`` finds ``A100 80GB``
while ``"NVIDIA GH200 480GB"`` does not find ``H200`` and ``"NVIDIA A10"`` does not find
``A10G``. The entry naming the most words wins (``H100 PCIe`` over ``H100``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

__all__ = ["GPU_RATES", "GpuRate", "RateQuote", "gpu_rate", "name_words"]


@dataclass(frozen=True, slots=True)
class GpuRate:
    """One row of the built-in table."""

    model: str  # words that must all appear in the device name: "A100 80GB"
    usd_per_hour: Decimal
    source: str
    as_of: str  # when the source was read (ISO date, or a year where the page gave none)


@dataclass(frozen=True, slots=True)
class RateQuote:
    """The rate a device is priced at; ``usd_per_hour`` None means unpriced."""

    usd_per_hour: Decimal | None
    source: str
    as_of: str | None = None
    model: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "usd_per_hour": None if self.usd_per_hour is None else str(self.usd_per_hour),
            "source": self.source,
            "as_of": self.as_of,
            "model": self.model,
        }


_RUNPOD_DB = "RunPod on-demand, via deploybase.ai"
_SPHERON = "RunPod Secure Cloud on-demand, via spheron.network"

GPU_RATES: tuple[GpuRate, ...] = (
    GpuRate("B200", Decimal("5.98"), _RUNPOD_DB, "2026-03"),
    GpuRate("H200", Decimal("3.59"), _RUNPOD_DB, "2026-03"),
    GpuRate("H100", Decimal("2.69"), _SPHERON + " (SXM)", "2026-05"),
    GpuRate("H100 PCIE", Decimal("2.79"), _SPHERON + " (PCIe)", "2026-05"),
    GpuRate("A100 80GB", Decimal("1.39"), _RUNPOD_DB + " (SXM)", "2026"),
    GpuRate("A100 40GB", Decimal("1.48"), "Lambda on-demand", "2026"),
    GpuRate("L40S", Decimal("1.862"), "AWS g6e.xlarge on-demand (1 GPU instance)", "2026"),
    GpuRate("L4", Decimal("0.805"), "AWS g6.xlarge on-demand (1 GPU instance)", "2026"),
    GpuRate("A10G", Decimal("1.006"), "AWS g5.xlarge on-demand (1 GPU instance)", "2026"),
    GpuRate("T4", Decimal("0.526"), "AWS g4dn.xlarge on-demand (1 GPU instance)", "2026"),
    GpuRate("V100", Decimal("3.06"), "AWS p3.2xlarge on-demand (1 GPU instance)", "2026"),
)

_VENDOR_WORDS = {"NVIDIA", "TESLA", "GEFORCE", "QUADRO"}


def name_words(name: str) -> frozenset[str]:
    """The upper-case words of a GPU name, vendor words dropped, ``80G`` read as ``80GB``."""
    words = set()
    for word in re.split(r"[\s\-_/()]+", name.upper()):
        if not word or word in _VENDOR_WORDS:
            continue
        words.add(re.sub(r"^(\d+)G$", r"\1GB", word))
    return frozenset(words)


def _best(name: str, candidates: list[tuple[str, Any]]) -> tuple[str, Any] | None:
    """The candidate whose words all appear in ``name``, the one with most words first."""
    words = name_words(name)
    wanted = name.strip().upper()
    exact = [(key, value) for key, value in candidates if key.strip().upper() == wanted]
    if exact:
        return exact[0]
    matches = [(len(name_words(key)), key, value) for key, value in candidates if name_words(key)]
    matches = [m for m in matches if name_words(m[1]) <= words]
    if not matches:
        return None
    _, key, value = max(matches, key=lambda m: m[0])
    return key, value


def gpu_rate(device_name: str, settings: Any = None) -> RateQuote:
    """The hourly rate of one GPU named as NVML names it, honouring the session's settings."""
    session_rate = getattr(settings, "gpu_rate_usd_per_hour", None)
    if session_rate is not None:
        return RateQuote(Decimal(session_rate), "session rate (%cost gpu-rate / NBCOST_GPU_RATE)")
    overrides: Mapping[str, Any] = getattr(settings, "gpu_rates", None) or {}
    found = _best(device_name, list(overrides.items()))
    if found is not None:
        key, rate = found
        return RateQuote(Decimal(rate), f"your rate for {key!r} (gpu_rates)", model=key)
    found = _best(device_name, [(r.model, r) for r in GPU_RATES])
    if found is not None:
        row: GpuRate = found[1]
        return RateQuote(row.usd_per_hour, row.source, row.as_of, row.model)
    return RateQuote(
        None,
        f"no rate known for {device_name!r}; set one with `%cost gpu-rate USD` or gpu_rates",
    )
