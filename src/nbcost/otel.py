"""OpenTelemetry export: spend as spans and metrics over OTLP/HTTP (``pip install nbcost[otel]``).

Spans, one trace per session:

* ``nbcost session``: the session, parent of its top-level windows;
* ``nbcost cell`` / ``nbcost track``: a window, with nbcost's figures (``nbcost.cost_usd`` as a
  decimal string, ``nbcost.unpriced``, GPU held/busy seconds, LLM tokens) and the user's tags;
* ``{operation} {model}`` (``chat gpt-4o``): an LLM call, child of the innermost window open at
  the time, with the GenAI semantic-convention attributes (``gen_ai.usage.input_tokens``
  *includes* cached tokens, as the convention says) and its cost.

Metrics, named as Prometheus wants them (prefix, base unit, ``_total`` on counters, low-cardinality
labels only): ``nbcost_cost_usd_total{meter,model}``, ``nbcost_llm_tokens_total{token_type,model,
provider}``, ``nbcost_llm_calls_total{model,provider,status}``, ``nbcost_gpu_held_seconds_total``,
``nbcost_gpu_busy_seconds_total``. A metric is a float; the exact decimal cost is on the spans.

Two ways in, one translation (:class:`Translator`, spend-log event → spans and counters):
:func:`replay` sends spend logs after the fact, spans at their original times;
:func:`attach` makes a live session a source, as a session listener whose spans go through a
batch processor (export happens on its own thread; a failure becomes one warning, never an
error in the user's cell). Span and trace ids derive from nbcost's ids, so a replay of a log
that was also exported live gives the same ids. No prompt, completion, key or header is in the
spend log, so none can reach a span.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlparse

from .errors import ConfigError
from .rows import parse_ts

__all__ = ["Sent", "Translator", "attach", "replay"]

#: gen_ai.provider.name (and the older gen_ai.system) for genai-prices' provider ids.
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "google": "gcp.gemini",
                  "mistral": "mistral_ai", "azure": "azure.ai.openai", "aws": "aws.bedrock",
                  "groq": "groq", "deepseek": "deepseek", "x-ai": "x_ai", "cohere": "cohere"}
#: gen_ai.operation.name for the SDK APIs nbcost patches.
OPERATIONS = {"chat": "chat", "messages": "chat", "responses": "chat",
              "generate": "generate_content", "embeddings": "embeddings"}
_TOKENS = {"input": "input_tokens", "cache_read": "cache_read_tokens",
           "cache_write": "cache_write_tokens", "output": "output_tokens",
           "reasoning": "reasoning_tokens"}
_log = logging.getLogger("nbcost.otel")


def _require_sdk():
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        raise ConfigError("the OpenTelemetry export needs the otel extra: "
                          "pip install 'nbcost[otel]'") from None


def _id(text: str, bits: int) -> int:
    """A stable non-zero span (64-bit) or trace (128-bit) id for one of nbcost's ids."""
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:bits // 8], "big")
    return value or 1


def _nanos(text: str | None) -> int | None:
    moment = parse_ts(text)
    return None if moment is None else int(round(moment.timestamp() * 1e6)) * 1000


def _endpoint(base: str, signal: str) -> str:
    parsed = urlparse(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"the OTLP endpoint must be an http(s) URL like http://localhost:4318; "
                          f"got {base!r}")
    base = base.rstrip("/")
    for known in ("/v1/traces", "/v1/metrics"):
        if base.endswith(known):
            base = base[:-len(known)]
    return f"{base}/v1/{signal}"


@dataclass
class Sent:
    """What a replay handed to the exporters (the metrics go with them)."""

    spans: int = 0


