"""vLLM's offline engine: ``LLM.generate`` and ``LLM.chat``, counted from the ``RequestOutput``
list they return: input tokens ``len(prompt_token_ids)`` per request, output tokens
``len(token_ids)`` of each of its completions (``n`` of them). Where vLLM reports a request's
timings (``RequestOutput.metrics``), the prefill time (scheduled → first token) and decode time
(first → last token) are logged beside the counts, and split the GPU cost between input and
output tokens (docs/local-models.md).

``LLM.chat`` calls ``generate`` underneath in some versions: the inner call is not recorded twice.
"""

from __future__ import annotations

from typing import Any, Iterable

from .local_call import local_spec, local_wrapper
from .patching import Patch
from .usage import TokenCounts

__all__ = ["PATCHES", "count_request_outputs", "engine_model", "request_timings"]

_LLM = "vllm.entrypoints.llm"


def engine_model(llm: Any) -> str | None:
    """The served model's name (or path) from the engine's model config."""
    engine = getattr(llm, "llm_engine", None)
    config = getattr(engine, "model_config", None)
    return getattr(config, "served_model_name", None) or getattr(config, "model", None)


def _first(metrics: Any, *names: str) -> float | None:
    for name in names:
        value = getattr(metrics, name, None)
        if isinstance(value, (int, float)) and value:
            return float(value)
    return None


def request_timings(metrics: Any) -> tuple[float, float] | None:
    """(prefill_s, decode_s) of one request, from vLLM's ``RequestMetrics`` (V0) or
    ``RequestStateStats`` (V1) where present."""
    if metrics is None:
        return None
    scheduled = _first(metrics, "first_scheduled_time", "scheduled_ts")
    first = _first(metrics, "first_token_time", "first_token_ts")
    last = _first(metrics, "last_token_time", "last_token_ts")
    if None in (scheduled, first, last) or not scheduled <= first <= last:
        return None
    return first - scheduled, last - first


def count_request_outputs(outputs: Iterable[Any]) -> tuple[TokenCounts, dict | None]:
    """Exact token counts of a batch of ``RequestOutput``; prefill/decode seconds when every
    request reported them."""
    input_tokens = output_tokens = 0
    prefill = decode = 0.0
    timed = True
    for request in outputs:
        input_tokens += len(getattr(request, "prompt_token_ids", None) or ())
        for completion in getattr(request, "outputs", None) or ():
            output_tokens += len(getattr(completion, "token_ids", None) or ())
        timing = request_timings(getattr(request, "metrics", None))
        if timing is None:
            timed = False
        else:
            prefill, decode = prefill + timing[0], decode + timing[1]
    extra = {"prefill_s": round(prefill, 6), "decode_s": round(decode, 6)} if timed and (
        prefill or decode) else None
    return TokenCounts(input_tokens=input_tokens, output_tokens=output_tokens), extra


def _count(llm: Any, args: tuple, kwargs: dict, result: Any) -> tuple[TokenCounts, dict | None]:
    return count_request_outputs(result if isinstance(result, list) else [result])


GENERATE = local_spec("vllm", "generate")
CHAT = local_spec("vllm", "chat")

PATCHES = [
    Patch(_LLM, "LLM.generate", local_wrapper(GENERATE, engine_model, _count)),
    Patch(_LLM, "LLM.chat", local_wrapper(CHAT, engine_model, _count)),
]
