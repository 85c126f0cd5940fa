"""litellm over the real openai SDK: recorded once (the openai patch underneath stays quiet)."""

from __future__ import annotations

import asyncio

from llm_support import (FAKE_KEY, dump, expected_cost, llm, llm_calls, messages, one_call, srv,  # noqa: F401
                         tokens, without_nbcost)

import litellm  # noqa: E402  (llm_support sets LITELLM_LOCAL_MODEL_COST_MAP first: no network)

SCENARIO = dict(input_tokens=1200, cached_tokens=1024, output_tokens=300, reasoning_tokens=120)
TOKENS = {"input_tokens": 1200, "cache_read_tokens": 1024, "cache_write_tokens": 0,
          "output_tokens": 300, "reasoning_tokens": 120}
USAGE = {"stream_options": {"include_usage": True}}


def kwargs(srv, **extra):
    return dict(model="openai/gpt-4o", messages=messages(), api_key=FAKE_KEY,
                api_base=srv.base_url("litellm", **SCENARIO), **extra)


def text(chunk):
    return chunk.choices[0].delta.content if chunk.choices else chunk.usage.total_tokens


def check(call):
    assert tokens(call) == TOKENS and call.flags == ()
    assert call.attributes["provider"] == "litellm" and call.key == "gpt-4o"
    assert call.cost_usd == expected_cost("gpt-4o", "openai", input_tokens=1200,
                                          cache_read_tokens=1024, output_tokens=300)


def test_completion_recorded_once_not_again_by_openai(srv, llm):
    before = len(srv.requests)
    litellm.completion(**kwargs(srv))
    assert len(srv.requests) == before + 1  # litellm did go through the openai SDK to the server
    check(one_call(llm))


def test_acompletion(srv, llm):
    asyncio.run(litellm.acompletion(**kwargs(srv)))
    check(one_call(llm))


def test_stream(srv, llm):
    def run():
        return [text(c) for c in litellm.completion(**kwargs(srv, stream=True, **USAGE))]

    plain = without_nbcost(llm, run)
    assert run() == plain
    check(one_call(llm))


def test_async_stream(srv, llm):
    async def go():
        stream = await litellm.acompletion(**kwargs(srv, stream=True, **USAGE))
        return [text(c) async for c in stream]

    plain = without_nbcost(llm, lambda: asyncio.run(go()))
    assert asyncio.run(go()) == plain
    check(one_call(llm))


def test_embedding(srv, llm):
    litellm.embedding(model="openai/text-embedding-3-small", input=["a"], api_key=FAKE_KEY,
                      api_base=srv.base_url("litellm", input_tokens=64))
    call = one_call(llm)
    assert call.quantities["input_tokens"] == 64
    assert call.cost_usd == expected_cost("text-embedding-3-small", "openai", input_tokens=64)
