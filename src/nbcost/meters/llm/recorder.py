"""The state every LLM wrapper shares, and the one path from a finished call to a ``Usage``.

A wrapper asks :meth:`Recorder.begin` for a :class:`Call` (which checks the budget before any
request is sent), lets the SDK run, then hands the result to :meth:`Recorder.complete`: a plain
response is read and recorded at once; a stream comes back proxied and is recorded when it ends.

Two error rules. The SDK's own exceptions reach the user unchanged (the call is recorded with
``status="error"``). nbcost's own failures are logged, said once, and never break the call.
"""

from __future__ import annotations

import contextvars
import logging
import time
from decimal import Decimal
from typing import Any

from ...errors import BudgetExceeded
from ..base import Usage
from . import selfhosted
from .calls import Call, CallSpec, clean_url, request_hash, url_origin
from .selfhosted import LOCAL_ENGINES, SELF_HOSTED, SOURCE, is_private_url, listed_self_hosted
from .tokens import Estimator, text_of
from .usage import TokenCounts

__all__ = ["INSIDE_CALL", "Call", "CallSpec", "Recorder"]

log = logging.getLogger("nbcost.llm")

#: True while a tracked call runs, so SDK calls it makes underneath (litellm → openai) are not
#: recorded a second time.
INSIDE_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("nbcost_llm_inside", default=False)


class Recorder:
    """Wrapper state: the sink, prices, the tokenizer, and whether recording is on."""

    def __init__(self, sink: Any) -> None:
        from ...pricing.llm import shared_price_book

        self.sink = sink
        self.active = True
        self.prices = shared_price_book()
        self.estimator = Estimator(sink.warn_once)

    # --- call lifecycle -------------------------------------------------------------------

    def begin(self, spec: CallSpec, instance: Any, kwargs: dict) -> Call | None:
        """A new call, or None when it must not be recorded (inactive, nested, nbcost fault).
        Raises BudgetExceeded before any request is sent."""
        __tracebackhide__ = True  # IPython shows the user's frames, not nbcost's
        if not self.active or INSIDE_CALL.get():
            return None
        try:
            self.sink.check_budget("llm")
        except BudgetExceeded:
            raise
        except Exception as exc:
            self.fault("budget check", exc)
        try:
            streaming = bool(spec.streaming(kwargs))
            return Call(spec, clean_url(spec.base_url(instance, kwargs)), _model_of(kwargs),
                        streaming, self._request_hash(kwargs), kwargs)
        except Exception as exc:
            self.fault("starting a call record", exc)
            return None

    def _request_hash(self, kwargs: dict) -> str | None:
        """The request's hash; a request nbcost cannot hash is still recorded, without one."""
        try:
            return request_hash(kwargs)
        except Exception as exc:
            self.fault("hashing a request", exc)
            return None

    def complete(self, call: Call, result: Any) -> Any:
        """Read a response (or proxy a stream); always returns what the user should get."""
        try:
            out = call.spec.on_result(self, call, result)
        except Exception as exc:  # still record the call, with what is known
            self.fault(f"reading a {call.spec.provider} response", exc)
            out = result
        if not call.proxied:  # a stream proxy records the call when the stream ends
            call.ended = True
            self.finish(call)
        return out

    def fail(self, call: Call, exc: BaseException) -> None:
        """The SDK raised: record the failed call (the caller re-raises the exception). A
        TypeError is the SDK refusing the call's arguments (a required one missing) before
        anything was sent: not an LLM call, so not recorded."""
        if isinstance(exc, TypeError):
            call.done = True
            return
        call.error = type(exc).__name__
        self.finish(call)

    def finish(self, call: Call) -> None:
        """Record ``call`` exactly once; safe from any thread and from a GC finaliser."""
        if call.done:
            return
        call.done = True
        try:
            usage = self._usage(call)
        except Exception as exc:
            self.fault("recording an LLM call", exc)
            return
        finally:
            call.kwargs, call.pieces = None, []  # drop the request and the text at once
        try:
            self.sink.record(usage)
        except Exception as exc:
            self.fault("handing an LLM call to the session", exc)
            return
        if usage.attributes.get("provider") == SELF_HOSTED:
            try:
                note_self_hosted(self.sink, usage)
            except Exception as exc:
                self.fault("noting a self-hosted generation", exc)

    # --- building the record --------------------------------------------------------------

    def _usage(self, call: Call) -> Usage:
        latency_s = time.perf_counter() - call.started
        flags: list[str] = []
        counts, source = None, "api"
        if call.usage is not None:
            counts = call.spec.read_usage(call.usage)
        if call.error is None and (counts is None or not call.ended):
            estimate = self._estimate(call)
            if counts is None:
                counts, source = estimate, "estimated"
            elif estimate.output_tokens > counts.output_tokens:  # a stream cut short
                counts = TokenCounts(**{**_fields(counts), "output_tokens": estimate.output_tokens})
                source = "estimated"
            if not call.ended:
                flags.append("partial")
        counts = counts or TokenCounts()
        settings = self.sink.settings
        models = _candidates(call, settings)
        if call.error is not None:
            flags.append("error")
        # Self-hosted: a local engine, a listed server, or (below) an unknown model at a private
        # address. Its dollars are GPU time, which the GPU and local meters measure.
        hosted = call.spec.provider in LOCAL_ENGINES or listed_self_hosted(call.base_url, settings)
        private = not hosted and selfhosted.auto(settings) and is_private_url(call.base_url)
        if call.error is not None and call.usage is None:
            cost: Decimal | None = Decimal(0)  # failed before any usage was reported: not billed
            key, price_source = models[0] if models else "unknown", None
        elif hosted:
            cost, key, price_source = Decimal(0), models[0] if models else "unknown", SOURCE
        else:  # a stream that failed midway is billed for what it reported
            price = self.prices.price(counts.genai_usage(), models, call.spec.provider,
                                      call.base_url, settings, call.service_tier,
                                      by_name_alone=not private)
            cost, key, price_source = price.cost_usd, price.model, price.source
            if cost is None and private:
                hosted, cost, price_source = True, Decimal(0), SOURCE
            elif cost is None:
                flags.append("unpriced")
                self.sink.warn_once(f"llm-unpriced:{key}", f"nbcost: no price known for LLM model "
                                    f"{key!r}; its calls are recorded as unpriced (tokens only). "
                                    f"Price it with `%cost llm-price {key} --input USD --output "
                                    f"USD` (per million tokens) or c.NbCost.llm_prices in "
                                    f"ipython_config.py.")
        if source == "estimated":
            flags.append("estimated")
        if call.interrupted:
            flags.append("interrupted")
        return Usage(
            meter="llm", event="llm_call", key=key,
            quantities={
                "calls": 1,
                "input_tokens": counts.input_tokens,
                "cache_read_tokens": counts.cache_read_tokens,
                "cache_write_tokens": counts.cache_write_tokens,
                "output_tokens": counts.output_tokens,
                "reasoning_tokens": counts.reasoning_tokens,
                "errors": 1 if call.error else 0,
                "estimated_calls": 1 if source == "estimated" else 0,
            },
            cost_usd=cost,
            attributes=self._attributes(call, counts, latency_s, source, price_source, hosted),
            flags=tuple(flags),
        )

    def _attributes(self, call: Call, counts: TokenCounts, latency_s: float, source: str,
                    price_source: str | None, hosted: bool = False) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "provider": SELF_HOSTED if hosted else call.spec.provider, "api": call.spec.api,
            "base_url": url_origin(call.base_url),  # never the path: it may hold a key
            "request_model": call.request_model, "response_model": call.response_model,
            "service_tier": call.service_tier, "batch": call.service_tier == "batch",
            "latency_s": round(latency_s, 6), "streaming": call.streaming,
            "status": "error" if call.error else "interrupted" if call.interrupted else "ok",
            "usage_source": source,
            "request_hash": call.request_hash, "price_source": price_source,
        }
        if call.error:
            attributes["error_type"] = call.error
        for name in ("cache_write_5m_tokens", "cache_write_1h_tokens"):
            if getattr(counts, name) is not None:
                attributes[name] = getattr(counts, name)
        for name in ("input_audio_tokens", "output_audio_tokens", "input_image_tokens"):
            if getattr(counts, name):
                attributes[name] = getattr(counts, name)
        if source == "estimated":
            attributes["estimate_method"] = self.estimator.method
        if hosted:
            attributes["engine"] = call.spec.provider  # openai (a server), transformers, vllm
            if call.extra:
                attributes.update(call.extra)  # an engine's own timings (prefill_s, decode_s)
        return attributes

    def _estimate(self, call: Call) -> TokenCounts:
        spec, kwargs = call.spec, call.kwargs or {}
        if spec.estimate_input is not None:
            inp = spec.estimate_input(self.estimator, kwargs)
        else:
            inp = self.estimator.count_messages(kwargs.get("messages") or [])
        return TokenCounts(input_tokens=inp, output_tokens=self.estimator.count("".join(call.pieces)))

    def fault(self, where: str, exc: BaseException) -> None:
        """nbcost's own failure: log it, say it once, carry on."""
        log.debug("nbcost LLM meter failed while %s", where, exc_info=exc)
        try:
            self.sink.warn_once(f"llm-fault:{where}", f"nbcost: an internal error while {where} "
                                f"({type(exc).__name__}: {exc}); the LLM call itself was not "
                                "affected, but it may be missing from the cost record.")
        except Exception:
            log.debug("nbcost: warn_once failed", exc_info=True)


