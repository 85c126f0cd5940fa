"""Settings from defaults, ipython_config (traitlets) and environment variables."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from traitlets.config import Config

from nbcost.config import NbCost, load_settings, parse_money, parse_tags
from nbcost.errors import ConfigError


def test_traitlets_config_then_environment_wins():
    config = Config()
    config.NbCost.user = "from-config"
    config.NbCost.team = "ml"
    config.NbCost.gpu_rates = {"H100": 2.5}
    config.NbCost.default_tags = {"experiment": "sweep"}
    config.NbCost.llm_prices = {"my-model": {"input_mtok": 1, "output_mtok": "2.5"}}
    env = {"NBCOST_HOME": "/tmp/x", "NBCOST_USER": "from-env", "NBCOST_TAGS": "run=7, env=dev",
           "NBCOST_GPU_RATES": "A100 80GB=1.2", "NBCOST_GPU_RATE": "3"}
    settings = load_settings(NbCost(config=config), env)
    assert settings.data_dir == Path("/tmp/x")
    assert settings.user == "from-env" and settings.team == "ml"
    assert settings.default_tags == {"experiment": "sweep", "run": "7", "env": "dev"}
    assert settings.gpu_rates == {"H100": Decimal("2.5"), "A100 80GB": Decimal("1.2")}
    assert settings.gpu_rate_usd_per_hour == Decimal("3")
    assert settings.llm_prices == {"my-model": {"input_mtok": Decimal("1"),
                                                "output_mtok": Decimal("2.5")}}
    assert all(isinstance(v, Decimal) for v in settings.gpu_rates.values())


def test_defaults_use_the_platform_data_dir():
    settings = load_settings(NbCost(), {})
    assert "nbcost" in str(settings.data_dir) and settings.user


@pytest.mark.parametrize("bad", ["abc", "-1", "nan", "inf", ""])
def test_bad_money_says_what_to_do(bad):
    with pytest.raises(ConfigError, match="US dollars"):
        parse_money(bad, "NBCOST_GPU_RATE")


def test_bad_environment_names_the_variable():
    with pytest.raises(ConfigError, match="NBCOST_GPU_RATES"):
        load_settings(NbCost(), {"NBCOST_GPU_RATES": "H100"})
    with pytest.raises(ConfigError, match="NBCOST_GPU_RATE"):
        load_settings(NbCost(), {"NBCOST_GPU_RATE": "cheap"})


def test_parse_tags():
    assert parse_tags("a=1,b=x=y") == {"a": "1", "b": "x=y"}
    assert parse_tags(["k = v"]) == {"k": "v"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_tags(["novalue"])
