"""mistralai: ``chat.complete``/``stream`` (and their ``_async`` twins) and ``embeddings.create``.

Mistral counts like OpenAI (``prompt_tokens`` includes cached tokens); a stream's last chunk
carries the usage. ``chat.parse`` calls ``complete`` underneath and is recorded there.
"""

from __future__ import annotations

from typing import Any

from .patching import Patch, async_wrapper, sync_wrapper
from .recorder import Call, CallSpec, Recorder, input_text_tokens
from .stream import read_or_proxy
from .tokens import Estimator
from .usage import from_openai, get

__all__ = ["PATCHES"]

_CHAT = "mistralai.client.chat"
_EMBEDDINGS = "mistralai.client.embeddings"


def _base_url(instance: Any, kwargs: dict) -> str | None:
    return kwargs.get("server_url") or instance.sdk_configuration.get_server_details()[0]


def _read(call: Call, response: Any) -> None:
    call.usage = get(response, "usage")
    model = get(response, "model")
    call.response_model = model if isinstance(model, str) else None


def _event(call: Call, event: Any) -> None:
    chunk = event.data
    usage = chunk.usage
    if usage is not None and isinstance(getattr(usage, "prompt_tokens", None), int):
        call.usage = usage
    if isinstance(chunk.model, str):
        call.response_model = chunk.model
    choices = chunk.choices
    if choices:
        content = choices[0].delta.content
        if isinstance(content, str) and content:
            call.pieces.append(content)


def _result(recorder: Recorder, call: Call, result: Any) -> Any:
    return read_or_proxy(recorder, call, result, _read)


def _embeddings_input(estimator: Estimator, kwargs: dict) -> int:
    return input_text_tokens(estimator, kwargs.get("inputs"))


COMPLETE = CallSpec("mistral", "chat", _base_url, lambda kwargs: False, _result, None, from_openai)
STREAM = CallSpec("mistral", "chat", _base_url, lambda kwargs: True, _result, _event, from_openai)
EMBEDDINGS = CallSpec("mistral", "embeddings", _base_url, lambda kwargs: False, _result, None,
                      from_openai, _embeddings_input)

PATCHES = [
    Patch(_CHAT, "Chat.complete", sync_wrapper(COMPLETE)),
    Patch(_CHAT, "Chat.complete_async", async_wrapper(COMPLETE)),
    Patch(_CHAT, "Chat.stream", sync_wrapper(STREAM)),
    Patch(_CHAT, "Chat.stream_async", async_wrapper(STREAM)),
    Patch(_EMBEDDINGS, "Embeddings.create", sync_wrapper(EMBEDDINGS)),
    Patch(_EMBEDDINGS, "Embeddings.create_async", async_wrapper(EMBEDDINGS)),
]
