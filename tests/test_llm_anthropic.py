"""The real anthropic SDK against the loopback server: cache counts beside input, cumulative
stream deltas, tiers, the stream helper, beta messages."""

from __future__ import annotations

import asyncio
import warnings

import anthropic
import pydantic
import pytest
from llm_support import (FAKE_KEY, dump, expected_cost, llm, llm_calls, messages, one_call,  # noqa: F401
                         srv, tokens, without_nbcost)

import nbcost

MODEL = "claude-haiku-4-5"
CACHE = dict(input_tokens=3000, cached_tokens=2000, cache_write_tokens=600,
             cache_write_1h_tokens=200, output_tokens=90)
CACHE_TOKENS = {"input_tokens": 3000, "cache_read_tokens": 2000, "cache_write_tokens": 600,
                "output_tokens": 90, "reasoning_tokens": 0}

warnings.filterwarnings("ignore", category=DeprecationWarning, module="anthropic")


def cost(model=MODEL):
    return expected_cost(model, "anthropic", input_tokens=3000, cache_read_tokens=2000,
                         cache_write_tokens=600, cache_write_1h_tokens=200, cache_write_5m_tokens=400,
                         output_tokens=90)


def client(srv, **scenario):
    return anthropic.Anthropic(base_url=srv.base_url("anthropic", **scenario), api_key=FAKE_KEY,
                               max_retries=0)


def aclient(srv, **scenario):
    return anthropic.AsyncAnthropic(base_url=srv.base_url("anthropic", **scenario), api_key=FAKE_KEY,
                                    max_retries=0)


def ask(c, **extra):
    return c.messages.create(model=MODEL, max_tokens=100, messages=messages(), **extra)


def check(call, model=MODEL):
    assert tokens(call) == CACHE_TOKENS
    assert call.attributes["cache_write_1h_tokens"] == 200
    assert call.attributes["cache_write_5m_tokens"] == 400
    assert call.cost_usd == cost(model) and call.flags == ()


def test_sync_adds_cache_counts_to_input(srv, llm):
    message = ask(client(srv, **CACHE))
    assert message.usage.input_tokens == 400  # Anthropic reports uncached input only
    check(one_call(llm))


def test_async(srv, llm):
    asyncio.run(ask(aclient(srv, **CACHE)))
    check(one_call(llm))


def test_with_streaming_response_records_the_usage_the_body_reports(srv, llm):
    with client(srv, **CACHE).messages.with_streaming_response.create(
            model=MODEL, max_tokens=100, messages=messages()) as response:
        assert response.parse().usage.cache_read_input_tokens == 2000
    check(one_call(llm))


class Answer(pydantic.BaseModel):
    text: str


def test_structured_output_parse_is_recorded(srv, llm):
    """messages.parse() with a pydantic model as the output format (a class in the request)."""
    message = client(srv, **CACHE, reply='{"text": "hi"}').messages.parse(
        model=MODEL, max_tokens=100, messages=messages(), output_format=Answer)
    assert message.parsed_output == Answer(text="hi")
    check(one_call(llm))


def test_stream_cumulative_deltas_taken_not_summed(srv, llm):
    c = client(srv, anthropic_delta_steps=3, **CACHE)
    plain = without_nbcost(llm, lambda: list(ask(c, stream=True)))
    assert [e.usage.output_tokens for e in plain if e.type == "message_delta"] == [30, 60, 90]
    assert dump(list(ask(c, stream=True))) == dump(plain)
    check(one_call(llm))


def test_async_stream(srv, llm):
    async def go():
        return [e async for e in await ask(aclient(srv, **CACHE), stream=True)]

    plain = without_nbcost(llm, lambda: asyncio.run(go()))
    assert dump(asyncio.run(go())) == dump(plain)
    check(one_call(llm))


def test_stream_helper_sync_and_async(srv, llm):
    with client(srv, **CACHE).messages.stream(model=MODEL, max_tokens=100, messages=messages()) as s:
        assert s.get_final_message().usage.output_tokens == 90

    async def go():
        async with aclient(srv, **CACHE).messages.stream(model=MODEL, max_tokens=100,
                                                         messages=messages()) as s:
            return [e async for e in s]

    asyncio.run(go())
    calls = llm_calls(llm)
    assert len(calls) == 2
    for call in calls:
        check(call)


def test_stream_helper_text_identical(srv, llm):
    def run():
        with client(srv, **CACHE).messages.stream(model=MODEL, max_tokens=100, messages=messages()) as s:
            return list(s.text_stream)

    assert run() == without_nbcost(llm, run) == ["word0 ", "word1 ", "word2 ", "word3 "]


def test_stream_helper_break_records_once_on_exit(srv, llm):
    with client(srv, chunks=40).messages.stream(model=MODEL, max_tokens=100, messages=messages()) as s:
        for i, _event in enumerate(s):
            if i == 4:
                break
    call = one_call(llm)
    assert "partial" in call.flags and call.quantities["input_tokens"] == 21


def test_beta_messages(srv, llm):
    c = client(srv, **CACHE)
    c.beta.messages.create(model=MODEL, max_tokens=100, messages=messages())
    list(c.beta.messages.create(model=MODEL, max_tokens=100, messages=messages(), stream=True))
    calls = llm_calls(llm)
    assert len(calls) == 2
    for call in calls:
        check(call)


def test_with_raw_response(srv, llm):
    raw = client(srv, **CACHE).messages.with_raw_response.create(model=MODEL, max_tokens=100,
                                                                 messages=messages())
    assert raw.parse().usage.cache_read_input_tokens == 2000
    check(one_call(llm))


def test_tiered_price_past_200k(srv, llm):
    c = client(srv, input_tokens=250_000, output_tokens=1000)
    c.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=messages())
    call = one_call(llm)
    expected = expected_cost("claude-sonnet-4-5", "anthropic", input_tokens=250_000, output_tokens=1000)
    flat = expected_cost("claude-sonnet-4-5", "anthropic", input_tokens=150_000, output_tokens=1000)
    assert call.cost_usd == expected
    assert expected > flat * 250_000 / 150_000  # the tier rate applied to every token


def test_server_error(srv, llm):
    with pytest.raises(anthropic.InternalServerError):
        ask(client(srv, fail_status=500))
    with pytest.raises(anthropic.InternalServerError):
        with client(srv, fail_status=500).messages.stream(model=MODEL, max_tokens=9, messages=messages()):
            pass
    calls = llm_calls(llm)
    assert [c.attributes["status"] for c in calls] == ["error", "error"]


def test_budget_refusal_sends_nothing(srv, llm):
    llm.settings.budget_usd, llm.settings.budget_hard = __import__("decimal").Decimal(0), True
    before = len(srv.requests)
    with pytest.raises(nbcost.BudgetExceeded):
        ask(client(srv))
    with pytest.raises(nbcost.BudgetExceeded):
        client(srv).messages.stream(model=MODEL, max_tokens=9, messages=messages())
    assert len(srv.requests) == before


def test_async_with_raw_response(srv, llm):
    async def go():
        return await aclient(srv, **CACHE).messages.with_raw_response.create(
            model=MODEL, max_tokens=100, messages=messages())

    raw = asyncio.run(go())
    assert raw.http_response.status_code == 200
    check(one_call(llm))