class Translator:
    """Spend-log events → finished spans (handed to ``on_span``) and counter increments.

    Feed it a session's events in order; it keeps what it needs of open windows (their start
    events) and the session's GPU figures, nothing else.
    """

    def __init__(self, on_span: Callable[[Any], None], meter: Any, service_name: str = "nbcost"):
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        from . import __version__

        self._on_span = on_span
        self._resource = Resource.create({"service.name": service_name})
        self._scope = InstrumentationScope("nbcost", __version__)
        self._starts: dict[str, Mapping[str, Any]] = {}
        self._sessions: dict[str, Mapping[str, Any]] = {}
        self._top_gpu: dict[str, dict[str, float | Decimal]] = {}
        self._lock = threading.Lock()  # a session's events come from the user's threads too
        self.spans = 0
        # Dollars add up in Decimal here and are observed as one float per series, so no float
        # error accumulates over a long session.
        self._cost: dict[tuple[tuple[str, str], ...], Decimal] = {}
        meter.create_observable_counter(
            "nbcost_cost_usd_total", [self._observe_cost], unit="USD",
            description="Priced spend, by meter (llm, gpu) and model")
        self.tokens = meter.create_counter("nbcost_llm_tokens_total", unit="{token}",
                                           description="LLM tokens by kind; input includes cached")
        self.calls = meter.create_counter("nbcost_llm_calls_total", unit="{call}",
                                          description="LLM calls by model, provider and status")
        self.held = meter.create_counter("nbcost_gpu_held_seconds_total", unit="s",
                                         description="GPU time held (the billing basis)")
        self.busy = meter.create_counter("nbcost_gpu_busy_seconds_total", unit="s",
                                         description="GPU time busy running kernels")

    def _add_cost(self, usd: Decimal, labels: Mapping[str, str]) -> None:
        key = tuple(sorted(labels.items()))
        self._cost[key] = self._cost.get(key, Decimal(0)) + usd

    def _observe_cost(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            totals = list(self._cost.items())
        return [Observation(float(usd), dict(key)) for key, usd in totals]

    # -- events ---------------------------------------------------------------------------

    def on_event(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            self._on_event(event)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "session_start":
            self._sessions[event["session_id"]] = event
        elif kind in ("cell_start", "track_start"):
            self._starts[event["window_id"]] = event
        elif kind in ("cell_end", "track_end"):
            self._window(event)
        elif kind == "llm_call":
            self._llm_call(event)
        elif kind == "session_end":
            self._session_end(event)

    def finish(self, last_ts: str | None) -> None:
        """After a replay: windows a dead kernel never ended, as interrupted spans."""
        for start in list(self._starts.values()):
            self._window({**start, "ended_at": last_ts or start.get("ts"),
                          "status": "interrupted"})

    # -- spans ----------------------------------------------------------------------------

    def _span(self, name: str, event: Mapping[str, Any], span_key: str, parent_key: str | None,
              start: int | None, end: int | None, attributes: Mapping[str, Any],
              client: bool = False, error: str | None = None) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        trace_id = _id(f"trace:{event.get('session_id')}", 128)

        def context(key: str) -> SpanContext:
            return SpanContext(trace_id, _id(key, 64), is_remote=False,
                               trace_flags=TraceFlags(TraceFlags.SAMPLED))

        end = end or start
        span = ReadableSpan(
            name=name, context=context(span_key),
            parent=context(parent_key) if parent_key else None, resource=self._resource,
            attributes={k: v for k, v in attributes.items() if v is not None},
            kind=SpanKind.CLIENT if client else SpanKind.INTERNAL,
            status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
            start_time=start, end_time=max(end or 0, start or 0) or None,
            instrumentation_scope=self._scope)
        self.spans += 1
        self._on_span(span)

    def _common(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return {"nbcost.session.id": event.get("session_id"),
                "nbcost.notebook.path": event.get("notebook_path"),
                "nbcost.notebook.id": event.get("notebook_id"), "nbcost.user": event.get("user"),
                "nbcost.team": event.get("team"), "nbcost.project": event.get("project")}

    def _window(self, end: Mapping[str, Any]) -> None:
        window_id = end["window_id"]
        start = self._starts.pop(window_id, end)
        meters = end.get("meters") or {}
        gpu = (meters.get("gpu") or {}).get("quantities") or {}
        llm = (meters.get("llm") or {}).get("quantities") or {}
        kind = end.get("kind") or start.get("kind") or "cell"
        attributes = {
            **self._common(end), "nbcost.window.id": window_id, "nbcost.window.kind": kind,
            "nbcost.cell.id": end.get("cell_id"),
            "nbcost.cell.execution_count": end.get("execution_count"),
            "nbcost.label": end.get("label"), "nbcost.status": end.get("status"),
            "nbcost.cost_usd": end.get("cost_usd"), "nbcost.unpriced": bool(end.get("unpriced")),
            "nbcost.flags": ",".join(end.get("flags") or ()) or None,
            "nbcost.gpu.held_s": gpu.get("held_s"), "nbcost.gpu.busy_s": gpu.get("busy_s"),
            "nbcost.gpu.cost_usd": (meters.get("gpu") or {}).get("cost_usd") if gpu else None,
            "nbcost.llm.calls": llm.get("calls"),
            "nbcost.llm.cost_usd": (meters.get("llm") or {}).get("cost_usd") if llm else None,
            **{f"nbcost.llm.{k}": llm.get(k) for k in _TOKENS.values()},
            **{f"nbcost.tag.{k}": str(v) for k, v in (end.get("tags") or {}).items()},
        }
        parent = end.get("parent_id") or f"session:{end.get('session_id')}"
        status = end.get("status")
        self._span(f"nbcost {kind}", end, window_id, parent, _nanos(start.get("started_at")),
                   _nanos(end.get("ended_at")), attributes,
                   error=status if status in ("error", "interrupted") else None)
        if not end.get("parent_id") and gpu:  # top level: nested windows are inside it
            self._gpu(end, gpu, (meters.get("gpu") or {}).get("cost_usd"))

    def _llm_call(self, event: Mapping[str, Any]) -> None:
        a = event.get("attributes") or {}
        q = event.get("quantities") or {}
        provider = _provider(a)
        system = PROVIDER_NAMES.get(provider, provider)
        operation = OPERATIONS.get(a.get("api"), a.get("api") or "chat")
        model = event.get("key") or a.get("request_model") or "unknown"
        end = _nanos(event.get("ts"))
        start = end - int((a.get("latency_s") or 0) * 1e9) if end else None
        host = urlparse(a.get("base_url") or "").hostname
        attributes = {
            **self._common(event),
            "gen_ai.operation.name": operation, "gen_ai.provider.name": system,
            "gen_ai.system": system, "gen_ai.request.model": a.get("request_model") or model,
            "gen_ai.response.model": a.get("response_model"),
            "gen_ai.usage.input_tokens": q.get("input_tokens"),  # cached included, as the log
            "gen_ai.usage.output_tokens": q.get("output_tokens"),
            "gen_ai.usage.cache_read.input_tokens": q.get("cache_read_tokens"),
            "gen_ai.usage.cache_creation.input_tokens": q.get("cache_write_tokens"),
            "gen_ai.usage.reasoning.output_tokens": q.get("reasoning_tokens"),
            "server.address": host, "error.type": a.get("error_type"),
            "nbcost.cost_usd": event.get("cost_usd"),
            "nbcost.unpriced": event.get("cost_usd") is None,
            "nbcost.price_source": a.get("price_source"), "nbcost.priced_model": model,
            "nbcost.usage_source": a.get("usage_source"), "nbcost.streaming": a.get("streaming"),
            "nbcost.cell.id": event.get("cell_id"),
            "nbcost.cell.execution_count": event.get("execution_count"),
        }
        windows = event.get("window_ids") or ()
        parent = windows[-1] if windows else f"session:{event.get('session_id')}"
        self._span(f"{operation} {model}", event, f"call:{event.get('id')}", parent, start, end,
                   attributes, client=True, error=a.get("error_type"))
        labels = {"model": model, "provider": system}
        self.calls.add(int(q.get("calls") or 1), {**labels, "status": a.get("status") or "ok"})
        for token_type, key in _TOKENS.items():
            if q.get(key):
                self.tokens.add(int(q[key]), {**labels, "token_type": token_type})
        if event.get("cost_usd") is not None:
            self._add_cost(Decimal(event["cost_usd"]), {"meter": "llm", "model": model})

    def _gpu(self, event: Mapping[str, Any], gpu: Mapping[str, Any], cost: str | None) -> None:
        mine = self._top_gpu.setdefault(event.get("session_id"), {})
        for key in ("held_s", "busy_s"):
            if gpu.get(key):
                mine[key] = mine.get(key, 0.0) + gpu[key]
        if gpu.get("held_s"):
            self.held.add(float(gpu["held_s"]))
        if gpu.get("busy_s"):
            self.busy.add(float(gpu["busy_s"]))
        if cost is not None and Decimal(cost):
            mine["cost"] = mine.get("cost", Decimal(0)) + Decimal(cost)
            self._add_cost(Decimal(cost), {"meter": "gpu", "model": "gpu"})

    def _session_end(self, event: Mapping[str, Any]) -> None:
        session_id = event.get("session_id")
        start = self._sessions.pop(session_id, {})
        gpu_meter = (event.get("meters") or {}).get("gpu") or {}
        gpu = gpu_meter.get("quantities") or {}
        # What no top-level window saw (held between cells) counts now, so the counters add
        # up to the session's totals.
        seen = self._top_gpu.pop(session_id, {})
        rest = {k: max((gpu.get(k) or 0.0) - seen.get(k, 0.0), 0.0) for k in ("held_s", "busy_s")}
        if rest["held_s"]:
            self.held.add(rest["held_s"])
        if rest["busy_s"]:
            self.busy.add(rest["busy_s"])
        rest_cost = Decimal(gpu_meter.get("cost_usd") or 0) - seen.get("cost", Decimal(0))
        if rest_cost > 0:
            self._add_cost(rest_cost, {"meter": "gpu", "model": "gpu"})
        attributes = {**self._common(event), "nbcost.cost_usd": event.get("cost_usd"),
                      "nbcost.unpriced": any(m.get("unpriced")
                                             for m in (event.get("meters") or {}).values()),
                      "nbcost.gpu.held_s": gpu.get("held_s"), "nbcost.gpu.busy_s": gpu.get("busy_s")}
        self._span("nbcost session", event, f"session:{session_id}", None,
                   _nanos(start.get("started_at") or start.get("ts")),
                   _nanos(event.get("ended_at")), attributes)


def _provider(attributes: Mapping[str, Any]) -> str:
    source = attributes.get("price_source") or ""
    if source.startswith("genai-prices") and "/" in source:
        return source.split()[-1].split("/")[0]  # litellm's calls name the real provider here
    return attributes.get("provider") or "unknown"


# -- the pipeline ------------------------------------------------------------------------------

class _Pipeline:
    """A batch span processor and a meter provider exporting to one OTLP/HTTP endpoint."""

    def __init__(self, endpoint: str, service_name: str, timeout_s: float,
                 metric_interval_ms: int) -> None:
        _require_sdk()
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.spans = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=_endpoint(endpoint, "traces"), timeout=timeout_s))
        self.reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=_endpoint(endpoint, "metrics"), timeout=timeout_s),
            export_interval_millis=metric_interval_ms)
        self.meters = MeterProvider(metric_readers=[self.reader],
                                    resource=Resource.create({"service.name": service_name}))
        self.translator = Translator(self.spans.on_end, self.meters.get_meter("nbcost"),
                                     service_name)

    def flush(self) -> None:
        self.spans.force_flush()
        self.meters.force_flush()

    def close(self) -> None:
        self.spans.shutdown()
        self.meters.shutdown()


