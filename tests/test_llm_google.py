"""The real google-genai SDK against the loopback server (generateContent, streamGenerateContent)."""

from __future__ import annotations

import asyncio

import pytest
from google import genai
from google.genai import errors, types
from llm_support import (FAKE_KEY, SENTINEL, dump, expected_cost, llm, llm_calls, one_call, srv,  # noqa: F401
                         tokens, without_nbcost)

import nbcost

SCENARIO = dict(input_tokens=5000, cached_tokens=4000, output_tokens=700, reasoning_tokens=500)
TOKENS = {"input_tokens": 5000, "cache_read_tokens": 4000, "cache_write_tokens": 0,
          "output_tokens": 700, "reasoning_tokens": 500}


def client(srv, **scenario):
    options = types.HttpOptions(base_url=srv.base_url("google", **scenario),
                                retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=FAKE_KEY, http_options=options)


def check(call, model="gemini-2.5-flash"):
    assert tokens(call) == TOKENS and call.flags == ()
    assert call.cost_usd == expected_cost(model, "google", input_tokens=5000, cache_read_tokens=4000,
                                          output_tokens=700)


def test_sync_thoughts_count_as_output(srv, llm):
    c = client(srv, **SCENARIO)  # keep the client: a collected genai.Client closes its HTTP pool
    reply = c.models.generate_content(model="gemini-2.5-flash", contents=SENTINEL)
    assert reply.usage_metadata.candidates_token_count == 200  # thoughts are reported beside it
    check(one_call(llm))
    assert one_call(llm).attributes["provider"] == "google"


def test_async(srv, llm):
    c = client(srv, **SCENARIO)
    asyncio.run(c.aio.models.generate_content(model="gemini-2.5-flash",
                                                                     contents=SENTINEL))
    check(one_call(llm))


def test_stream_identical_last_usage_wins(srv, llm):
    c = client(srv, **SCENARIO)

    def run():
        return list(c.models.generate_content_stream(model="gemini-2.5-flash", contents=SENTINEL))

    plain = without_nbcost(llm, run)
    assert dump(run()) == dump(plain)
    check(one_call(llm))


def test_async_stream(srv, llm):
    c = client(srv, **SCENARIO)

    async def go():
        stream = await c.aio.models.generate_content_stream(model="gemini-2.5-flash", contents=SENTINEL)
        return [chunk async for chunk in stream]

    plain = without_nbcost(llm, lambda: asyncio.run(go()))
    assert dump(asyncio.run(go())) == dump(plain)
    check(one_call(llm))


def test_stream_break(srv, llm):
    c = client(srv, chunks=30)
    stream = c.models.generate_content_stream(model="gemini-2.5-flash",
                                                                   contents=SENTINEL)
    for i, _chunk in enumerate(stream):
        if i == 2:
            break
    stream.close()
    call = one_call(llm)
    assert "partial" in call.flags and call.quantities["input_tokens"] == 21


def test_chat_session_recorded(srv, llm):
    c = client(srv, **SCENARIO)
    chat = c.chats.create(model="gemini-2.5-flash")
    chat.send_message(SENTINEL)
    chat.send_message("again")
    assert len(llm_calls(llm)) == 2


def test_tiered_gemini_pro(srv, llm):
    c = client(srv, input_tokens=300_000, output_tokens=100)
    c.models.generate_content(
        model="gemini-2.5-pro", contents=SENTINEL)
    assert one_call(llm).cost_usd == expected_cost("gemini-2.5-pro", "google", input_tokens=300_000,
                                                   output_tokens=100)


def test_server_error(srv, llm):
    with pytest.raises(errors.ServerError):
        c = client(srv, fail_status=500)
        c.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert one_call(llm).attributes["status"] == "error"


def test_budget_refusal(srv, llm):
    llm.settings.budget_usd, llm.settings.budget_hard = __import__("decimal").Decimal(0), True
    before = len(srv.requests)
    with pytest.raises(nbcost.BudgetExceeded):
        c = client(srv)
        c.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert len(srv.requests) == before
