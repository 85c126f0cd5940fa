"""vLLM's async engine (``AsyncLLM.generate``): one self-hosted ``llm_call`` per request, counted
from the ``RequestOutput``s its async generator yields.

vLLM is not installed here (it would replace torch), so these tests use objects of vLLM's
*shape*, not vLLM: dataclasses with the fields of ``vllm.outputs.RequestOutput`` /
``CompletionOutput`` and ``vllm.v1.metrics.stats.RequestStateStats``, an enum like
``vllm.sampling_params.RequestOutputKind``, and a stand-in engine whose ``generate`` is an async
generator yielding them the way vLLM's output processor does (cumulative or delta token ids, a
completion per ``index``). The wrapper under test is nbcost's own, patched onto the stand-in by
the real Patcher over a real Session. tests/test_local_vllm.py checks vLLM's own classes where
vLLM imports.
"""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import inspect
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pytest

from nbcost.meters.llm import LlmMeter
from nbcost.meters.llm.patching import Patch, Patcher
from nbcost.meters.llm.recorder import Recorder
from nbcost.meters.llm.vllm_async import PATCHES, count_request_stream, is_delta
from nbcost.session import Session

# --- vLLM's shapes (fields as vLLM's dataclasses declare them) --------------------------------

class RequestOutputKind(Enum):  # vllm.sampling_params.RequestOutputKind
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class SamplingParams:  # the one field of vllm.SamplingParams read here
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE


@dataclass
class CompletionOutput:  # vllm.outputs.CompletionOutput
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: Any = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestStateStats:  # vllm.v1.metrics.stats.RequestStateStats (RequestOutput.metrics)
    num_generation_tokens: int = 0
    arrival_time: float = 0.0
    queued_ts: float = 0.0
    scheduled_ts: float = 0.0
    first_token_ts: float = 0.0
    last_token_ts: float = 0.0


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool
    metrics: RequestStateStats | None = None
    num_cached_tokens: int | None = None


PROMPT = [101, 102, 103, 104, 105]


def stream(steps: list[dict[int, list[int]]], delta: bool,
           metrics: RequestStateStats | None = None) -> list[RequestOutput]:
    """Outputs the way vLLM's output processor makes them: ``steps`` are the new tokens of each
    completion (by index) at each step; cumulative outputs carry all tokens so far."""
    so_far: dict[int, list[int]] = {}
    outputs = []
    for number, step in enumerate(steps):
        completions = []
        for index, new in step.items():
            so_far.setdefault(index, []).extend(new)
            completions.append(CompletionOutput(index, "", list(new) if delta
                                                else list(so_far[index])))
        last = number == len(steps) - 1
        outputs.append(RequestOutput("r1", None, PROMPT, None, completions, last,
                                     metrics if last else None))
    return outputs


STEPS = [{0: [7]}, {0: [8, 9]}, {0: [10]}]  # 4 new tokens in three outputs


# --- the counting rule --------------------------------------------------------------------------

def test_cumulative_outputs_count_the_latest_length():
    counts, _ = count_request_stream(stream(STEPS, delta=False))
    assert (counts.input_tokens, counts.output_tokens) == (5, 4)


def test_delta_outputs_add_up():
    outputs = stream(STEPS, delta=True)
    counts, _ = count_request_stream(outputs, delta=True)
    assert (counts.input_tokens, counts.output_tokens) == (5, 4)
    # Read as cumulative, the same outputs would say 1 (the last delta): the kind matters.
    assert count_request_stream(outputs)[0].output_tokens == 1


def test_n_completions_are_counted_by_index_when_outputs_carry_only_the_one_that_moved():
    steps = [{0: [1, 2]}, {1: [3]}, {0: [4]}, {1: [5, 6]}]
    for delta in (False, True):
        counts, _ = count_request_stream(stream(steps, delta), delta)
        assert counts.output_tokens == 6, delta


def test_a_final_only_request_is_its_one_output():
    [final] = stream([{0: [1, 2, 3], 1: [4, 5]}], delta=False)
    counts, _ = count_request_stream([final])
    assert (counts.input_tokens, counts.output_tokens) == (5, 5)


