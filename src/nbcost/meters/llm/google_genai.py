"""google-genai: ``models.generate_content`` and ``generate_content_stream``, sync and async.

The public methods may send several requests per call (automatic function calling, automatic
continuation), each billed on its own, so nbcost patches the per-request methods they call
(``Models._generate_content`` and ``_generate_content_stream``, and the ``AsyncModels`` twins):
one record per request, as the bill has it. Chats go through the same methods.
Every stream chunk repeats the running ``usage_metadata``; the last one wins.
"""

from __future__ import annotations

from typing import Any

from .patching import Patch, async_wrapper, sync_wrapper
from .recorder import Call, CallSpec, Recorder
from .stream import read_or_proxy
from .tokens import Estimator, text_of
from .usage import from_gemini, get

__all__ = ["PATCHES"]

_MODELS = "google.genai.models"


def _base_url(instance: Any, kwargs: dict) -> str | None:
    options = instance._api_client._http_options
    return get(options, "base_url")


def _read(call: Call, response: Any) -> None:
    call.usage = get(response, "usage_metadata")
    call.response_model = get(response, "model_version")


def _chunk(call: Call, chunk: Any) -> None:
    usage = chunk.usage_metadata
    if usage is not None:
        call.usage = usage
    if chunk.model_version:
        call.response_model = chunk.model_version
    candidates = chunk.candidates
    if candidates:
        content = candidates[0].content
        if content is not None and content.parts:
            for part in content.parts:
                if part.text:
                    call.pieces.append(part.text)


def _result(recorder: Recorder, call: Call, result: Any) -> Any:
    return read_or_proxy(recorder, call, result, _read)


def _input(estimator: Estimator, kwargs: dict) -> int:
    return estimator.count(text_of(kwargs.get("contents")))


GENERATE = CallSpec("google", "generate", _base_url, lambda kwargs: False, _result, None,
                    from_gemini, _input)
STREAM = CallSpec("google", "generate", _base_url, lambda kwargs: True, _result, _chunk,
                  from_gemini, _input)

PATCHES = [
    Patch(_MODELS, "Models._generate_content", sync_wrapper(GENERATE)),
    Patch(_MODELS, "Models._generate_content_stream", sync_wrapper(STREAM)),
    Patch(_MODELS, "AsyncModels._generate_content", async_wrapper(GENERATE)),
    Patch(_MODELS, "AsyncModels._generate_content_stream", async_wrapper(STREAM)),
]
