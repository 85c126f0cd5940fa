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
from traitlets import Bool, Dict, Float, List, Unicode
from traitlets.config import Configurable

from .errors import ConfigError

__all__ = ["MAX_USD", "NbCost", "Settings", "config_from", "load_settings", "parse_money",
           "parse_tags"]


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
    #: OTLP/HTTP base URL: export spend live as OpenTelemetry spans and metrics (``nbcost[otel]``).
    otlp_endpoint: str | None = None
    #: Base URLs of OpenAI-compatible servers the user runs (vLLM, Ollama...): their calls are
    #: ``self-hosted`` whatever the model's name (docs/local-models.md).
    self_hosted_urls: list[str] = field(default_factory=list)
    #: An unknown model at a loopback or private address is self-hosted, not unpriced.
    self_hosted_auto: bool = True


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
    self_hosted_urls = List(Unicode(), help="Base URLs of OpenAI-compatible servers you run "
                            "(vLLM, Ollama, llama.cpp), e.g. ['http://gpu-box:8000/v1']: their "
                            "calls are self-hosted, priced by measured GPU time.").tag(config=True)
    self_hosted_auto = Bool(True, help="Treat a model genai-prices does not know, served from a "
                            "loopback or private address, as self-hosted.").tag(config=True)
    otlp_endpoint = Unicode("", help="OTLP/HTTP base URL, e.g. http://localhost:4318: export "
                            "spend live as OpenTelemetry spans and metrics (nbcost[otel]).").tag(
        config=True
    )


#: The largest amount nbcost takes (USD): more is a typo, and 1e999999999 would overflow
#: Decimal arithmetic in every later cell.
MAX_USD = Decimal("1e12")


def parse_money(text: Any, what: str) -> Decimal:
    """A non-negative Decimal from user input, or a ConfigError that says what was wrong."""
    if isinstance(text, bool):
        raise ConfigError(f"{what} must be a number of US dollars, like 2.50; got {text!r}")
    raw = str(text).strip()
    try:
        value = Decimal(raw[1:] if raw.startswith("$") else raw)
    except (InvalidOperation, ValueError):
        raise ConfigError(f"{what} must be a number of US dollars, like 2.50; got {text!r}") from None
    if not value.is_finite() or value.is_signed():  # NaN, infinity, negative, and -0
        raise ConfigError(f"{what} must be a non-negative number of US dollars; got {text!r}")
    if value > MAX_USD:
        raise ConfigError(f"{what} must be at most {MAX_USD:,f} US dollars; got {text!r}")
    if not value:
        return Decimal(0)  # not 0E-999999999, whose text is a million zeros
    if value.adjusted() < -18:
        raise ConfigError(f"{what} must be 0 or at least 0.000000000000000001 US dollars; "
                          f"got {text!r}")
    return value + 0  # at most 28 significant digits, as every later sum keeps


def parse_tags(items: str | list[str] | tuple[str, ...], what: str = "tag",
               problems: list[str] | None = None) -> dict[str, str]:
    """``"a=1,b=2"`` or ``["a=1", "b=2"]`` → ``{"a": "1", "b": "2"}``. With ``problems``, a bad
    item is described there and skipped instead of raising."""
    if isinstance(items, str):
        items = [part for part in items.split(",") if part.strip()]
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _problem(ConfigError(f"{what} must look like KEY=VALUE; got {item!r}"), problems)
            continue
        tags[key.strip()] = value.strip()
    return tags


def _problem(error: ConfigError, problems: list[str] | None) -> None:
    """Strict (``problems`` is None): raise. Lenient: note it, ignored, and carry on."""
    if problems is None:
        raise error
    problems.append(f"{error}; ignored it.")


