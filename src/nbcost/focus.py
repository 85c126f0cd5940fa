"""FOCUS 1.2 export: spend logs as a FinOps Open Cost and Usage Specification dataset.

One row per charge, at the granularity of a top-level window (a cell, a top-level ``track()``
block, or a session's time between cells):

* **LLM usage**: one row per window, model and *token kind* (uncached input, cache read, cache
  write, output), ServiceCategory "AI and Machine Learning" / "Generative AI", PricingUnit
  "Tokens". Kinds have different prices, and FOCUS wants ``ListUnitPrice × PricingQuantity =
  ListCost`` on every row, so a call is split at per-token unit prices (:mod:`nbcost.unit_prices`)
  whose products add up to the call's recorded cost exactly. A call whose price is not linear
  in tokens (tiers, audio) becomes its own row priced per request (PricingUnit "Requests",
  quantity 1), its tokens in ConsumedQuantity.
* **GPU time**: one row per window and GPU, ServiceCategory "Compute", PricingUnit "GPU-Hours"
  (the held time, nbcost's billing basis, to the nanohour), ListUnitPrice the GPU's hourly rate
  (times its MIG fraction).
* **Unpriced usage is left out**, with a warning that says how much: every FOCUS cost column is
  mandatory and non-null, and ListUnitPrice may not be null on a Usage row, so FOCUS cannot
  state a charge of unknown cost, and writing $0 would be a lie.

All four cost columns equal ``ListUnitPrice × PricingQuantity`` (no discounts or commitments
apply), computed exactly in Decimal. For LLM rows they add up to the recorded cost exactly; for
GPU rows they differ from nbcost's figure (rounded to the micro-dollar) by less than $0.000001.
Columns added in FOCUS 1.3 that cost nothing to fill (ServiceProviderName, HostProviderName)
follow the 1.2 ones; nbcost's own columns (``x_…``) come last. ``docs/focus.md`` documents
every column.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ConfigError
from .rows import rows_from_events
from .unit_prices import UnitPrices, split_call, token_counts

__all__ = ["COLUMNS", "FOCUS_VERSION", "FocusExport", "check_path", "focus_table", "to_arrow",
           "write_focus"]

FOCUS_VERSION = "1.2"
MONEY, NUMBER, STRING, DATETIME, JSON, INT, BOOL = (
    "money", "number", "string", "datetime", "json", "int", "bool")
#: Parquet scale of money and quantities: a token's price times its count, and a GPU-hour
#: price (to 1e-12) times hours (to 1e-9), fit exactly.
SCALE = 24

COLUMNS: tuple[tuple[str, str], ...] = (
    ("BilledCost", MONEY), ("BillingAccountId", STRING), ("BillingAccountName", STRING),
    ("BillingCurrency", STRING), ("BillingPeriodEnd", DATETIME), ("BillingPeriodStart", DATETIME),
    ("ChargeCategory", STRING), ("ChargeClass", STRING), ("ChargeDescription", STRING),
    ("ChargeFrequency", STRING), ("ChargePeriodEnd", DATETIME), ("ChargePeriodStart", DATETIME),
    ("ConsumedQuantity", NUMBER), ("ConsumedUnit", STRING), ("ContractedCost", MONEY),
    ("ContractedUnitPrice", MONEY), ("EffectiveCost", MONEY), ("InvoiceIssuerName", STRING),
    ("ListCost", MONEY), ("ListUnitPrice", MONEY), ("PricingCategory", STRING),
    ("PricingQuantity", NUMBER), ("PricingUnit", STRING), ("ProviderName", STRING),
    ("PublisherName", STRING), ("ResourceId", STRING), ("ResourceName", STRING),
    ("ResourceType", STRING), ("ServiceCategory", STRING), ("ServiceName", STRING),
    ("ServiceSubcategory", STRING), ("SkuId", STRING), ("SkuMeter", STRING),
    ("SkuPriceDetails", JSON), ("SkuPriceId", STRING), ("SubAccountId", STRING),
    ("SubAccountName", STRING), ("Tags", JSON),
    # FOCUS 1.3 (ratified 2025-12): ProviderName's successors.
    ("HostProviderName", STRING), ("ServiceProviderName", STRING),
    # nbcost's own, after the FOCUS columns as the spec asks.
    ("x_SessionId", STRING), ("x_WindowId", STRING), ("x_WindowKind", STRING),
    ("x_NotebookPath", STRING), ("x_NotebookId", STRING), ("x_CellId", STRING),
    ("x_ExecutionCount", INT), ("x_Label", STRING), ("x_User", STRING), ("x_Team", STRING),
    ("x_Project", STRING), ("x_Status", STRING), ("x_LlmCalls", INT),
    ("x_ReasoningTokens", INT), ("x_CostIsEstimate", BOOL), ("x_PriceSource", STRING),
)

_PROVIDERS = {"openai": ("OpenAI", "OpenAI API"), "anthropic": ("Anthropic", "Anthropic API"),
              "google": ("Google", "Gemini API"), "mistral": ("Mistral AI", "Mistral AI API"),
              "azure": ("Microsoft", "Azure OpenAI"), "aws": ("Amazon Web Services", "Amazon Bedrock"),
              "groq": ("Groq", "GroqCloud"), "deepseek": ("DeepSeek", "DeepSeek API"),
              "x-ai": ("xAI", "xAI API"),
              # A local model's tokens: $0 usage rows; their dollars are the GPU rows'.
              "self-hosted": ("Self-hosted", "Self-hosted model")}
_METERS = {"input": "Input Tokens", "cache_read": "Cached Input Tokens",
           "cache_write": "Cache Write Tokens", "output": "Output Tokens", "request": "Requests"}
_HOUR_PLACES = Decimal("1e-9")  # GPU-hours to 3.6 µs: finer than any sampler
_PRICE_PLACES = Decimal("1e-12")
_EXACT = Context(prec=60, traps=[Inexact])


@dataclass
class FocusExport:
    """The FOCUS rows (column name → value, Python types) and what had to be left out."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _LlmCharge:
    tokens: int = 0
    reasoning: int = 0
    calls: set = field(default_factory=set)
    estimated: bool = False