def replay(events: Iterable[Mapping[str, Any]], endpoint: str,
           service_name: str = "nbcost") -> Sent:
    """Send spend-log events to an OTLP/HTTP endpoint: spans at their original times, and
    the counters' totals. Raises ConfigError when the endpoint does not take them."""
    failures = _FailureLog()
    with failures.capturing():
        pipeline = _Pipeline(endpoint, service_name, timeout_s=10, metric_interval_ms=3_600_000)
        last_ts = None
        for event in events:
            pipeline.translator.on_event(event)
            last_ts = event.get("ts") or last_ts
        pipeline.translator.finish(last_ts)
        pipeline.flush()
        pipeline.close()
    if failures.messages:
        raise ConfigError(f"the OTLP endpoint {endpoint} did not take the export: "
                          f"{failures.messages[0]}")
    return Sent(pipeline.translator.spans)


class _FailureLog(logging.Handler):
    """Collects the OTLP exporters' and the batch processor's complaints (which they log
    rather than raise), so they become one message instead of lines in the user's output."""

    LOGGERS = ("opentelemetry.exporter.otlp.proto.http", "opentelemetry.sdk.trace.export",
               "opentelemetry.sdk.metrics._internal.export",
               "opentelemetry.exporter.http.transport")

    def __init__(self, on_first: Callable[[str], None] | None = None) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._on_first = on_first

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record must not break export
            message = str(record.msg)
        self.messages.append(message)
        if len(self.messages) == 1 and self._on_first is not None:
            self._on_first(message)

    def install(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)

    def remove(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)

    @contextlib.contextmanager
    def capturing(self):
        self.install()
        try:
            yield self
        finally:
            self.remove()


