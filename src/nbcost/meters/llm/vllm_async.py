"""vLLM's async engine: ``AsyncLLM.generate`` (V1, ``vllm.v1.engine.async_llm``) and
``AsyncLLMEngine.generate`` (``vllm.engine.async_llm_engine``: V0's engine, or an alias of
``AsyncLLM`` in later versions). One call is one request; it returns an async generator of
``RequestOutput``, which the user gets back proxied (:class:`RequestStream`): the
same outputs, the same exceptions, every other attribute passed through.

Counting follows the request's ``SamplingParams.output_kind`` (vLLM's output processor):
every output carries the request's ``prompt_token_ids``; a completion's ``token_ids`` are all
its tokens so far (``CUMULATIVE``, the default; ``FINAL_ONLY`` yields only the last output) or
only the tokens new since the previous output (``DELTA``). Completions are told apart by their
``index`` (``n`` > 1: an output may carry only the completions that moved). So a request's
input tokens are ``len(prompt_token_ids)`` and its output tokens, per completion, the latest
length (cumulative) or the sum of the lengths (delta); :func:`count_request_stream` is that rule.

The call is recorded once: when the generator is exhausted or raises, when it is closed
(``aclose()``, or garbage-collected after a ``break``), or when its task is cancelled. A request
whose final output (``finished``) never came is flagged ``partial`` with the tokens produced by
then (and ``interrupted`` when cancelled); prefill/decode seconds come from the final output's
``metrics`` where vLLM reports them. A request made by vLLM's own API server is not recorded
here: its client records it from the server's usage (:func:`served_request`).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .calls import CallSpec
from .patching import Patch, run_recorded
from .recorder import Recorder
from .stream import AsyncStreamProxy
from .usage import TokenCounts
from .vllm_offline import request_timings

__all__ = ["PATCHES", "RequestStream", "RequestTally", "async_engine_model",
           "count_request_stream", "is_delta", "served_request"]


def is_delta(sampling_params: Any) -> bool:
    """Whether the request's outputs carry only new tokens (``RequestOutputKind.DELTA``)."""
    kind = getattr(sampling_params, "output_kind", None)
    return getattr(kind, "name", None) == "DELTA"


@dataclass
class RequestTally:
    """One request's tokens so far, from the ``RequestOutput``s it yielded (no text kept)."""

    delta: bool = False
    started: bool = False  # iterated at least once: the request was sent
    prompt_tokens: int = 0
    completion_tokens: dict[int, int] = field(default_factory=dict)
    finished: bool = False
    timings: tuple[float, float] | None = None

    def add(self, output: Any) -> None:
        prompt = getattr(output, "prompt_token_ids", None)
        if prompt is not None:  # a streamed-input request's prompt grows: its latest is longest
            self.prompt_tokens = max(self.prompt_tokens, len(prompt))
        for position, completion in enumerate(getattr(output, "outputs", None) or ()):
            index = getattr(completion, "index", position)
            tokens = len(getattr(completion, "token_ids", None) or ())
            if self.delta:
                tokens += self.completion_tokens.get(index, 0)
            self.completion_tokens[index] = tokens
        if getattr(output, "finished", False):
            self.finished = True
            self.timings = request_timings(getattr(output, "metrics", None))

    def counts(self) -> TokenCounts:
        return TokenCounts(input_tokens=self.prompt_tokens,
                           output_tokens=sum(self.completion_tokens.values()))

    def extra(self) -> dict | None:
        """Prefill and decode seconds, as the offline engine logs them."""
        if self.timings is None or not any(self.timings):
            return None
        return {"prefill_s": round(self.timings[0], 6), "decode_s": round(self.timings[1], 6)}


def count_request_stream(outputs: Iterable[Any], delta: bool = False
                         ) -> tuple[TokenCounts, dict | None]:
    """Token counts of one request from the ``RequestOutput``s its generator yielded, in order;
    ``delta``: the request asked for ``RequestOutputKind.DELTA``."""
    tally = RequestTally(delta)
    for output in outputs:
        tally.add(output)
    return tally.counts(), tally.extra()