@dataclass
class _LeftOut:
    llm_calls: int = 0
    llm_tokens: int = 0
    models: set = field(default_factory=set)
    gpu_seconds: float = 0.0


def focus_table(events: Iterable[Mapping[str, Any]], billing_account: str = "nbcost",
                gpu_provider: str = "Self-hosted") -> FocusExport:
    """The FOCUS rows of spend-log ``events`` (any number of sessions).

    ``billing_account``: BillingAccountId/Name (nbcost knows no invoice account; the team's
    FinOps convention decides). ``gpu_provider``: ProviderName of GPU rows (the cloud or
    "Self-hosted").
    """
    by_session: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        by_session[event.get("session_id")].append(event)
    export = FocusExport()
    left_out = _LeftOut()
    prices = UnitPrices()
    for session_events in by_session.values():
        _session_rows(session_events, export, left_out, prices, billing_account, gpu_provider)
    export.rows.sort(key=lambda r: (r["ChargePeriodStart"], r["x_SessionId"] or "",
                                    r["ServiceCategory"], r["SkuId"] or "", r["SkuMeter"] or ""))
    _warn_left_out(export, left_out)
    return export


# -- one session --------------------------------------------------------------------------------

def _session_rows(events: list[Mapping[str, Any]], export: FocusExport, left_out: _LeftOut,
                  prices: UnitPrices, billing_account: str, gpu_provider: str) -> None:
    windows = [r for r in rows_from_events(events) if not r.get("parent_id")]
    start = next((e for e in events if e["event"] == "session_start"), {})
    for window in windows:  # time between cells carries the session's default tags
        if window["kind"] == "between_cells":
            window["tags"] = json.dumps(start.get("tags") or {})
    by_id = {r["window_id"]: r for r in windows if r["window_id"] is not None}
    between = next((r for r in windows if r["kind"] == "between_cells"), None)
    ends = {e["window_id"]: e for e in events
            if e["event"].endswith("_end") and e.get("window_id") in by_id}
    context = _Context(billing_account, gpu_provider)

    llm: dict[tuple, _LlmCharge] = defaultdict(_LlmCharge)
    prices.overrides.clear()  # `%cost llm-price` lasts for its session only
    for event in events:
        if event["event"] == "rate_override" and event.get("meter") == "llm":
            prices.overrides[event["scope"]] = {
                k: Decimal(v) for k, v in event.items() if k.endswith("_mtok") and v is not None}
        if event["event"] != "llm_call":
            continue
        window = next((by_id[w] for w in event.get("window_ids") or () if w in by_id), between)
        _add_call(event, window, llm, prices, left_out)
    for (window_key, provider, model, kind, unit_price, source), charge in llm.items():
        window = by_id.get(window_key) if window_key != "between" else between
        export.rows.append(context.llm_row(window, provider, model, kind, unit_price, source,
                                           charge))

    for window in windows:
        if not window.get("gpu_held_s"):
            continue
        devices = _gpu_devices(window, ends.get(window["window_id"]), events, windows, ends)
        if devices is None:
            left_out.gpu_seconds += window["gpu_held_s"]
            continue
        for device in devices:
            if device["unit_price"] is None:
                left_out.gpu_seconds += device["held_s"]
            elif device["hours"] > 0:
                export.rows.append(context.gpu_row(window, device))


