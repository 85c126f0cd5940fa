"""One shape for every provider's token counts.

Providers disagree on what "input" means, which is how other tools bill cached tokens twice:

* OpenAI (chat, responses) and Mistral: ``prompt_tokens`` / ``input_tokens`` already *include*
  cached tokens; ``completion_tokens`` includes reasoning tokens.
* Anthropic: ``input_tokens`` *excludes* cache reads and writes, reported beside it.
* Gemini: ``promptTokenCount`` includes cached content (and tool-use prompts are separate);
  ``candidatesTokenCount`` excludes ``thoughtsTokenCount``.

:class:`TokenCounts` always holds totals: ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning. Readers take SDK objects or plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TokenCounts", "from_anthropic", "from_gemini", "from_openai", "get"]


@dataclass(slots=True)
class TokenCounts:
    """Token totals of one call (all ints; 0 where the provider reports nothing). Read-only:
    not frozen only because a frozen one costs five times as much to build, on every call."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0

    def genai_usage(self) -> dict[str, int]:
        """The keyword arguments of ``genai_prices.Usage`` (only units that are present)."""
        units = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cache_read_tokens:
            units["cache_read_tokens"] = self.cache_read_tokens
        if self.cache_write_1h_tokens:  # split writes only when the 1h TTL was used
            units["cache_write_tokens"] = self.cache_write_tokens
            units["cache_write_1h_tokens"] = self.cache_write_1h_tokens
            units["cache_write_5m_tokens"] = self.cache_write_5m_tokens or 0
        elif self.cache_write_tokens:
            units["cache_write_tokens"] = self.cache_write_tokens
        if self.input_audio_tokens:
            units["input_audio_tokens"] = self.input_audio_tokens
        if self.output_audio_tokens:
            units["output_audio_tokens"] = self.output_audio_tokens
        return units


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``, whichever the SDK object supports."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        value = obj.get(name, default)
    else:
        value = getattr(obj, name, default)
    return default if value is None else value


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def from_openai(usage: Any) -> TokenCounts:
    """OpenAI chat (``prompt_tokens``) or Responses (``input_tokens``) usage; also Mistral's."""
    if isinstance(usage, dict):
        usage = _Attrs(usage)
    prompt = getattr(usage, "prompt_tokens", None)
    if prompt is not None:
        inp, out = prompt, getattr(usage, "completion_tokens", 0)
        in_details = getattr(usage, "prompt_tokens_details", None)
        out_details = getattr(usage, "completion_tokens_details", None)
    else:
        inp, out = getattr(usage, "input_tokens", 0), getattr(usage, "output_tokens", 0)
        in_details = getattr(usage, "input_tokens_details", None)
        out_details = getattr(usage, "output_tokens_details", None)
    cached = write = reasoning = audio_in = audio_out = image_in = 0
    if in_details is not None:
        if isinstance(in_details, dict):
            in_details = _Attrs(in_details)
        cached = _int(getattr(in_details, "cached_tokens", 0))
        write = _int(getattr(in_details, "cache_write_tokens", 0))
        audio_in = _int(getattr(in_details, "audio_tokens", 0))
        image_in = _int(getattr(in_details, "image_tokens", 0))
    if out_details is not None:
        if isinstance(out_details, dict):
            out_details = _Attrs(out_details)
        reasoning = _int(getattr(out_details, "reasoning_tokens", 0))
        audio_out = _int(getattr(out_details, "audio_tokens", 0))
    return TokenCounts(_int(inp), _int(out), cached, write, None, None, reasoning, audio_in,
                       audio_out, image_in)


class _Attrs:
    """Attribute access over a dict (usage that arrived as JSON)."""

    def __init__(self, data: dict) -> None:
        self.__dict__.update(data)


def from_anthropic(usage: Any) -> TokenCounts:
    """Anthropic usage: cache reads and writes are *beside* ``input_tokens``; add them."""
    read = _int(get(usage, "cache_read_input_tokens", 0))
    write = _int(get(usage, "cache_creation_input_tokens", 0))
    creation = get(usage, "cache_creation")
    write_5m = get(creation, "ephemeral_5m_input_tokens")
    write_1h = get(creation, "ephemeral_1h_input_tokens")
    return TokenCounts(
        input_tokens=_int(get(usage, "input_tokens", 0)) + read + write,
        output_tokens=_int(get(usage, "output_tokens", 0)),
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_5m_tokens=write_5m if creation is not None else None,
        cache_write_1h_tokens=write_1h if creation is not None else None,
    )


def from_gemini(usage: Any) -> TokenCounts:
    """Gemini ``usage_metadata``: thoughts are *beside* candidates, tool-use prompts beside input."""
    thoughts = _int(get(usage, "thoughts_token_count", 0))
    return TokenCounts(
        input_tokens=_int(get(usage, "prompt_token_count", 0))
        + _int(get(usage, "tool_use_prompt_token_count", 0)),
        output_tokens=_int(get(usage, "candidates_token_count", 0)) + thoughts,
        cache_read_tokens=_int(get(usage, "cached_content_token_count", 0)),
        reasoning_tokens=thoughts,
    )