def _parse_rates(text: str | Mapping[str, Any], what: str,
                 problems: list[str] | None) -> dict[str, Decimal]:
    if isinstance(text, str):
        pairs: Mapping[str, Any] = parse_tags(text, what, problems)
    elif isinstance(text, Mapping):
        pairs = text
    else:
        _problem(ConfigError(f"{what} must be GPU model -> USD per hour, like {{'H100': 2.5}}; "
                             f"got {text!r}"), problems)
        return {}
    rates = {}
    for name, rate in pairs.items():
        if not str(name).strip():
            _problem(ConfigError(f"{what}: a GPU model name is empty"), problems)
            continue
        try:
            rates[str(name).strip()] = parse_money(rate, f"{what} for {name}")
        except ConfigError as exc:
            _problem(exc, problems)
    return rates


def _parse_llm_prices(prices: Any, problems: list[str] | None) -> dict[str, dict[str, Decimal]]:
    units_known = ("input_mtok", "output_mtok", "cache_read_mtok")
    example = "{'my-model': {'input_mtok': 1.0, 'output_mtok': 2.0}}"
    parsed: dict[str, dict[str, Decimal]] = {}
    for model, units in (prices.items() if isinstance(prices, Mapping) else ()):
        what = f"c.NbCost.llm_prices[{model!r}]"
        if not isinstance(units, Mapping) or not {"input_mtok", "output_mtok"} <= set(units):
            _problem(ConfigError(f"{what} must give input_mtok and output_mtok (USD per million "
                                 f"tokens), like {example}; got {units!r}"), problems)
            continue
        unknown = set(units) - set(units_known)
        if unknown:
            _problem(ConfigError(f"{what} has unknown keys {sorted(map(str, unknown))}; use "
                                 f"{', '.join(units_known)}"), problems)
            continue
        try:
            parsed[str(model)] = {unit: parse_money(v, f"LLM price {unit} of {model}")
                                  for unit, v in units.items()}
        except ConfigError as exc:
            _problem(exc, problems)
    if not isinstance(prices, Mapping):
        _problem(ConfigError(f"c.NbCost.llm_prices must be a dict like {example}; got {prices!r}"),
                 problems)
    return parsed


_KINDS = {"Float": "a number", "Unicode": "text", "Dict": "a dict", "Bool": "True or False",
          "List": "a list"}


_ITEMS = {"Unicode": "strings", "Float": "numbers"}


def _kind(trait: Any) -> str:
    """What a setting must be, in words: "a list of strings" for ``List(Unicode())``."""
    name = type(trait).__name__
    item = getattr(trait, "_trait", None)  # a List's item type
    if name == "List" and item is not None and type(item).__name__ in _ITEMS:
        return f"a list of {_ITEMS[type(item).__name__]}"
    return _KINDS.get(name, "value")


def config_from(config: Any, problems: list[str]) -> NbCost:
    """``c.NbCost`` from a traitlets ``Config``, one setting at a time: a value of the wrong type
    (``c.NbCost.gpu_rate = "abc"``) or an unknown name is described in ``problems`` and left
    out, instead of failing the whole section (and ``%load_ext``) with a traceback."""
    from traitlets import TraitError
    from traitlets.config.loader import LazyConfigValue

    nbcost = NbCost()
    section = config.get("NbCost", {}) if config is not None else {}
    for name, value in section.items():
        if not nbcost.has_trait(name) or not nbcost.trait_metadata(name, "config"):
            known = ", ".join(sorted(NbCost.class_own_traits(config=True)))
            problems.append(f"c.NbCost.{name} is not an nbcost setting (they are: {known}); "
                            "ignored it.")
            continue
        try:
            if isinstance(value, LazyConfigValue):
                value = value.get_value(getattr(nbcost, name))
            setattr(nbcost, name, value)
        except (TraitError, TypeError, ValueError) as exc:
            problems.append(f"c.NbCost.{name} must be {_kind(nbcost.traits()[name])}; got "
                            f"{value!r} ({type(exc).__name__}); ignored it.")
    return nbcost


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


