"""GPU hourly rates: the built-in table, name matching and user overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from nbcost.pricing.gpu import GPU_RATES, gpu_rate, name_words


@dataclass
class Settings:  # the two fields of nbcost.config.Settings that rates read
    gpu_rate_usd_per_hour: Decimal | None = None
    gpu_rates: dict = field(default_factory=dict)


@pytest.mark.parametrize(
    ("nvml_name", "model"),
    [
        ("NVIDIA B200", "B200"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA H200 NVL", "H200"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 PCIe", "H100 PCIE"),
        ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
        ("NVIDIA A100 80GB PCIe", "A100 80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
        ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10G", "A10G"),
        ("Tesla T4", "T4"),
        ("Tesla V100-SXM2-16GB", "V100"),
        ("Tesla V100-PCIE-32GB", "V100"),
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "H100"),
    ],
)
def test_nvml_names_find_their_row(nvml_name, model):
    quote = gpu_rate(nvml_name)
    assert quote.model == model
    assert quote.usd_per_hour == next(r.usd_per_hour for r in GPU_RATES if r.model == model)


@pytest.mark.parametrize("nvml_name", ["NVIDIA GH200 480GB", "NVIDIA A10", "NVIDIA L40",
                                       "NVIDIA GeForce RTX 4090", "NVIDIA A100"])
def test_lookalike_or_unknown_gpus_stay_unpriced(nvml_name):
    quote = gpu_rate(nvml_name)
    assert quote.usd_per_hour is None
    assert "gpu-rate" in quote.source


def test_every_row_names_its_source_and_date():
    required = {"B200", "H200", "H100", "A100 80GB", "A100 40GB", "L40S", "L4", "A10G", "T4",
                "V100"}
    assert required <= {r.model for r in GPU_RATES}
    for row in GPU_RATES:
        assert row.usd_per_hour > 0 and isinstance(row.usd_per_hour, Decimal)
        assert row.source.strip()
        assert re.fullmatch(r"20\d\d(-\d\d(-\d\d)?)?", row.as_of)


def test_session_rate_beats_everything():
    settings = Settings(Decimal("9.5"), {"H100": Decimal("1")})
    quote = gpu_rate("NVIDIA H100 80GB HBM3", settings)
    assert quote.usd_per_hour == Decimal("9.5") and "session" in quote.source
    assert gpu_rate("Some Unknown GPU", settings).usd_per_hour == Decimal("9.5")


def test_per_model_overrides_by_short_or_full_name_most_specific_first():
    settings = Settings(gpu_rates={"A100": Decimal("1.0"), "A100 80GB": Decimal("1.2"),
                                   "NVIDIA GH200 480GB": Decimal("4")})
    assert gpu_rate("NVIDIA A100-SXM4-80GB", settings).usd_per_hour == Decimal("1.2")
    assert gpu_rate("NVIDIA A100-PCIE-40GB", settings).usd_per_hour == Decimal("1.0")
    quote = gpu_rate("NVIDIA GH200 480GB", settings)
    assert quote.usd_per_hour == Decimal("4") and "gpu_rates" in quote.source
    assert gpu_rate("NVIDIA H200", settings).model == "H200"  # the table still applies


def test_name_words():
    assert name_words("NVIDIA A100-SXM4-80GB") == {"A100", "SXM4", "80GB"}
    assert name_words("Tesla V100 32G") == {"V100", "32GB"}
    assert gpu_rate("NVIDIA H200").as_json()["usd_per_hour"] == "3.59"
