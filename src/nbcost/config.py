"""Settings: where the spend log goes, who is spending, and the rates that override defaults.

Three layers, later ones win:

1. defaults;
2. ``c.NbCost.<name>`` in ``ipython_config.py`` (inside IPython only);
3. environment variables: ``NBCOST_HOME``, ``NBCOST_USER``, ``NBCOST_TEAM``, ``NBCOST_PROJECT``,
   ``NBCOST_TAGS="k=v,k=v"``, ``NBCOST_GPU_RATE=2.50`` (USD per GPU-hour, every GPU) and
   ``NBCOST_GPU_RATES="H100=2.5,A100 80GB=1.2"`` (per GPU model).

Magics (``%cost gpu-rate``, ``%cost llm-price``, ``%cost budget``) then change a running session's
:class:`Settings`.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

import platformdirs
from traitlets import Bool, Dict, Float, Unicode
from traitlets.config import Configurable

from .errors import ConfigError

__all__ = ["NbCost", "Settings", "load_settings", "parse_money", "parse_tags"]


@dataclass
class Settings:
    """The settings a session runs with. Mutable: magics change rates and budgets mid-session."""

    data_dir: Path
    user: str
    team: str | None = None
    project: str | None = None
    default_tags: dict[str, str] = field(default_factory=dict)
    #: USD per GPU-hour for every GPU of this session; beats ``gpu_rates`` and the built-in table.
    gpu_rate_usd_per_hour: Decimal | None = None
    #: USD per GPU-hour by GPU model name as NVML spells it or a short form ("H100", "A100 80GB").
    gpu_rates: dict[str, Decimal] = field(default_factory=dict)
    #: Per-model LLM price overrides in USD per million tokens:
    #: ``{"my-model": {"input_mtok": "1.0", "output_mtok": "2.0", "cache_read_mtok": "0.1"}}``.
    llm_prices: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    #: Azure deployment name → the model it serves, for pricing.
    azure_deployments: dict[str, str] = field(default_factory=dict)
    #: Session budget in USD (None: no budget); ``budget_hard`` refuses LLM calls beyond it.
    budget_usd: Decimal | None = None
    budget_hard: bool = False
    #: Show the live panel under ``%%cost`` cells.
    live: bool = True


class NbCost(Configurable):
    """``c.NbCost.<name> = ...`` in ``ipython_config.py``."""

    data_dir = Unicode("", help="Where spend logs go (default: the platform's user data dir).").tag(
        config=True
    )
    user = Unicode("", help="Who is spending (default: the login name).").tag(config=True)
    team = Unicode("", help="Team the spend is allocated to.").tag(config=True)
    project = Unicode("", help="Project the spend is allocated to.").tag(config=True)
    default_tags = Dict(help="Tags added to every record, e.g. {'experiment': 'lr-sweep'}.").tag(
        config=True
    )
    gpu_rate = Float(None, allow_none=True, help="USD per GPU-hour for every GPU.").tag(config=True)
    gpu_rates = Dict(help="USD per GPU-hour by GPU model, e.g. {'H100': 2.5}.").tag(config=True)
    llm_prices = Dict(
        help="LLM price overrides in USD per million tokens: "
        "{'model': {'input_mtok': 1.0, 'output_mtok': 2.0, 'cache_read_mtok': 0.1}}."
    ).tag(config=True)
    azure_deployments = Dict(help="Azure deployment name -> model name, for pricing.").tag(
        config=True
    )
    live = Bool(True, help="Show the live panel under %%cost cells.").tag(config=True)


def parse_money(text: Any, what: str) -> Decimal:
    """A non-negative Decimal from user input, or a ConfigError that says what was wrong."""
    try:
        value = Decimal(str(text).strip().lstrip("$"))
    except InvalidOperation:
        raise ConfigError(f"{what} must be a number of US dollars, like 2.50; got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{what} must be a non-negative number of US dollars; got {text!r}")
    return value


def parse_tags(items: str | list[str] | tuple[str, ...], what: str = "tag") -> dict[str, str]:
    """``"a=1,b=2"`` or ``["a=1", "b=2"]`` → ``{"a": "1", "b": "2"}``."""
    if isinstance(items, str):
        items = [part for part in items.split(",") if part.strip()]
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} must look like KEY=VALUE; got {item!r}")
        tags[key.strip()] = value.strip()
    return tags


def _parse_rates(text: str | Mapping[str, Any], what: str) -> dict[str, Decimal]:
    pairs = parse_tags(text, what) if isinstance(text, str) else text
    return {name: parse_money(rate, f"{what} for {name}") for name, rate in pairs.items()}


def _parse_llm_prices(prices: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Decimal]]:
    return {
        model: {unit: parse_money(v, f"LLM price {unit} of {model}") for unit, v in units.items()}
        for model, units in prices.items()
    }


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def profile_config() -> NbCost:
    """The ``c.NbCost`` settings of the default IPython profile, for tools outside a kernel
    (``nbcost run`` must look for the spend log where its kernel writes it)."""
    try:
        from IPython.paths import locate_profile
        from traitlets.config.loader import Config, PyFileConfigLoader

        folder = locate_profile("default")
        merged = Config()
        for name in ("ipython_config.py", "ipython_kernel_config.py"):
            if (Path(folder) / name).exists():
                merged.merge(PyFileConfigLoader(name, path=folder).load_config())
        return NbCost(config=merged)
    except Exception:  # no profile, or one that fails to load: the defaults then
        return NbCost()


def load_settings(config: NbCost | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the traitlets config (if any) and the environment."""
    env = os.environ if environ is None else environ
    c = config or NbCost()
    settings = Settings(
        data_dir=Path(c.data_dir) if c.data_dir else Path(platformdirs.user_data_dir("nbcost")),
        user=c.user or default_user(),
        team=c.team or None,
        project=c.project or None,
        default_tags={str(k): str(v) for k, v in c.default_tags.items()},
        gpu_rate_usd_per_hour=(
            parse_money(c.gpu_rate, "NbCost.gpu_rate") if c.gpu_rate is not None else None
        ),
        gpu_rates=_parse_rates(c.gpu_rates, "NbCost.gpu_rates"),
        llm_prices=_parse_llm_prices(c.llm_prices),
        azure_deployments={str(k): str(v) for k, v in c.azure_deployments.items()},
        live=c.live,
    )
    if env.get("NBCOST_HOME"):
        settings.data_dir = Path(env["NBCOST_HOME"]).expanduser()
    for name in ("user", "team", "project"):
        if env.get(f"NBCOST_{name.upper()}"):
            setattr(settings, name, env[f"NBCOST_{name.upper()}"])
    if env.get("NBCOST_TAGS"):
        settings.default_tags.update(parse_tags(env["NBCOST_TAGS"], "NBCOST_TAGS entry"))
    if env.get("NBCOST_GPU_RATE"):
        settings.gpu_rate_usd_per_hour = parse_money(env["NBCOST_GPU_RATE"], "NBCOST_GPU_RATE")
    if env.get("NBCOST_GPU_RATES"):
        settings.gpu_rates.update(_parse_rates(env["NBCOST_GPU_RATES"], "NBCOST_GPU_RATES entry"))
    return settings