def load_settings(config: NbCost | None = None, environ: Mapping[str, str] | None = None,
                  problems: list[str] | None = None) -> Settings:
    """Build the settings from the traitlets config (if any) and the environment.

    Strict by default: a bad value raises :class:`ConfigError`. With ``problems`` (a list), each
    bad value is described there (one line: what is wrong, what to do) and ignored, so a kernel
    still starts with everything else (``%load_ext nbcost`` prints them).
    """
    env = os.environ if environ is None else environ
    c = config or NbCost()
    default_dir = Path(platformdirs.user_data_dir("nbcost"))
    settings = Settings(
        data_dir=default_dir,
        user=c.user or default_user(),
        team=c.team or None,
        project=c.project or None,
        default_tags={str(k): str(v) for k, v in c.default_tags.items()},
        gpu_rates=_parse_rates(c.gpu_rates, "c.NbCost.gpu_rates", problems),
        llm_prices=_parse_llm_prices(c.llm_prices, problems),
        azure_deployments={str(k): str(v) for k, v in c.azure_deployments.items()},
        live=c.live,
        otlp_endpoint=c.otlp_endpoint or None,
        self_hosted_urls=[str(url) for url in c.self_hosted_urls],
        self_hosted_auto=c.self_hosted_auto,
    )
    if c.data_dir:  # (NBCOST_HOME, below, wins over it)
        settings.data_dir = _data_dir(c.data_dir, "c.NbCost.data_dir", default_dir, problems,
                                      "NBCOST_HOME" if env.get("NBCOST_HOME") else None)
    if c.gpu_rate is not None:
        settings.gpu_rate_usd_per_hour = _money_or_none(c.gpu_rate, "c.NbCost.gpu_rate", problems)
    if env.get("NBCOST_HOME"):
        settings.data_dir = _data_dir(env["NBCOST_HOME"], "NBCOST_HOME", settings.data_dir,
                                      problems)
    for name in ("user", "team", "project", "otlp_endpoint"):
        if env.get(f"NBCOST_{name.upper()}"):
            setattr(settings, name, env[f"NBCOST_{name.upper()}"])
    if env.get("NBCOST_TAGS"):
        settings.default_tags.update(parse_tags(env["NBCOST_TAGS"], "NBCOST_TAGS entry", problems))
    if env.get("NBCOST_GPU_RATE"):
        rate = _money_or_none(env["NBCOST_GPU_RATE"], "NBCOST_GPU_RATE", problems)
        if rate is not None:
            settings.gpu_rate_usd_per_hour = rate
    if env.get("NBCOST_GPU_RATES"):
        settings.gpu_rates.update(_parse_rates(env["NBCOST_GPU_RATES"], "NBCOST_GPU_RATES entry",
                                               problems))
    return settings


def _money_or_none(value: Any, what: str, problems: list[str] | None) -> Decimal | None:
    try:
        return parse_money(value, what)
    except ConfigError as exc:
        _problem(exc, problems)
        return None


def _data_dir(text: Any, what: str, fallback: Path, problems: list[str] | None,
              overridden_by: str | None = None) -> Path:
    """The folder ``text`` names; one that cannot be a folder is a problem (the fallback then,
    unless the setting ``overridden_by`` is what decides the folder anyway)."""
    reason = None
    try:
        path = Path(str(text)).expanduser()
        if "\x00" in str(text):
            reason = "contains a NUL character"
        elif path.exists() and not path.is_dir():
            reason = "is a file, not a folder"
    except RuntimeError:  # ~someone: no such user
        reason = "names the home folder of an unknown user"
    except (OSError, ValueError) as exc:  # a name too long for the filesystem...
        reason = f"cannot be a folder ({getattr(exc, 'strerror', None) or exc})"
    if reason is None:
        return path
    meanwhile = (f"{overridden_by} is set and used instead" if overridden_by
                 else f"spend logs go to {fallback} meanwhile")
    _problem(ConfigError(f"{what}={text!r} {reason}; set it to a folder ({meanwhile})"), problems)
    return fallback
