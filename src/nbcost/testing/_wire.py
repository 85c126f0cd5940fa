"""What each provider sends back: JSON bodies and SSE event lists, built from a :class:`Scenario`.

Token counts follow each provider's own convention, so a meter that mixes them up fails:

* OpenAI and Mistral: ``prompt_tokens`` *includes* cached tokens, ``completion_tokens``
  *includes* reasoning tokens.
* Anthropic: ``input_tokens`` *excludes* cache reads and writes, which are reported beside it.
* Gemini: ``promptTokenCount`` includes cached content; ``candidatesTokenCount`` excludes
  ``thoughtsTokenCount``.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["Scenario", "openai_chat", "openai_responses", "openai_embeddings", "anthropic_messages",
           "gemini_generate", "mistral_chat", "mistral_embeddings"]


#: A fixed creation time, so two runs of the same request produce identical chunks.
CREATED = 1764201600


@dataclass
class Scenario:
    """How the loopback server answers. Counts are the *totals* a bill is based on.

    Attributes:
        input_tokens: all input tokens, cached ones included.
        output_tokens: all output tokens, reasoning included.
        cached_tokens: input tokens read from the provider's cache.
        cache_write_tokens: input tokens written to the cache (Anthropic; 5-minute TTL).
        cache_write_1h_tokens: of those, written with the 1-hour TTL (Anthropic).
        reasoning_tokens: output tokens spent thinking.
        model: the model name the response reports (``None``: echo the request's).
        chunks: text pieces a stream sends.
        split_bytes: cut the SSE byte stream into writes of this many bytes (None: one per event).
        azure_trailer: after the usage chunk, send a content-filter chunk as Azure does.
        anthropic_delta_steps: how many cumulative ``message_delta`` events to send.
        fail_status: answer every request with this HTTP status (500) instead.
        service_tier: the service tier the response reports.
        abort_after_bytes: drop the connection after this many bytes of a stream (a network
            failure in the middle of a stream).
        reply: the answer's text (None: ``chunks`` words), sent in ``chunks`` pieces when
            streamed: JSON for a structured-output call (``parse()``).
    """

    input_tokens: int = 21
    output_tokens: int = 9
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    model: str | None = None
    chunks: int = 4
    split_bytes: int | None = 7
    azure_trailer: bool = False
    anthropic_delta_steps: int = 2
    fail_status: int | None = None
    service_tier: str | None = None
    abort_after_bytes: int | None = None
    reply: str | None = None

    def pieces(self) -> list[str]:
        if self.reply is not None:
            size = -(-len(self.reply) // self.chunks)
            return [self.reply[i:i + size] for i in range(0, len(self.reply), size)]
        return [f"word{i} " for i in range(self.chunks)]

    def text(self) -> str:
        return "".join(self.pieces())


def _model(s: Scenario, request: dict[str, Any], default: str = "unknown") -> str:
    return s.model or request.get("model") or default


# --- OpenAI chat completions --------------------------------------------------------------

def _chat_usage(s: Scenario) -> dict[str, Any]:
    return {
        "prompt_tokens": s.input_tokens,
        "completion_tokens": s.output_tokens,
        "total_tokens": s.input_tokens + s.output_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": s.reasoning_tokens, "audio_tokens": 0},
    }


def openai_chat(s: Scenario, req: dict[str, Any]) -> tuple[dict | None, list[tuple[str | None, Any]]]:
    """A chat completion body, or the SSE events of one when ``stream`` is set."""
    model, created = _model(s, req), CREATED
    base = {"id": "chatcmpl-loop1", "created": created, "model": model, "system_fingerprint": "fp_loop"}
    if s.service_tier:
        base["service_tier"] = s.service_tier
    if not req.get("stream"):
        message = {"role": "assistant", "content": s.text(), "refusal": None}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return {**base, "object": "chat.completion", "choices": [choice], "usage": _chat_usage(s)}, []
    include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict, finish: str | None) -> dict:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "object": "chat.completion.chunk", "choices": [choice], **extra}

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}, None))]
    events += [(None, chunk({"content": piece}, None)) for piece in s.pieces()]
    events.append((None, chunk({}, "stop")))
    if include_usage:
        events.append((None, {**base, "object": "chat.completion.chunk", "choices": [],
                              "usage": _chat_usage(s)}))
    if s.azure_trailer:  # Azure's content-filter chunk arrives after the usage chunk
        filt = {"hate": {"filtered": False, "severity": "safe"}}
        choice = {"index": 0, "delta": {}, "finish_reason": None, "content_filter_results": filt,
                  "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 9}}
        events.append((None, {"id": "", "object": "", "created": 0, "model": "", "choices": [choice],
                              **extra}))
    events.append((None, "[DONE]"))
    return None, events


# --- OpenAI responses -----------------------------------------------------------------------

def _response(s: Scenario, req: dict[str, Any], status: str) -> dict[str, Any]:
    done = status == "completed"
    content = [{"type": "output_text", "text": s.text(), "annotations": [], "logprobs": []}]
    message = {"type": "message", "id": "msg_loop1", "status": "completed", "role": "assistant",
               "content": content}
    usage = {
        "input_tokens": s.input_tokens,
        "input_tokens_details": {"cached_tokens": s.cached_tokens},
        "output_tokens": s.output_tokens,
        "output_tokens_details": {"reasoning_tokens": s.reasoning_tokens},
        "total_tokens": s.input_tokens + s.output_tokens,
    }
    body = {"id": "resp_loop1", "object": "response", "created_at": CREATED,
            "status": status, "model": _model(s, req), "output": [message] if done else [],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
            "incomplete_details": None, "instructions": None, "metadata": {},
            "temperature": 1.0, "top_p": 1.0, "usage": usage if done else None}
    if s.service_tier:
        body["service_tier"] = s.service_tier
    return body


def openai_responses(s: Scenario, req: dict[str, Any]) -> tuple[dict | None, list]:
    if not req.get("stream"):
        return _response(s, req, "completed"), []
    item = {"type": "message", "id": "msg_loop1", "status": "in_progress", "role": "assistant",
            "content": []}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": "msg_loop1", "output_index": 0, "content_index": 0}
    raw = [
        {"type": "response.created", "response": _response(s, req, "in_progress")},
        {"type": "response.in_progress", "response": _response(s, req, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
        *({"type": "response.output_text.delta", **where, "delta": p, "logprobs": []}
          for p in s.pieces()),
        {"type": "response.output_text.done", **where, "text": s.text(), "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": s.text()}},
        {"type": "response.output_item.done", "output_index": 0,
         "item": _response(s, req, "completed")["output"][0]},
        {"type": "response.completed", "response": _response(s, req, "completed")},
    ]
    return None, [(e["type"], {**e, "sequence_number": i}) for i, e in enumerate(raw)]


def openai_embeddings(s: Scenario, req: dict[str, Any]) -> dict[str, Any]:
    vector = [0.25, -0.5, 0.125]
    if req.get("encoding_format") == "base64":
        packed: Any = base64.b64encode(struct.pack("<3f", *vector)).decode()
    else:
        packed = vector
    inputs = req.get("input")
    n = len(inputs) if isinstance(inputs, list) and inputs and isinstance(inputs[0], str) else 1
    data = [{"object": "embedding", "index": i, "embedding": packed} for i in range(n)]
    usage = {"prompt_tokens": s.input_tokens, "total_tokens": s.input_tokens}
    return {"object": "list", "data": data, "model": _model(s, req), "usage": usage}


# --- Anthropic messages ---------------------------------------------------------------------

def _anthropic_usage(s: Scenario, output_tokens: int) -> dict[str, Any]:
    writes_1h = s.cache_write_1h_tokens
    return {
        "input_tokens": s.input_tokens - s.cached_tokens - s.cache_write_tokens,
        "cache_creation_input_tokens": s.cache_write_tokens,
        "cache_read_input_tokens": s.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": s.cache_write_tokens - writes_1h,
                           "ephemeral_1h_input_tokens": writes_1h},
        "output_tokens": output_tokens,
        "service_tier": s.service_tier or "standard",
    }


def anthropic_messages(s: Scenario, req: dict[str, Any]) -> tuple[dict | None, list]:
    model = _model(s, req)
    message = {"id": "msg_loop1", "type": "message", "role": "assistant", "model": model,
               "stop_reason": None, "stop_sequence": None}
    if not req.get("stream"):
        content = [{"type": "text", "text": s.text()}]
        return {**message, "content": content, "stop_reason": "end_turn",
                "usage": _anthropic_usage(s, s.output_tokens)}, []
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start",
                           "message": {**message, "content": [], "usage": _anthropic_usage(s, 1)}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    for piece in s.pieces():
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": piece}}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    steps = max(1, s.anthropic_delta_steps)
    for step in range(1, steps + 1):  # cumulative: each carries the running total
        usage = _anthropic_usage(s, s.output_tokens * step // steps)
        events.append(("message_delta", {"type": "message_delta", "usage": usage,
                                         "delta": {"stop_reason": "end_turn", "stop_sequence": None}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return None, events


# --- Gemini ---------------------------------------------------------------------------------

def _gemini_body(s: Scenario, model: str, text: str, candidates_tokens: int) -> dict[str, Any]:
    usage = {"promptTokenCount": s.input_tokens,
             "candidatesTokenCount": candidates_tokens,
             "totalTokenCount": s.input_tokens + candidates_tokens + s.reasoning_tokens}
    if s.cached_tokens:
        usage["cachedContentTokenCount"] = s.cached_tokens
    if s.reasoning_tokens:
        usage["thoughtsTokenCount"] = s.reasoning_tokens
    candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
            "responseId": "loop1"}


def gemini_generate(s: Scenario, model: str, stream: bool) -> tuple[dict | None, list]:
    model = s.model or model
    visible = s.output_tokens - s.reasoning_tokens
    if not stream:
        body = _gemini_body(s, model, s.text(), visible)
        body["candidates"][0]["finishReason"] = "STOP"
        return body, []
    events = []
    pieces = s.pieces()
    for i, piece in enumerate(pieces, 1):  # every chunk repeats the running usage
        body = _gemini_body(s, model, piece, visible * i // len(pieces))
        if i == len(pieces):
            body["candidates"][0]["finishReason"] = "STOP"
        events.append((None, body))
    return None, events


# --- Mistral --------------------------------------------------------------------------------

def mistral_chat(s: Scenario, req: dict[str, Any]) -> tuple[dict | None, list]:
    model = _model(s, req)
    usage = {"prompt_tokens": s.input_tokens, "completion_tokens": s.output_tokens,
             "total_tokens": s.input_tokens + s.output_tokens}
    base = {"id": "mistral-loop1", "created": CREATED, "model": model}
    if not req.get("stream"):
        choice = {"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": s.text(), "tool_calls": None}}
        return {**base, "object": "chat.completion", "choices": [choice], "usage": usage}, []
    events: list[tuple[str | None, Any]] = []
    pieces = s.pieces()
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        chunk = {**base, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}]}
        if last:
            chunk["usage"] = usage
        events.append((None, chunk))
    events.append((None, "[DONE]"))
    return None, events


def mistral_embeddings(s: Scenario, req: dict[str, Any]) -> dict[str, Any]:
    inputs = req.get("inputs") or req.get("input") or [""]
    n = len(inputs) if isinstance(inputs, list) else 1
    return {"id": "emb-loop1", "object": "list", "model": _model(s, req),
            "data": [{"object": "embedding", "embedding": [0.25, -0.5], "index": i} for i in range(n)],
            "usage": {"prompt_tokens": s.input_tokens, "completion_tokens": 0,
                      "total_tokens": s.input_tokens}}
