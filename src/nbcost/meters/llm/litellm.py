"""litellm: ``completion``, ``acompletion``, ``embedding``, ``aembedding``.

litellm calls the provider SDKs underneath (``openai``'s ``with_raw_response.create`` for OpenAI
models); the outer litellm record is the one kept, and the :data:`~.recorder.INSIDE_CALL`
context variable keeps the inner SDK patch from recording the same call again. Prices come from
genai-prices (``provider_id="litellm"`` splits ``openai/gpt-4o``), not litellm's own table.
"""

from __future__ import annotations

from typing import Any

from .patching import Patch, async_wrapper, sync_wrapper
from .recorder import Call, CallSpec, Recorder, input_text_tokens
from .stream import read_or_proxy
from .tokens import Estimator
from .usage import from_openai, get

__all__ = ["PATCHES"]


def _base_url(instance: Any, kwargs: dict) -> str | None:
    return kwargs.get("api_base") or kwargs.get("base_url")


def _read(call: Call, response: Any) -> None:
    call.usage = get(response, "usage")
    call.response_model = get(response, "model")


def _chunk(call: Call, chunk: Any) -> None:
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        call.usage = usage
    if chunk.model:
        call.response_model = chunk.model
    choices = chunk.choices
    if choices:
        content = choices[0].delta.content
        if content:
            call.pieces.append(content)


def _result(recorder: Recorder, call: Call, result: Any) -> Any:
    return read_or_proxy(recorder, call, result, _read)


def _embeddings_input(estimator: Estimator, kwargs: dict) -> int:
    return input_text_tokens(estimator, kwargs.get("input"))


def _streaming(kwargs: dict) -> bool:
    return bool(kwargs.get("stream"))


COMPLETION = CallSpec("litellm", "chat", _base_url, _streaming, _result, _chunk, from_openai)
EMBEDDING = CallSpec("litellm", "embeddings", _base_url, lambda kwargs: False, _result, None,
                     from_openai, _embeddings_input)

PATCHES = [
    Patch("litellm", "completion", sync_wrapper(COMPLETION)),
    Patch("litellm", "acompletion", async_wrapper(COMPLETION)),
    Patch("litellm", "embedding", sync_wrapper(EMBEDDING)),
    Patch("litellm", "aembedding", async_wrapper(EMBEDDING)),
]
