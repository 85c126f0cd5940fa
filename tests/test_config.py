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


def test_lenient_loading_names_each_bad_value_once_and_ignores_it(tmp_path):
    """What %load_ext does: one line per bad value (what is wrong, what to do), the rest
    kept."""
    from nbcost.config import config_from

    a_file = tmp_path / "file"
    a_file.write_text("x")
    config = Config()
    config.NbCost.gpu_rate = -2.0
    config.NbCost.gpu_rates = {"H100": "abc", "A100": 1.5}
    config.NbCost.live = "yes please"
    config.NbCost.llm_prices = {"m": {"input_mtok": 1}}
    env = {"NBCOST_GPU_RATE": "abc", "NBCOST_TAGS": "novalue,run=7", "NBCOST_HOME": str(a_file),
           "NBCOST_GPU_RATES": "H100=-1"}
    problems: list[str] = []
    settings = load_settings(config_from(config, problems), env, problems=problems)
    assert len(problems) == 8 and all("\n" not in p and p.endswith("ignored it.")
                                      for p in problems)
    text = "\n".join(problems)
    for expected in ("c.NbCost.gpu_rate must be a non-negative", "c.NbCost.gpu_rates for H100",
                     "c.NbCost.live must be True or False", "c.NbCost.llm_prices['m'] must give",
                     "NBCOST_GPU_RATE must be a number", "NBCOST_TAGS entry must look like",
                     "is a file, not a folder; set it to a folder", "NBCOST_GPU_RATES entry for"):
        assert expected in text, expected
    assert settings.gpu_rate_usd_per_hour is None and settings.gpu_rates == {"A100": Decimal("1.5")}
    assert settings.default_tags == {"run": "7"} and settings.data_dir != a_file
    assert settings.live is True and settings.llm_prices == {}


def test_a_list_setting_with_a_wrong_item_says_what_its_items_must_be():
    from nbcost.config import config_from

    config = Config()
    config.NbCost.self_hosted_urls = ["http://gpu-box:8000/v1", 5]
    problems: list[str] = []
    assert config_from(config, problems).self_hosted_urls == []
    assert problems == ["c.NbCost.self_hosted_urls must be a list of strings; got "
                        "['http://gpu-box:8000/v1', 5] (TraitError); ignored it."]


def test_a_bad_config_folder_says_where_the_logs_really_go(tmp_path):
    """c.NbCost.data_dir naming a file: the logs go to the default folder, or to NBCOST_HOME
    when that is set (it wins), and the warning names the right one."""
    from nbcost.config import config_from

    a_file, home = tmp_path / "file", tmp_path / "home"
    a_file.write_text("x")
    config = Config()
    config.NbCost.data_dir = str(a_file)
    for env, where in (({}, "meanwhile"), ({"NBCOST_HOME": str(home)}, "NBCOST_HOME is set")):
        problems: list[str] = []
        settings = load_settings(config_from(config, problems), env, problems=problems)
        assert len(problems) == 1 and where in problems[0]
        if env:
            assert settings.data_dir == home
        else:
            assert str(settings.data_dir) in problems[0]


@pytest.mark.parametrize("home", ["~no-such-user-nbcost/x", "x" * 5000])
def test_a_data_dir_that_cannot_be_a_folder_is_a_config_error(home):
    with pytest.raises(ConfigError, match="NBCOST_HOME"):
        load_settings(NbCost(), {"NBCOST_HOME": home})


@pytest.mark.parametrize("text, message", [
    ("1e999999999", "at most"), ("-0", "non-negative"), ("sNaN", "non-negative"),
    ("1e-40", "at least"), (True, "number of US dollars"),
])
def test_absurd_amounts_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_money(text, "NBCOST_GPU_RATE")


def test_tiny_and_long_amounts_stay_small_decimals():
    assert parse_money("0E-999999999", "x") == 0 and str(parse_money("0E-999999999", "x")) == "0"
    assert len(str(parse_money("0." + "1" * 100, "x"))) <= 32


def test_self_hosted_servers_are_configurable():
    from traitlets.config import Config

    from nbcost.config import config_from, load_settings

    config = Config()
    config.NbCost.self_hosted_urls = ["http://gpu-box:8000/v1"]
    config.NbCost.self_hosted_auto = False
    problems: list[str] = []
    settings = load_settings(config_from(config, problems), environ={})
    assert problems == []
    assert (settings.self_hosted_urls, settings.self_hosted_auto) == (["http://gpu-box:8000/v1"], False)
    assert load_settings(environ={}).self_hosted_auto is True
