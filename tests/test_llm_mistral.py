"""The real mistralai SDK against the loopback server (chat complete/stream, embeddings)."""

from __future__ import annotations

import asyncio

import pytest
from llm_support import (FAKE_KEY, dump, expected_cost, llm, llm_calls, messages, one_call, srv,  # noqa: F401
                         tokens, without_nbcost)
from mistralai.client import Mistral, errors

TOKENS = {"input_tokens": 800, "cache_read_tokens": 0, "cache_write_tokens": 0,
          "output_tokens": 150, "reasoning_tokens": 0}
MODEL = "mistral-large-latest"


def client(srv, **scenario):
    return Mistral(api_key=FAKE_KEY, server_url=srv.base_url("mistral", **{
        "input_tokens": 800, "output_tokens": 150, **scenario}))


def check(call):
    assert tokens(call) == TOKENS and call.flags == ()
    assert call.cost_usd == expected_cost(MODEL, "mistral", input_tokens=800, output_tokens=150)
    assert call.attributes["provider"] == "mistral"


def test_complete_sync_and_async(srv, llm):
    c = client(srv)
    c.chat.complete(model=MODEL, messages=messages())
    asyncio.run(c.chat.complete_async(model=MODEL, messages=messages()))
    calls = llm_calls(llm)
    assert len(calls) == 2
    for call in calls:
        check(call)


def test_stream_identical(srv, llm):
    c = client(srv)

    def run():
        return list(c.chat.stream(model=MODEL, messages=messages()))

    plain = without_nbcost(llm, run)
    assert dump(run()) == dump(plain)
    check(one_call(llm))


def test_async_stream(srv, llm):
    c = client(srv)

    async def go():
        return [e async for e in await c.chat.stream_async(model=MODEL, messages=messages())]

    plain = without_nbcost(llm, lambda: asyncio.run(go()))
    assert dump(asyncio.run(go())) == dump(plain)
    check(one_call(llm))


def test_stream_context_exit_mid_stream(srv, llm):
    with client(srv, chunks=30).chat.stream(model=MODEL, messages=messages()) as stream:
        next(iter(stream))
    assert "partial" in one_call(llm).flags


def test_embeddings(srv, llm):
    client(srv).embeddings.create(model="mistral-embed", inputs=["a", "b"])
    call = one_call(llm)
    assert call.quantities["input_tokens"] == 800
    assert call.cost_usd == expected_cost("mistral-embed", "mistral", input_tokens=800)


def test_server_error(srv, llm):
    with pytest.raises(errors.MistralError):
        client(srv, fail_status=500).chat.complete(model=MODEL, messages=messages())
    assert one_call(llm).quantities["errors"] == 1