def _add_call(event: Mapping[str, Any], window: Mapping[str, Any] | None,
              llm: dict[tuple, _LlmCharge], prices: UnitPrices, left_out: _LeftOut) -> None:
    attributes = event.get("attributes") or {}
    quantities = event.get("quantities") or {}
    counts = token_counts(quantities)
    if event.get("cost_usd") is None:
        left_out.llm_calls += 1
        left_out.llm_tokens += sum(counts.values())
        left_out.models.add(event.get("key"))
        return
    if Decimal(event["cost_usd"]) == 0 and not any(counts.values()):
        return  # failed before any usage: nothing was charged
    window_key = "between" if window is None or window.get("window_id") is None \
        else window["window_id"]
    provider = _provider_id(attributes)
    model = event.get("key") or "unknown"
    source = attributes.get("price_source")
    estimated = attributes.get("usage_source") == "estimated"
    charges = split_call(event, prices)
    if charges is None:  # not linear in tokens: the call is one priced request
        key = (window_key, provider, model, "request", Decimal(event["cost_usd"]),
               (source, event.get("id")))
        charge = llm[key]
        charge.tokens += sum(counts.values())
        charge.reasoning += int(quantities.get("reasoning_tokens") or 0)
        charge.calls.add(event.get("id"))
        charge.estimated |= estimated
        return
    for part in charges:
        charge = llm[(window_key, provider, model, part.kind, part.unit_price_usd,
                      (source, estimated))]
        charge.tokens += part.tokens
        if part.kind == "output":
            charge.reasoning += int(quantities.get("reasoning_tokens") or 0)
        charge.calls.add(event.get("id"))
        charge.estimated |= estimated


def _provider_id(attributes: Mapping[str, Any]) -> str:
    """genai-prices' provider of the price (litellm's calls name the real one there)."""
    source = attributes.get("price_source") or ""
    if source.startswith("genai-prices") and "/" in source:
        return source.split()[-1].split("/")[0]
    return attributes.get("provider") or "unknown"


# -- GPU ---------------------------------------------------------------------------------------

