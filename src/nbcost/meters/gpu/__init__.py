"""The GPU meter: held, busy and SM-weighted time, energy and memory per cell, through NVML.

Importable without IPython, pandas or any LLM SDK (it runs on bare GPU machines too); NVML
itself (``pynvml``) is imported only when the meter starts.
"""

from __future__ import annotations

from .meter import GpuMeter

__all__ = ["GpuMeter"]