def async_engine_model(engine: Any) -> str | None:
    """The served model's name (or path): ``AsyncLLM.model_config``, V0's
    ``AsyncLLMEngine.engine.model_config``."""
    for owner in (engine, getattr(engine, "engine", None)):
        config = getattr(owner, "model_config", None)
        if config is None:
            continue
        name = getattr(config, "served_model_name", None) or getattr(config, "model", None)
        if isinstance(name, (list, tuple)):
            name = name[0] if name else None
        return name
    return None


#: Modules of vLLM's API servers whose clients get the request's usage (OpenAI-, Anthropic-
#: compatible...): everything under ``vllm.entrypoints`` but the offline ``LLM`` and the demo
#: ``api_server``, whose ``/generate`` answers without usage.
_SERVERS = "vllm.entrypoints."
_NOT_SERVERS = ("vllm.entrypoints.llm", "vllm.entrypoints.api_server")


def served_request(frame: Any) -> bool:
    """Whether the code that called ``generate`` (``frame`` and up, past wrapt's) is one of
    vLLM's API servers. Its client — the openai SDK in a notebook — records the request from the
    usage the server returns, so the engine must not record it too: that would count it twice
    (a server started from a notebook runs with nbcost's child hook, or inside the kernel)."""
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        if not module.startswith("wrapt"):
            return module.startswith(_SERVERS) and not module.startswith(_NOT_SERVERS)
        frame = frame.f_back
    return False


def _sampling_params(args: tuple, kwargs: dict) -> Any:
    return kwargs["sampling_params"] if "sampling_params" in kwargs else (
        args[1] if len(args) > 1 else None)


def _note(call: Any, output: Any) -> None:
    """One output passed to the user: tally it (the per-output path: a few attribute reads)."""
    tally = call.usage
    tally.add(output)
    if tally.finished:  # the request is complete, even if the consumer stops before the end
        call.ended = True
        call.extra = tally.extra()


class RequestStream(AsyncStreamProxy):
    """The proxy of one request's generator. vLLM sends the request on the first ``__anext__``:
    a generator dropped or closed before it made no request, and nothing is recorded."""

    def __init__(self, generator: Any, recorder: Recorder, call: Any) -> None:
        super().__init__(generator, recorder, call)
        self._self_finalizer.detach()
        self._self_finalizer = weakref.finalize(self, _finish_if_sent, recorder, call)

    async def __anext__(self) -> Any:
        self._self_call.usage.started = True
        return await AsyncStreamProxy.__anext__(self)


def _finish_if_sent(recorder: Recorder, call: Any) -> None:
    if call.usage.started:
        recorder.finish(call)


GENERATE = CallSpec(
    "vllm", "generate", lambda instance, kwargs: None, lambda kwargs: True,
    lambda recorder, call, generator: RequestStream(generator, recorder, call), _note,
    lambda tally: tally.counts())


def _wrapper(recorder: Recorder) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        __tracebackhide__ = True  # IPython shows the user's and the engine's frames
        if served_request(sys._getframe(1)):
            return wrapped(*args, **kwargs)
        call = recorder.begin(GENERATE, instance, {})  # a prompt is data, not a request to hash
        if call is None:
            return wrapped(*args, **kwargs)
        call.is_async = True
        call.usage = RequestTally()
        try:
            call.request_model = async_engine_model(instance)
            call.usage.delta = is_delta(_sampling_params(args, kwargs))
        except Exception as exc:
            recorder.fault("reading a vLLM async request", exc)
        # Calling an async generator function only makes the generator: nothing runs yet.
        return recorder.complete(call, run_recorded(recorder, call, wrapped, args, kwargs))

    return wrapper


PATCHES = [
    Patch("vllm.v1.engine.async_llm", "AsyncLLM.generate", _wrapper),
    Patch("vllm.engine.async_llm_engine", "AsyncLLMEngine.generate", _wrapper),
]
