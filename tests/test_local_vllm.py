"""vLLM's offline ``LLM``: token counts from its ``RequestOutput`` objects. Runs only where vLLM
imports (it is not a test dependency); the engine itself needs a GPU, so the counting is
checked on vLLM's own output classes and the patch on its ``LLM`` class."""

from __future__ import annotations

import pytest

vllm = pytest.importorskip("vllm")

from vllm.outputs import CompletionOutput, RequestOutput

from nbcost.meters.llm.vllm_offline import PATCHES, count_request_outputs


def completion(index: int, token_ids: list[int]) -> CompletionOutput:
    return CompletionOutput(index=index, text="", token_ids=token_ids, cumulative_logprob=None,
                            logprobs=None)


def test_request_outputs_count_every_prompt_and_every_completion():
    outputs = [
        RequestOutput(request_id="a", prompt=None, prompt_token_ids=[1, 2, 3, 4],
                      prompt_logprobs=None, outputs=[completion(0, [5, 6]), completion(1, [7])],
                      finished=True),
        RequestOutput(request_id="b", prompt=None, prompt_token_ids=[1, 2],
                      prompt_logprobs=None, outputs=[completion(0, [8, 9, 10])], finished=True),
    ]
    counts, _ = count_request_outputs(outputs)
    assert (counts.input_tokens, counts.output_tokens) == (6, 6)


def test_the_patched_methods_exist_in_this_vllm():
    import importlib

    for patch in PATCHES:
        owner, _, method = patch.target.partition(".")
        assert hasattr(getattr(importlib.import_module(patch.module), owner), method)


def test_async_engine_outputs_count_by_their_output_kind():
    from vllm.sampling_params import RequestOutputKind, SamplingParams

    from nbcost.meters.llm.vllm_async import count_request_stream, is_delta

    delta = is_delta(SamplingParams(output_kind=RequestOutputKind.DELTA))
    assert delta and not is_delta(SamplingParams())
    outputs = [
        RequestOutput(request_id="a", prompt=None, prompt_token_ids=[1, 2, 3],
                      prompt_logprobs=None, outputs=[completion(0, [5])], finished=False),
        RequestOutput(request_id="a", prompt=None, prompt_token_ids=[1, 2, 3],
                      prompt_logprobs=None, outputs=[completion(0, [6, 7])], finished=True),
    ]
    counts, _ = count_request_stream(outputs, delta)
    assert (counts.input_tokens, counts.output_tokens) == (3, 3)


def test_the_async_engines_generate_is_patched_where_this_vllm_has_it():
    import importlib
    import inspect

    from nbcost.meters.llm.vllm_async import PATCHES as ASYNC_PATCHES

    found = 0
    for patch in ASYNC_PATCHES:
        try:
            module = importlib.import_module(patch.module)
        except ImportError:  # V0's module is gone from recent vLLM
            continue
        owner, _, method = patch.target.partition(".")
        generate = getattr(getattr(module, owner), method)
        assert inspect.isasyncgenfunction(inspect.unwrap(generate))
        found += 1
    assert found