def _device(key: str, held_s: float, rate: Mapping[str, Any] | None) -> dict[str, Any]:
    usd = (rate or {}).get("usd_per_hour")
    fraction = (rate or {}).get("fraction")
    unit_price = None
    if usd is not None and fraction is not None:
        unit_price = (Decimal(usd) * Decimal(repr(fraction))).quantize(_PRICE_PLACES)
    hours = (Decimal(repr(round(held_s, 6))) / 3600).quantize(_HOUR_PLACES)
    name = key.split(":", 1)[1] if ":" in key else key  # "0:NVIDIA H200": index and name
    return {"key": key, "held_s": held_s, "hours": hours, "unit_price": unit_price,
            "model": (rate or {}).get("model") or name, "source": (rate or {}).get("source")}


def _gpu_devices(window: Mapping[str, Any], end: Mapping[str, Any] | None,
                 events: list[Mapping[str, Any]], windows: list[Mapping[str, Any]],
                 ends: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The GPUs a window held, each with its held time and hourly price; None if unknown."""
    gpu = ((end or {}).get("meters") or {}).get("gpu")
    if gpu and gpu.get("by_key"):
        rates = (gpu.get("detail") or {}).get("rates") or {}
        return [_device(k, f.get("held_s") or 0.0, rates.get(k)) for k, f in gpu["by_key"].items()]
    if window["kind"] != "between_cells":
        return None
    # Between cells: the session's per-GPU totals less its windows'.
    session_end = next((e for e in reversed(events) if e["event"] == "session_end"), None)
    gpu = ((session_end or {}).get("meters") or {}).get("gpu")
    if gpu and gpu.get("by_key"):
        rates = (gpu.get("detail") or {}).get("rates") or {}
        devices = []
        for key, figures in gpu["by_key"].items():
            inside = sum((((ends.get(w["window_id"]) or {}).get("meters") or {}).get("gpu") or {})
                         .get("by_key", {}).get(key, {}).get("held_s") or 0.0 for w in windows)
            devices.append(_device(key, max((figures.get("held_s") or 0.0) - inside, 0.0),
                                   rates.get(key)))
        return devices
    # A killed session wrote no per-GPU totals: one rate for the whole session, or unknown.
    rates = {json.dumps(r, sort_keys=True): r for e in ends.values()
             for r in ((((e.get("meters") or {}).get("gpu") or {}).get("detail") or {})
                       .get("rates") or {}).values()}
    if len(rates) != 1:
        return None
    return [_device("between cells", window["gpu_held_s"], next(iter(rates.values())))]


# -- rows --------------------------------------------------------------------------------------

@dataclass
class _Context:
    billing_account: str
    gpu_provider: str

    def base(self, window: Mapping[str, Any] | None) -> dict[str, Any]:
        window = window or {}
        start, end = _charge_period(window.get("start"), window.get("end"))
        period_start, period_end = _billing_period(start)
        return {
            "BillingAccountId": self.billing_account, "BillingAccountName": self.billing_account,
            "BillingCurrency": "USD", "BillingPeriodStart": period_start,
            "BillingPeriodEnd": period_end, "ChargeCategory": "Usage", "ChargeClass": None,
            "ChargeFrequency": "Usage-Based", "ChargePeriodStart": start, "ChargePeriodEnd": end,
            "PricingCategory": "Standard",
            "SubAccountId": window.get("project"), "SubAccountName": window.get("project"),
            "Tags": _tags(window),
            "x_SessionId": window.get("session_id"), "x_WindowId": window.get("window_id"),
            "x_WindowKind": window.get("kind"), "x_NotebookPath": window.get("notebook_path"),
            "x_NotebookId": window.get("notebook_id"), "x_CellId": window.get("cell_id"),
            "x_ExecutionCount": window.get("execution_count"), "x_Label": window.get("label"),
            "x_User": window.get("user"), "x_Team": window.get("team"),
            "x_Project": window.get("project"), "x_Status": window.get("status"),
        }

    def llm_row(self, window, provider: str, model: str, kind: str, unit_price: Decimal,
                source: tuple, charge: _LlmCharge) -> dict[str, Any]:
        name, service = _PROVIDERS.get(provider, (provider.title(), f"{provider.title()} API"))
        quantity = 1 if kind == "request" else charge.tokens
        meter = _METERS[kind]
        price_source = source[0]
        return _priced({
            **self.base(window),
            "ChargeDescription": f"{model}: {meter.lower()}"
                                 + (" (reasoning included)" if kind == "output" and charge.reasoning else ""),
            "ConsumedQuantity": Decimal(charge.tokens), "ConsumedUnit": "Tokens",
            "InvoiceIssuerName": name, "ProviderName": name, "PublisherName": name,
            "HostProviderName": name, "ServiceProviderName": name,
            "PricingUnit": "Requests" if kind == "request" else "Tokens",
            "ResourceId": None, "ResourceName": None, "ResourceType": None,
            "ServiceCategory": "AI and Machine Learning", "ServiceSubcategory": "Generative AI",
            "ServiceName": service, "SkuId": f"{provider}/{model}", "SkuMeter": meter,
            "SkuPriceId": f"{provider}/{model}:{kind}:{price_source or 'unknown'}",
            "SkuPriceDetails": {"x_TokenKind": kind, "x_PriceSource": price_source},
            "x_LlmCalls": len(charge.calls), "x_ReasoningTokens": charge.reasoning or None,
            "x_CostIsEstimate": charge.estimated, "x_PriceSource": price_source,
        }, unit_price, Decimal(quantity))

    def gpu_row(self, window, device: Mapping[str, Any]) -> dict[str, Any]:
        name = self.gpu_provider
        model = device["model"] or "GPU"
        return _priced({
            **self.base(window),
            "ChargeDescription": f"{model} GPU held"
                                 + (" between cells" if window["kind"] == "between_cells" else ""),
            "ConsumedQuantity": device["hours"], "ConsumedUnit": "GPU-Hours",
            "InvoiceIssuerName": name, "ProviderName": name, "PublisherName": name,
            "HostProviderName": name, "ServiceProviderName": name, "PricingUnit": "GPU-Hours",
            "ResourceId": device["key"], "ResourceName": model, "ResourceType": "GPU",
            "ServiceCategory": "Compute", "ServiceSubcategory": "Other (Compute)",
            "ServiceName": "GPU compute", "SkuId": f"gpu/{model}", "SkuMeter": "GPU Time",
            "SkuPriceId": f"gpu/{model}:{device['unit_price']}/hour",
            "SkuPriceDetails": {"GpuCount": 1, "x_RateSource": device["source"]},
            "x_LlmCalls": None, "x_ReasoningTokens": None, "x_CostIsEstimate": True,
            "x_PriceSource": device["source"],
        }, device["unit_price"], device["hours"])


def _priced(row: dict[str, Any], unit_price: Decimal, quantity: Decimal) -> dict[str, Any]:
    cost = _EXACT.multiply(unit_price, quantity)  # Inexact raises: the rule must hold exactly
    row.update(ListUnitPrice=unit_price, ContractedUnitPrice=unit_price, PricingQuantity=quantity,
               ListCost=cost, ContractedCost=cost, BilledCost=cost, EffectiveCost=cost)
    return row


def _tags(window: Mapping[str, Any]) -> dict[str, Any]:
    """The user's tags as they are (a valueless one is ``true``, as FOCUS says), then nbcost's
    own under the provider prefix ``nbcost/``."""
    tags: dict[str, Any] = {k: (v if v not in ("", None) else True)
                            for k, v in json.loads(window.get("tags") or "{}").items()}
    own = {"user": window.get("user"), "team": window.get("team"),
           "project": window.get("project"), "notebook": window.get("notebook_path"),
           "notebook_id": window.get("notebook_id"), "cell": window.get("cell_id"),
           "execution_count": window.get("execution_count"), "label": window.get("label"),
           "session": window.get("session_id")}
    tags.update({f"nbcost/{k}": v for k, v in own.items() if v is not None})
    return tags


def _charge_period(start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    """Whole seconds (FOCUS's resolution), widened outwards; never empty (end is exclusive)."""
    start = start or end or dt.datetime.now(dt.timezone.utc)
    end = end or start
    first = dt.datetime.fromtimestamp(math.floor(start.timestamp()), dt.timezone.utc)
    last = dt.datetime.fromtimestamp(math.ceil(end.timestamp()), dt.timezone.utc)
    return first, max(last, first + dt.timedelta(seconds=1))


def _billing_period(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month (UTC) the charge starts in."""
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(first.year, first.month)[1]
    return first, first + dt.timedelta(days=days)


def _warn_left_out(export: FocusExport, left_out: _LeftOut) -> None:
    parts = []
    if left_out.llm_calls:
        models = ", ".join(sorted(str(m) for m in left_out.models))
        parts.append(f"{left_out.llm_calls} LLM call{'s' * (left_out.llm_calls != 1)} without a "
                     f"price ({left_out.llm_tokens:,} tokens; {models})")
    if left_out.gpu_seconds:
        parts.append(f"{left_out.gpu_seconds:,.1f} GPU-seconds without a rate")
    if parts:
        export.warnings.append(
            f"left out of the FOCUS file: {' and '.join(parts)}. FOCUS has no way to state a "
            f"charge of unknown cost; price them (%cost llm-price, %cost gpu-rate or "
            f"NBCOST_GPU_RATE) in the sessions that use them.")


# -- writing -----------------------------------------------------------------------------------

def _plain(value: Any, type_: str) -> Any:
    """A value as FOCUS's CSV writes it: plain decimals, ``YYYY-MM-DDTHH:mm:ssZ``, JSON text."""
    if value is None:
        return None
    if type_ in (MONEY, NUMBER):
        # Always with a decimal point: FOCUS allows "400", but a reader that infers types
        # (pandas, and so focus-validator) would take a column of whole numbers for integers.
        text = format(value.normalize(), "f") if value else "0"
        return text if "." in text else text + ".0"
    if type_ == DATETIME:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if type_ == JSON:
        return json.dumps({k: v for k, v in value.items() if v is not None}, sort_keys=True)
    return value


def check_path(path: Path) -> Path:
    """``path`` if a FOCUS file can be written there, else a ConfigError that says why."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"a FOCUS file is .csv or .parquet; got {path.name!r}")
    if not path.parent.exists():
        raise ConfigError(f"the folder {path.parent} does not exist")
    return path


def write_focus(export: FocusExport, path: Path) -> Path:
    """Write the rows to ``path``: CSV for ``.csv``, Parquet for ``.parquet``/``.pq``."""
    path = check_path(path)
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow([name for name, _ in COLUMNS])
            for row in export.rows:
                writer.writerow(["" if (v := _plain(row.get(n), t)) is None else v
                                 for n, t in COLUMNS])
    else:
        import pyarrow.parquet as pq

        pq.write_table(to_arrow(export), path)
    return path


def to_arrow(export: FocusExport):
    """The rows as Arrow: money and quantities ``decimal128(38, 24)`` (exact), times
    ``timestamp[ms, UTC]`` (Parquet has no seconds unit; the values are whole seconds), JSON
    columns as text."""
    import pyarrow as pa

    types = {MONEY: pa.decimal128(38, SCALE), NUMBER: pa.decimal128(38, SCALE),
             STRING: pa.string(), DATETIME: pa.timestamp("ms", tz="UTC"), JSON: pa.string(),
             INT: pa.int64(), BOOL: pa.bool_()}
    scale = Decimal(1).scaleb(-SCALE)
    arrays = []
    for name, type_ in COLUMNS:
        values = [row.get(name) for row in export.rows]
        if type_ in (MONEY, NUMBER):
            values = [None if v is None else _EXACT.quantize(v, scale) for v in values]
        elif type_ == JSON:
            values = [_plain(v, JSON) for v in values]
        arrays.append(pa.array(values, type=types[type_]))
    return pa.Table.from_arrays(arrays, names=[name for name, _ in COLUMNS])
