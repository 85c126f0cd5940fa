"""anthropic: messages create/parse/stream and beta messages, sync and async.

Usage in a stream: ``message_start`` carries input and cache counts (output 1);
``message_delta.usage`` is *cumulative* (and may repeat input counts when server tools ran), so
each delta's fields replace the running values, never add to them.
``messages.stream()`` posts the request itself (not through ``create``), so its patch starts
the record and proxies the raw event stream the helper reads.
"""

from __future__ import annotations

from typing import Any

from .patching import Patch, async_wrapper, sync_wrapper
from .recorder import Call, CallSpec, Recorder
from .stream import StreamManagerProxy, proxy_stream, read_or_proxy
from .tokens import Estimator, text_of
from .usage import from_anthropic, get

__all__ = ["PATCHES"]

_MESSAGES = "anthropic.resources.messages.messages"
_BETA = "anthropic.resources.beta.messages.messages"


def _base_url(instance: Any, kwargs: dict) -> Any:
    client = instance._client
    return getattr(client, "_base_url", None) or client.base_url  # an httpx URL; cleaned later


def _usage_dict(usage: Any) -> dict[str, Any]:
    dump = getattr(usage, "model_dump", None)
    return dump(exclude_none=True) if dump else {k: v for k, v in dict(usage).items() if v is not None}


def _read_message(call: Call, message: Any) -> None:
    call.usage = get(message, "usage")
    call.response_model = get(message, "model")
    call.service_tier = get(call.usage, "service_tier")


def _event(call: Call, event: Any) -> None:
    kind = event.type
    if kind == "content_block_delta":
        delta = event.delta
        text = getattr(delta, "text", None) or getattr(delta, "thinking", None) or getattr(
            delta, "partial_json", None)
        if text:
            call.pieces.append(text)
    elif kind == "message_start":
        message = event.message
        call.usage = _usage_dict(message.usage)
        call.response_model = message.model
        call.service_tier = call.usage.get("service_tier")
    elif kind == "message_delta" and event.usage is not None:
        running = dict(call.usage or {})
        running.update(_usage_dict(event.usage))  # cumulative: replace, never add
        call.usage = running


def _result(recorder: Recorder, call: Call, result: Any) -> Any:
    return read_or_proxy(recorder, call, result, _read_message)


def _input(estimator: Estimator, kwargs: dict) -> int:
    return estimator.count(text_of(kwargs.get("system"))) + estimator.count_messages(
        kwargs.get("messages") or [])


def _streaming(kwargs: dict) -> bool:
    return bool(kwargs.get("stream"))


MESSAGES = CallSpec("anthropic", "messages", _base_url, _streaming, _result, _event,
                    from_anthropic, _input)
PARSE = CallSpec("anthropic", "messages", _base_url, lambda kwargs: False, _result, None,
                 from_anthropic, _input)
STREAM = CallSpec("anthropic", "messages", _base_url, lambda kwargs: True, _result, _event,
                  from_anthropic, _input)


def _stream_helper(recorder: Recorder) -> Any:
    """``messages.stream()`` returns a manager that requests on ``__enter__``."""

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        call = recorder.begin(STREAM, instance, kwargs)  # budget checked before any request
        manager = wrapped(*args, **kwargs)
        if call is None:
            return manager
        try:
            return StreamManagerProxy(manager, lambda raw: proxy_stream(recorder, call, raw),
                                      on_error=lambda exc: recorder.fail(call, exc))
        except Exception as exc:
            recorder.fault("wrapping an anthropic stream helper", exc)
            return manager

    return wrapper


PATCHES = [
    Patch(module, f"{cls}.{method}", make)
    for module in (_MESSAGES, _BETA)
    for cls, wrap in (("Messages", sync_wrapper), ("AsyncMessages", async_wrapper))
    for method, make in (("create", wrap(MESSAGES)), ("parse", wrap(PARSE)),
                         ("stream", _stream_helper))
]
