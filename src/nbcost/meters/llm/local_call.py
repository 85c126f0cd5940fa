"""The wrapper shared by in-process engines (transformers, vLLM's offline ``LLM``): one
self-hosted call, its tokens counted from the engine's own output by ``count(instance, args,
kwargs, result) -> (TokenCounts, extra)``.

Same rules as the SDK wrappers: the engine's exceptions reach the user unchanged (recorded as an
error), nbcost's own failures are said once and never break the generation.
"""

from __future__ import annotations

from typing import Any, Callable

from .calls import CallSpec
from .patching import run_recorded
from .recorder import Recorder
from .selfhosted import LOCAL_ENGINES
from .usage import TokenCounts

__all__ = ["local_spec", "local_wrapper"]

Counter = Callable[[Any, tuple, dict, Any], tuple[TokenCounts, dict | None]]


def local_spec(engine: str, api: str) -> CallSpec:
    """A CallSpec for an in-process engine (``engine`` in ``LOCAL_ENGINES``): no URL, never a
    stream, usage already counted."""
    assert engine in LOCAL_ENGINES, engine
    return CallSpec(engine, api, lambda instance, kwargs: None, lambda kwargs: False,
                    lambda recorder, call, result: result, None, lambda counts: counts)


def local_wrapper(spec: CallSpec, model_name: Callable[[Any], str | None],
                  count: Counter) -> Callable[[Recorder], Callable[..., Any]]:
    """Make a wrapt wrapper (per recorder) recording one local generation."""

    def make(recorder: Recorder) -> Callable[..., Any]:
        def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
            __tracebackhide__ = True  # IPython shows the user's and the engine's frames
            call = recorder.begin(spec, instance, {})  # token ids are data, not a request to hash
            if call is None:
                return wrapped(*args, **kwargs)
            call.is_async = False
            try:
                call.request_model = model_name(instance)
            except Exception as exc:
                recorder.fault(f"naming a {spec.api} model", exc)
            # (pipelines → generate, chat → generate: one record)
            result = run_recorded(recorder, call, wrapped, args, kwargs)
            try:
                call.usage, call.extra = count(instance, args, kwargs, result)
            except Exception as exc:
                recorder.fault(f"counting the tokens of {spec.api}", exc)
            return recorder.complete(call, result)

        return wrapper

    return make