def note_self_hosted(sink: Any, usage: Usage) -> None:
    """Hand a self-hosted call to the session's local meter, adding the meter on the first one
    (so a session without local models pays nothing for it)."""
    meters = getattr(sink, "meters", None)
    if not isinstance(meters, dict):  # a sink that is not a Session (unit tests)
        return
    meter = meters.get("local")
    if meter is None:
        from ..selfhosted import LocalModelMeter

        try:
            sink.add_meter(LocalModelMeter())
        except ValueError:  # another thread added it first
            pass
        meter = meters.get("local")
    note = getattr(meter, "note", None)
    if note is not None:
        note(usage)


def _model_of(kwargs: dict) -> str | None:
    model = kwargs.get("model")
    return model if isinstance(model, str) else None


def _fields(counts: TokenCounts) -> dict[str, Any]:
    return {name: getattr(counts, name) for name in TokenCounts.__slots__}


def _candidates(call: Call, settings: Any) -> list[str]:
    """Model names to price by, best first: an Azure deployment's model, the response's, the
    request's."""
    deployments = getattr(settings, "azure_deployments", None)
    seen: list[str] = []
    for name in (deployments.get(call.request_model) if deployments else None,
                 call.response_model, call.request_model):
        if name and name.startswith("models/"):  # Gemini's resource-name form
            name = name[len("models/"):]
        if name and name not in seen:
            seen.append(name)
    return seen


def input_text_tokens(estimator: Estimator, value: Any) -> int:
    """Estimate for non-chat inputs (embeddings, responses ``input``, Gemini ``contents``)."""
    return estimator.count(text_of(value))
