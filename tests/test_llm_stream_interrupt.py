"""Streams stopped by Ctrl-C or a cancelled task: the real openai and anthropic SDKs against the
loopback server. The prompt was sent and text arrived, so the call is estimated as a ``break``
is (input from the request, output from the chunks seen), flagged ``interrupted``, never $0.

Ctrl-C lands where the main thread is: nearly always inside the SDK, waiting on the socket. An
httpx transport whose byte stream raises after a fixed number of bytes puts it exactly there, at
the same place in every run (a byte count, not a timing)."""

from __future__ import annotations

import asyncio
import gc

import anthropic
import httpx
import openai
import pytest
from llm_support import FAKE_KEY, llm, llm_calls, messages, one_call, srv  # noqa: F401

#: Bytes the SDK receives before the interruption: a few chunks of a 50-chunk stream.
CUT_AT = 1500


def _cut(parts, raise_):
    """``parts`` up to ``CUT_AT`` bytes, then ``raise_()``."""
    left = CUT_AT
    for part in parts:
        if len(part) >= left:
            if left:
                yield part[:left]
            raise raise_()
        left -= len(part)
        yield part


def interrupting_client(http, raise_=KeyboardInterrupt):
    """A real ``http.Client`` (``http``: the httpx package the SDK uses; anthropic's is httpx2)
    whose response bodies raise ``raise_()`` after ``CUT_AT`` bytes."""

    class CutStream(http.SyncByteStream):
        def __init__(self, inner) -> None:
            self.inner = inner

        def __iter__(self):
            return _cut(self.inner, raise_)

        def close(self) -> None:
            self.inner.close()

    class Transport(http.HTTPTransport):
        def handle_request(self, request):
            response = super().handle_request(request)
            response.stream = CutStream(response.stream)
            return response

    return http.Client(transport=Transport())


def cancelling_async_client():
    """A real ``httpx.AsyncClient`` whose bodies raise CancelledError after ``CUT_AT`` bytes: the
    task was cancelled while it waited on the socket."""

    class CutStream(httpx.AsyncByteStream):
        def __init__(self, inner) -> None:
            self.inner = inner

        async def __aiter__(self):
            left = CUT_AT
            async for part in self.inner:
                if len(part) >= left:
                    if left:
                        yield part[:left]
                    raise asyncio.CancelledError()
                left -= len(part)
                yield part

        async def aclose(self) -> None:
            await self.inner.aclose()

    class Transport(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request):
            response = await super().handle_async_request(request)
            response.stream = CutStream(response.stream)
            return response

    return httpx.AsyncClient(transport=Transport())


def openai_client(srv, raise_=KeyboardInterrupt) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url("openai", chunks=50), api_key=FAKE_KEY, max_retries=0,
                         http_client=interrupting_client(httpx, raise_))


def anthropic_client(srv) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=srv.base_url("anthropic", chunks=50), api_key=FAKE_KEY,
                               max_retries=0, http_client=interrupting_client(anthropic_httpx()))


def anthropic_httpx():
    """The httpx package this anthropic SDK is built on (httpx, or its fork httpx2)."""
    from anthropic import _base_client

    return getattr(_base_client, "httpx2", None) or _base_client.httpx


def assert_estimated_interruption(call) -> None:
    assert {"estimated", "interrupted"} <= set(call.flags), call.flags
    assert "error" not in call.flags
    q = call.quantities
    assert q["calls"] == 1 and q["errors"] == 0
    assert q["input_tokens"] > 0 and q["output_tokens"] > 0
    assert call.cost_usd is not None and call.cost_usd > 0
    assert call.attributes["status"] == "interrupted"


def test_openai_ctrl_c_inside_the_stream_loop(srv, llm):
    stream = openai_client(srv).chat.completions.create(model="gpt-4o", messages=messages(),
                                                        stream=True)
    seen = []
    with pytest.raises(KeyboardInterrupt) as raised:
        for chunk in stream:
            seen.append(chunk)
    assert type(raised.value) is KeyboardInterrupt  # the user's exception, unchanged
    assert 1 < len(seen) < 50  # the cut fell mid-stream
    assert_estimated_interruption(one_call(llm))  # recorded at once, not at garbage collection


def test_openai_ctrl_c_in_the_loop_body_of_a_with_block(srv, llm):
    c = openai.OpenAI(base_url=srv.base_url("openai", chunks=50), api_key=FAKE_KEY, max_retries=0)
    with pytest.raises(KeyboardInterrupt):
        with c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True) as stream:
            for i, _chunk in enumerate(stream):
                if i == 5:
                    raise KeyboardInterrupt
    assert_estimated_interruption(one_call(llm))


def test_openai_ctrl_c_in_a_bare_loop_body_is_estimated_like_a_break(srv, llm):
    """A loop body the proxy cannot see: the stream is recorded when it is dropped, as a
    ``break`` is, with the text seen so far (never 0 tokens)."""
    c = openai.OpenAI(base_url=srv.base_url("openai", chunks=50), api_key=FAKE_KEY, max_retries=0)
    stream = c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True)
    with pytest.raises(KeyboardInterrupt):
        for i, _chunk in enumerate(stream):
            if i == 5:
                raise KeyboardInterrupt
    del stream
    gc.collect()
    call = one_call(llm)
    assert {"estimated", "partial"} <= set(call.flags) and "error" not in call.flags
    assert call.quantities["output_tokens"] > 0 and call.cost_usd > 0


def test_openai_async_stream_cancelled_mid_read(srv, llm):
    async def consume():
        c = openai.AsyncOpenAI(base_url=srv.base_url("openai", chunks=50), api_key=FAKE_KEY,
                               max_retries=0,
                               http_client=cancelling_async_client())
        stream = await c.chat.completions.create(model="gpt-4o", messages=messages(), stream=True)
        async for _chunk in stream:
            pass

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(consume())
    assert_estimated_interruption(one_call(llm))


def test_anthropic_ctrl_c_inside_the_stream_loop(srv, llm):
    stream = anthropic_client(srv).messages.create(model="claude-haiku-4-5", max_tokens=100,
                                                   messages=messages(), stream=True)
    with pytest.raises(KeyboardInterrupt):
        for _event in stream:
            pass
    assert_estimated_interruption(one_call(llm))


def test_anthropic_stream_helper_ctrl_c(srv, llm):
    with pytest.raises(KeyboardInterrupt):
        with anthropic_client(srv).messages.stream(model="claude-haiku-4-5", max_tokens=100,
                                                   messages=messages()) as stream:
            for _text in stream.text_stream:
                pass
    assert_estimated_interruption(one_call(llm))


def test_an_sdk_error_mid_stream_is_still_an_error_not_an_interruption(srv, llm):
    stream = openai_client(srv, lambda: httpx.ReadError("connection reset")).chat.completions.create(
        model="gpt-4o", messages=messages(), stream=True)
    with pytest.raises(openai.APIConnectionError):
        for _chunk in stream:
            pass
    call = one_call(llm)
    assert "error" in call.flags and "interrupted" not in call.flags
    assert len(llm_calls(llm)) == 1