def test_prefill_and_decode_seconds_come_from_the_final_outputs_metrics():
    metrics = RequestStateStats(num_generation_tokens=4, arrival_time=1.0, queued_ts=9.5,
                                scheduled_ts=10.0, first_token_ts=10.25, last_token_ts=12.25)
    _, extra = count_request_stream(stream(STEPS, False, metrics))
    assert extra == {"prefill_s": 0.25, "decode_s": 2.0}
    assert count_request_stream(stream(STEPS, False))[1] is None  # no metrics: no timings


def test_the_output_kind_is_read_from_the_sampling_params():
    assert is_delta(SamplingParams(RequestOutputKind.DELTA))
    assert not is_delta(SamplingParams(RequestOutputKind.CUMULATIVE))
    assert not is_delta(SamplingParams(RequestOutputKind.FINAL_ONLY))
    assert not is_delta(None)


# --- the wrapper, on a stand-in engine of AsyncLLM's shape ---------------------------------------

@dataclass
class ModelConfig:  # vllm.config.ModelConfig's names
    model: str = "/models/qwen-0.5b"
    served_model_name: str | None = "qwen-0.5b"


@dataclass
class ShapedAsyncEngine:
    """``generate(prompt, sampling_params, request_id)`` as AsyncLLM's: an async generator."""

    script: list[RequestOutput]
    fail_after: int | None = None  # raise EngineDead after this many outputs
    wait_after: int | None = None  # wait forever after this many (to be cancelled)
    model_config: ModelConfig = field(default_factory=ModelConfig)
    closed: bool = False

    async def generate(self, prompt, sampling_params, request_id, *, priority=0):
        try:
            for number, output in enumerate(self.script):
                if number == self.fail_after:
                    raise EngineDead("engine core died")
                if number == self.wait_after:
                    await asyncio.Event().wait()
                await asyncio.sleep(0)
                yield output
        finally:
            self.closed = True


class EngineDead(Exception):
    pass


@pytest.fixture
def session(nbcost_home):
    s = Session(meters=[LlmMeter()])
    patcher = Patcher(Recorder(s), {"shape": [
        Patch(__name__, "ShapedAsyncEngine.generate", PATCHES[0].make_wrapper)]})
    patcher.install()
    try:
        yield s
    finally:
        patcher.uninstall()
        s.close()
        gc.collect()


def calls(session: Session) -> list:
    gc.collect()  # a generator dropped after a break is recorded when it is collected
    return [u for u in session.usages if u.meter == "llm"]


def _delta_engine(**options: Any) -> tuple[ShapedAsyncEngine, list[RequestOutput]]:
    metrics = RequestStateStats(scheduled_ts=10.0, first_token_ts=10.5, last_token_ts=11.5)
    script = stream(STEPS, True, metrics)
    return ShapedAsyncEngine(script, **options), script


def test_a_request_read_to_its_end_is_one_exact_call_and_yields_the_same_outputs(session):
    engine, script = _delta_engine()
    params = SamplingParams(RequestOutputKind.DELTA)

    async def consume():
        generator = engine.generate("hi", params, "r1")
        assert inspect.isasyncgen(generator)
        assert isinstance(generator, collections.abc.AsyncGenerator)
        return [output async for output in generator]

    seen = asyncio.run(consume())
    assert len(seen) == len(script) and all(a is b for a, b in zip(seen, script))
    [call] = calls(session)
    assert call.key == "qwen-0.5b" and call.cost_usd == 0
    assert (call.quantities["input_tokens"], call.quantities["output_tokens"]) == (5, 4)
    a = call.attributes
    assert (a["provider"], a["engine"], a["status"], a["usage_source"]) == (
        "self-hosted", "vllm", "ok", "api")
    assert (a["prefill_s"], a["decode_s"]) == (0.5, 1.0)
    assert call.flags == ()
    assert "local" in session.meters  # the local meter took the call


