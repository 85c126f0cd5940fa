"""Which GPUs a process sees: CUDA_VISIBLE_DEVICES as indices, UUID prefixes and MIG ids."""

from __future__ import annotations

import pytest
from fake_nvml import Clock, FakeGpu, FakeNvml

from nbcost.meters.gpu.backend import NvmlBackend
from nbcost.meters.gpu.devices import parse_visible_devices, visible_devices

UUID_A = "GPU-aaaa1111-0000-0000-0000-000000000000"
UUID_B = "GPU-bbbb2222-0000-0000-0000-000000000000"
UUID_C = "GPU-bbbb3333-0000-0000-0000-000000000000"


def machine(*gpus: FakeGpu) -> NvmlBackend:
    return NvmlBackend(FakeNvml(list(gpus), Clock()))


def three_gpus() -> NvmlBackend:
    return machine(FakeGpu(UUID_A), FakeGpu(UUID_B), FakeGpu(UUID_C))


def uuids(backend, env):
    devices, notes = visible_devices(backend, env)
    return [(d.ordinal, d.uuid) for d in devices], notes


@pytest.mark.parametrize(
    ("value", "entries"),
    [
        (None, None),
        ("", []),
        ("-1", []),
        ("0,1", ["0", "1"]),
        (" 1 , 0 ", ["1", "0"]),
        ("0,1,-1,2", ["0", "1"]),  # CUDA stops at the first invalid entry
        ("0,,2", ["0"]),
        ("GPU-abc,MIG-def", ["GPU-abc", "MIG-def"]),
    ],
)
def test_parse_visible_devices(value, entries):
    assert parse_visible_devices(value) == entries


def test_unset_means_every_gpu_in_nvml_order():
    found, notes = uuids(three_gpus(), {})
    assert found == [(0, UUID_A), (1, UUID_B), (2, UUID_C)]
    assert notes == []


def test_indices_pick_and_renumber():
    found, _ = uuids(three_gpus(), {"CUDA_VISIBLE_DEVICES": "2,0"})
    assert found == [(0, UUID_C), (1, UUID_A)]


def test_empty_or_minus_one_hides_every_gpu():
    assert uuids(three_gpus(), {"CUDA_VISIBLE_DEVICES": ""})[0] == []
    assert uuids(three_gpus(), {"CUDA_VISIBLE_DEVICES": "-1"})[0] == []


def test_uuid_and_unique_uuid_prefixes():
    found, _ = uuids(three_gpus(), {"CUDA_VISIBLE_DEVICES": f"{UUID_B},GPU-aaaa"})
    assert found == [(0, UUID_B), (1, UUID_A)]


def test_an_ambiguous_prefix_or_unknown_entry_ends_the_list_with_a_note():
    found, notes = uuids(three_gpus(), {"CUDA_VISIBLE_DEVICES": "GPU-aaaa,GPU-bbbb,0"})
    assert found == [(0, UUID_A)]
    assert len(notes) == 1 and "'GPU-bbbb'" in notes[0]
    found, notes = uuids(three_gpus(), {"CUDA_VISIBLE_DEVICES": "1,7,0"})
    assert found == [(0, UUID_B)]
    assert "'7'" in notes[0]


def test_mig_uuids_both_forms():
    parent = FakeGpu(UUID_A, name="NVIDIA H100 80GB HBM3")
    small = parent.add_mig("MIG-1111aaaa-0000", "NVIDIA H100 80GB HBM3 MIG 1g.10gb", gi=7)
    large = parent.add_mig("MIG-2222bbbb-0000", "NVIDIA H100 80GB HBM3 MIG 3g.40gb", gi=2)
    backend = machine(parent, FakeGpu(UUID_B))
    devices, _ = visible_devices(backend, {"CUDA_VISIBLE_DEVICES": "MIG-2222bbbb-0000"})
    assert [d.uuid for d in devices] == [large.uuid]
    assert devices[0].mig and devices[0].mig_fraction == pytest.approx(3 / 7)
    devices, _ = visible_devices(backend, {"CUDA_VISIBLE_DEVICES": "MIG-1111"})  # a prefix
    assert [d.uuid for d in devices] == [small.uuid]
    devices, _ = visible_devices(backend, {"CUDA_VISIBLE_DEVICES": f"MIG-{UUID_A}/7/0"})
    assert [d.uuid for d in devices] == [small.uuid]
    assert devices[0].mig_fraction == pytest.approx(1 / 7)
    devices, notes = visible_devices(backend, {"CUDA_VISIBLE_DEVICES": f"MIG-{UUID_A}/5/0"})
    assert devices == [] and notes


def test_a_mig_enabled_gpu_shows_its_slices_not_itself():
    parent = FakeGpu(UUID_A, name="NVIDIA A100-SXM4-40GB")
    parent.add_mig("MIG-1", "NVIDIA A100-SXM4-40GB MIG 1g.5gb", gi=1)
    parent.add_mig("MIG-2", "NVIDIA A100-SXM4-40GB MIG 2g.10gb", gi=2)
    devices, _ = visible_devices(machine(parent, FakeGpu(UUID_B)), {})
    assert [(d.ordinal, d.uuid, d.mig) for d in devices] == [
        (0, "MIG-1", True), (1, "MIG-2", True), (2, UUID_B, False)]
    assert devices[0].key == "0:NVIDIA A100-SXM4-40GB MIG 1g.5gb"


def test_mixed_models_without_pci_order_are_warned_about():
    backend = machine(FakeGpu(UUID_A, name="NVIDIA H100 80GB HBM3"),
                      FakeGpu(UUID_B, name="NVIDIA L4"))
    _, notes = visible_devices(backend, {"CUDA_VISIBLE_DEVICES": "0,1"})
    assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in n for n in notes)
    _, notes = visible_devices(backend, {"CUDA_VISIBLE_DEVICES": "0,1",
                                         "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert notes == []
    _, notes = visible_devices(backend, {"CUDA_VISIBLE_DEVICES": f"{UUID_B},{UUID_A}"})
    assert notes == []  # UUIDs do not depend on the order
