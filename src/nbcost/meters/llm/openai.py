"""openai: chat completions (create/parse, the ``.stream()`` helper), responses
(create/parse/stream) and embeddings, sync and async, ``with_raw_response`` and
``with_streaming_response`` included.

The ``.stream()`` helpers call ``create(stream=True)`` underneath, so the ``create`` patch records
them; their own patch only makes sure leaving the ``with`` block finishes the record.
Usage in a chat stream is read from the chunks themselves, the last one wherever it appears
(Azure sends a content-filter chunk after the usage chunk). A chat stream whose caller did not
ask for usage (``stream_options={"include_usage": True}``) is estimated and flagged: nbcost does
not add the option, since that would add a chunk the user's code would see.
"""

from __future__ import annotations

from typing import Any

from .patching import Patch, async_wrapper, sync_wrapper
from .recorder import Call, CallSpec, Recorder, input_text_tokens
from .stream import StreamManagerProxy, read_or_proxy
from .tokens import Estimator, text_of
from .usage import from_openai, get

__all__ = ["PATCHES"]

_CHAT = "openai.resources.chat.completions.completions"
_RESPONSES = "openai.resources.responses.responses"
_EMBEDDINGS = "openai.resources.embeddings"


def _base_url(instance: Any, kwargs: dict) -> Any:
    client = instance._client
    return getattr(client, "_base_url", None) or client.base_url  # an httpx URL; cleaned later


def _streaming(kwargs: dict) -> bool:
    return bool(kwargs.get("stream"))


def _read_response(call: Call, response: Any) -> None:
    call.usage = get(response, "usage")
    call.response_model = get(response, "model")
    call.service_tier = get(response, "service_tier")


# --- chat completions --------------------------------------------------------------------

def _chat_chunk(call: Call, chunk: Any) -> None:
    usage = chunk.usage
    if usage is not None:
        call.usage = usage  # the last usage wins, wherever it appears
    if chunk.model:  # Azure's trailing content-filter chunk has an empty model
        call.response_model = chunk.model
    choices = chunk.choices
    if choices:
        content = choices[0].delta.content
        if content:
            call.pieces.append(content)
    if chunk.service_tier:
        call.service_tier = chunk.service_tier


def _chat_result(recorder: Recorder, call: Call, result: Any) -> Any:
    return read_or_proxy(recorder, call, result, _read_response)


CHAT = CallSpec("openai", "chat", _base_url, _streaming, _chat_result, _chat_chunk, from_openai)


# --- responses -------------------------------------------------------------------------

def _responses_event(call: Call, event: Any) -> None:
    kind = event.type
    if kind == "response.output_text.delta":
        call.pieces.append(event.delta)
    elif kind in ("response.completed", "response.incomplete", "response.failed", "response.created"):
        response = event.response
        if response.usage is not None:
            call.usage = response.usage
        call.response_model = response.model or call.response_model
        call.service_tier = get(response, "service_tier") or call.service_tier


def _responses_result(recorder: Recorder, call: Call, result: Any) -> Any:
    return read_or_proxy(recorder, call, result, _read_response)


def _responses_input(estimator: Estimator, kwargs: dict) -> int:
    return estimator.count(text_of(kwargs.get("instructions"))) + estimator.count(
        text_of(kwargs.get("input")))


RESPONSES = CallSpec("openai", "responses", _base_url, _streaming, _responses_result,
                     _responses_event, from_openai, _responses_input)
RESPONSES_PARSE = CallSpec("openai", "responses", _base_url, lambda kwargs: False,
                           _responses_result, None, from_openai, _responses_input)
CHAT_PARSE = CallSpec("openai", "chat", _base_url, lambda kwargs: False, _chat_result, None,
                      from_openai)


# --- embeddings ------------------------------------------------------------------------

def _embeddings_input(estimator: Estimator, kwargs: dict) -> int:
    return input_text_tokens(estimator, kwargs.get("input"))


EMBEDDINGS = CallSpec("openai", "embeddings", _base_url, lambda kwargs: False, _chat_result, None,
                      from_openai, _embeddings_input)


# --- the .stream() helpers -------------------------------------------------------------

def _stream_helper(recorder: Recorder) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        manager = wrapped(*args, **kwargs)
        if not recorder.active:
            return manager
        try:
            return StreamManagerProxy(manager, lambda stream: stream)
        except Exception as exc:
            recorder.fault("wrapping an openai stream helper", exc)
            return manager

    return wrapper


PATCHES = [
    Patch(_CHAT, "Completions.create", sync_wrapper(CHAT)),
    Patch(_CHAT, "Completions.parse", sync_wrapper(CHAT_PARSE)),
    Patch(_CHAT, "Completions.stream", _stream_helper),
    Patch(_CHAT, "AsyncCompletions.create", async_wrapper(CHAT)),
    Patch(_CHAT, "AsyncCompletions.parse", async_wrapper(CHAT_PARSE)),
    Patch(_CHAT, "AsyncCompletions.stream", _stream_helper),
    Patch(_RESPONSES, "Responses.create", sync_wrapper(RESPONSES)),
    Patch(_RESPONSES, "Responses.parse", sync_wrapper(RESPONSES_PARSE)),
    Patch(_RESPONSES, "Responses.stream", _stream_helper),
    Patch(_RESPONSES, "AsyncResponses.create", async_wrapper(RESPONSES)),
    Patch(_RESPONSES, "AsyncResponses.parse", async_wrapper(RESPONSES_PARSE)),
    Patch(_RESPONSES, "AsyncResponses.stream", _stream_helper),
    Patch(_EMBEDDINGS, "Embeddings.create", sync_wrapper(EMBEDDINGS)),
    Patch(_EMBEDDINGS, "AsyncEmbeddings.create", async_wrapper(EMBEDDINGS)),
]