def attach(session, endpoint: str | None = None, service_name: str = "nbcost",
           metric_interval_s: float = 60.0) -> Callable[[], None]:
    """Export a live session's spend as it happens; returns ``detach`` (which flushes).

    ``endpoint``: the OTLP/HTTP base URL (default ``NBCOST_OTLP_ENDPOINT``). Spans leave on the
    batch processor's thread; a failure (the collector is down) is one warning, and the user's
    cells run on unaffected. Call it before the cells you want exported.
    """
    import os

    endpoint = endpoint or os.environ.get("NBCOST_OTLP_ENDPOINT")
    if not endpoint:
        raise ConfigError("nbcost.otel.attach needs an endpoint (or NBCOST_OTLP_ENDPOINT), "
                          "e.g. http://localhost:4318")
    failures = _FailureLog(lambda message: session.warn_once(
        "otel-export", f"nbcost: the OpenTelemetry export to {endpoint} failed ({message}); "
                       f"spend is still logged, and `nbcost export --format otlp` can send "
                       f"it later."))
    pipeline = _Pipeline(endpoint, service_name, timeout_s=5,
                         metric_interval_ms=int(metric_interval_s * 1000))
    failures.install()
    # The session's events so far (at least its session_start), so spans have their parents.
    try:
        from .ledger import read_log

        session.flush()
        for event in read_log(session.ledger_path).events:
            pipeline.translator.on_event(event)
    except Exception as exc:  # noqa: BLE001 - a missing log only loses the past
        _log.debug("nbcost: could not replay the log so far: %s", exc)

    def listener(event: dict) -> None:
        try:
            pipeline.translator.on_event(event)
        except Exception as exc:  # noqa: BLE001 - never the user's problem
            session.warn_once("otel-translate", f"nbcost: the OpenTelemetry export skipped "
                                                f"an event ({type(exc).__name__}: {exc}).")

    remove = session.add_listener(listener)
    closed = False

    def detach() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        remove()
        try:
            pipeline.close()  # flushes what is queued
        finally:
            failures.remove()
            atexit.unregister(detach)

    atexit.register(detach)
    return detach
