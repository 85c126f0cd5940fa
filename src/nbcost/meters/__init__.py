"""Meters measure spend; the Session adds it up. See :mod:`nbcost.meters.base` for the contract."""

from __future__ import annotations

import importlib
import sys

from .base import Measurement, Meter, MeterSink, Usage

__all__ = ["Measurement", "Meter", "MeterSink", "Usage", "default_meters"]

# (module, class) of the meters every session starts with, imported lazily so that a missing
# optional dependency (no NVML, no SDKs) costs nothing and breaks nothing.
DEFAULT_METERS = (("nbcost.meters.gpu", "GpuMeter"), ("nbcost.meters.llm", "LlmMeter"))


def default_meters() -> list[Meter]:
    meters = []
    for module_name, class_name in DEFAULT_METERS:
        try:
            meter_class = getattr(importlib.import_module(module_name), class_name)
            meters.append(meter_class())
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # the meter exists but something it needs is broken
                print(f"nbcost: the {class_name} is off ({exc}).", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - a broken meter must not stop the session
            print(f"nbcost: the {class_name} is off ({type(exc).__name__}: {exc}).", file=sys.stderr)
    return meters