def test_stopping_after_the_final_output_is_a_whole_request(session):
    engine, _ = _delta_engine()

    async def consume():
        async for output in engine.generate("hi", SamplingParams(RequestOutputKind.DELTA), "r1"):
            if output.finished:
                break

    asyncio.run(consume())
    [call] = calls(session)
    assert call.quantities["output_tokens"] == 4 and "partial" not in call.flags


def test_a_consumer_that_stops_early_records_what_was_produced_as_partial(session):
    engine = ShapedAsyncEngine(stream(STEPS, delta=False))

    async def consume():
        async for output in engine.generate("hi", SamplingParams(), "r1"):
            break  # one output (1 token) seen

    asyncio.run(consume())
    [call] = calls(session)
    assert (call.quantities["input_tokens"], call.quantities["output_tokens"]) == (5, 1)
    assert "partial" in call.flags and call.attributes["status"] == "ok"


def test_aclose_records_at_once(session):
    engine = ShapedAsyncEngine(stream(STEPS, delta=False))

    async def consume():
        generator = engine.generate("hi", SamplingParams(), "r1")
        await generator.__anext__()
        await generator.__anext__()
        await generator.aclose()
        return [u for u in session.usages if u.meter == "llm"]

    [call] = asyncio.run(consume())
    assert call.quantities["output_tokens"] == 3 and "partial" in call.flags
    assert engine.closed  # the engine's generator was closed too


def test_a_generator_never_iterated_sent_no_request_and_is_not_recorded(session):
    engine = ShapedAsyncEngine(stream(STEPS, delta=False))

    async def consume():
        dropped = engine.generate("hi", SamplingParams(), "r1")
        del dropped
        closed = engine.generate("hi", SamplingParams(), "r2")
        await closed.aclose()

    asyncio.run(consume())
    assert calls(session) == []

def test_a_cancelled_request_is_recorded_as_interrupted(session):
    engine, _ = _delta_engine(wait_after=2)

    async def consume():
        seen = []

        async def read():
            async for output in engine.generate("hi", SamplingParams(RequestOutputKind.DELTA),
                                                "r1"):
                seen.append(output)

        task = asyncio.create_task(read())
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert len(asyncio.run(consume())) == 2
    [call] = calls(session)
    assert call.quantities["output_tokens"] == 3  # [7] then [8, 9]
    assert {"partial", "interrupted"} <= set(call.flags)
    assert call.attributes["status"] == "interrupted"


def test_an_engine_error_reaches_the_user_unchanged_and_is_recorded(session):
    engine, _ = _delta_engine(fail_after=1)

    async def consume():
        seen = []
        with pytest.raises(EngineDead, match="engine core died"):
            async for output in engine.generate("hi", SamplingParams(RequestOutputKind.DELTA),
                                                "r1"):
                seen.append(output)
        return seen

    assert len(asyncio.run(consume())) == 1
    [call] = calls(session)
    assert call.attributes["error_type"] == "EngineDead" and "error" in call.flags
    assert call.quantities["output_tokens"] == 1  # what it produced before failing



async def _serve(engine):
    return [output async for output in engine.generate("hi", SamplingParams(), "r1")]


def _caller_in(module_name: str):
    """:func:`_serve` as if defined in a module named ``module_name`` (the way vLLM's server
    modules call ``engine_client.generate``)."""
    import types

    return types.FunctionType(_serve.__code__, {**globals(), "__name__": module_name})


def test_requests_of_vllms_api_server_are_left_to_its_client(session):
    # The openai SDK that called the server records the request from the server's usage.
    engine = ShapedAsyncEngine(stream(STEPS, delta=False))
    served = asyncio.run(_caller_in("vllm.entrypoints.openai.serving_chat")(engine))
    assert len(served) == 3 and calls(session) == []
    # The demo api_server's /generate returns no usage: the engine's count is the only one.
    asyncio.run(_caller_in("vllm.entrypoints.api_server")(engine))
    [call] = calls(session)
    assert call.quantities["output_tokens"] == 4
