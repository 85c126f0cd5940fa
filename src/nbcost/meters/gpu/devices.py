"""Which GPUs this process can see, as NVML handles opened by UUID.

CUDA and NVML number devices differently: CUDA honours ``CUDA_VISIBLE_DEVICES`` (indices,
``GPU-<uuid>`` prefixes, ``MIG-<uuid>`` or ``MIG-GPU-<uuid>/<gi>/<ci>``) and, unless
``CUDA_DEVICE_ORDER=PCI_BUS_ID``, orders devices fastest first; NVML counts in PCI order. Like
CUDA, parsing stops at the first entry that names no device.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .backend import GpuError

__all__ = ["GpuDevice", "parse_visible_devices", "visible_devices"]

#: Compute slices of a full A100/H100/H200/B200; a "3g.40gb" MIG slice is 3/7 of the GPU.
MIG_SLICES_PER_GPU = 7


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One GPU (or MIG slice) visible to this process.

    Attributes:
        ordinal: its index as CUDA numbers it inside this process (``cuda:0``).
        uuid: NVML's UUID (``GPU-...`` or ``MIG-...``).
        name: NVML's device name (``NVIDIA H200``, ``NVIDIA A100-SXM4-40GB MIG 1g.5gb``).
        handle: the NVML handle.
        mig: whether it is a MIG slice (no utilization, no energy of its own).
        mig_fraction: the share of the parent GPU a slice is priced at; None if unknown.
    """

    ordinal: int
    uuid: str
    name: str
    handle: Any
    mig: bool = False
    mig_fraction: float | None = 1.0

    @property
    def key(self) -> str:
        """The breakdown key, e.g. ``"0:NVIDIA H200"``."""
        return f"{self.ordinal}:{self.name}"


def parse_visible_devices(value: str | None) -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES``; None when unset (every device is visible)."""
    if value is None:
        return None
    entries = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry or entry.startswith("-"):
            break  # CUDA ignores everything from the first invalid entry on (-1 hides all)
        entries.append(entry)
    return entries


def _mig_fraction(name: str) -> float | None:
    match = re.search(r"(\d+)g\.\d+gb", name.lower())
    return int(match.group(1)) / MIG_SLICES_PER_GPU if match else None


class _Finder:
    """Resolves entries against NVML's device list, reading each device once."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.physical = [backend.handle_by_index(i) for i in range(backend.device_count())]
        self.physical_uuids = [backend.uuid(h) for h in self.physical]
        self._children: dict[int, list[Any]] = {}

    def mig_children(self, index: int) -> list[Any]:
        if index not in self._children:
            handle = self.physical[index]
            try:
                enabled = self.backend.mig_enabled(handle)
            except GpuError:  # pre-Ampere GPUs do not know MIG
                enabled = False
            self._children[index] = self.backend.mig_children(handle) if enabled else []
        return self._children[index]

    def expand(self, index: int) -> list[tuple[Any, bool]]:
        """A physical GPU as CUDA sees it: itself, or its MIG slices when MIG is on."""
        children = self.mig_children(index)
        return [(h, True) for h in children] if children else [(self.physical[index], False)]

    def by_uuid_prefix(self, prefix: str) -> int | None:
        matches = [i for i, u in enumerate(self.physical_uuids) if u.startswith(prefix)]
        return matches[0] if len(matches) == 1 else None

    def resolve(self, entry: str) -> list[tuple[Any, bool]] | None:
        if entry.isascii() and entry.isdigit():  # not "²", which isdigit() but int() refuses
            index = int(entry)
            return self.expand(index) if index < len(self.physical) else None
        if entry.startswith("GPU-"):
            index = self.by_uuid_prefix(entry)
            return None if index is None else self.expand(index)
        if entry.startswith("MIG-GPU-"):  # the older MIG-GPU-<uuid>/<gi>/<ci> form
            parent, _, ids = entry[len("MIG-"):].partition("/")
            index = self.by_uuid_prefix(parent)
            if index is None:
                return None
            for child in self.mig_children(index):
                if "/".join(str(i) for i in self.backend.mig_ids(child)) == ids:
                    return [(child, True)]
            return None
        if entry.startswith("MIG-"):
            for index in range(len(self.physical)):
                for child in self.mig_children(index):
                    if self.backend.uuid(child).startswith(entry):
                        return [(child, True)]
            return None
        return None


def visible_devices(
    backend: Any, environ: Mapping[str, str] | None = None
) -> tuple[list[GpuDevice], list[str]]:
    """The devices this process can see, and notes worth telling the user once."""
    env = os.environ if environ is None else environ
    finder = _Finder(backend)
    entries = parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES"))
    notes: list[str] = []
    found: list[tuple[Any, bool]] = []
    if entries is None:
        for index in range(len(finder.physical)):
            found.extend(finder.expand(index))
    else:
        for entry in entries:
            resolved = finder.resolve(entry)
            if resolved is None:
                notes.append(
                    f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU NVML knows; "
                    "CUDA ignores it and every entry after it, and so does nbcost."
                )
                break
            seen = {backend.uuid(h) for h, _ in found}
            if any(backend.uuid(handle) in seen for handle, _ in resolved):
                notes.append(
                    f"CUDA_VISIBLE_DEVICES names a GPU twice (at {entry!r}); CUDA ignores "
                    "that entry and every entry after it, and so does nbcost."
                )
                break
            found.extend(resolved)
    names = [backend.name(handle) for handle, _ in found]
    numeric = entries is None or any(e.isdigit() for e in entries)
    if numeric and len(set(names)) > 1 and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        notes.append(
            "this machine mixes GPU models and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so CUDA's "
            "device numbers may differ from NVML's; set CUDA_DEVICE_ORDER=PCI_BUS_ID."
        )
    devices = [
        GpuDevice(
            ordinal=ordinal,
            uuid=backend.uuid(handle),
            name=name,
            handle=handle,
            mig=mig,
            mig_fraction=_mig_fraction(name) if mig else 1.0,
        )
        for ordinal, ((handle, mig), name) in enumerate(zip(found, names))
    ]
    return devices, notes
