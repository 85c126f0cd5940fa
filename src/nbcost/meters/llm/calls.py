"""One LLM call in flight (:class:`Call`), how a patched method is read (:class:`CallSpec`),
and the two facts taken from a request before it is sent: its API root and its hash."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

import orjson

from .usage import TokenCounts

if TYPE_CHECKING:
    from .recorder import Recorder
    from .tokens import Estimator

__all__ = ["Call", "CallSpec", "clean_url", "request_hash", "url_origin"]

#: Request keys left out of the request hash: transport details, not what is asked.
_UNHASHED = {"extra_headers", "extra_query", "timeout", "api_key", "api_base", "base_url", "stream",
             "stream_options", "http_options", "retries", "server_url", "metadata", "user"}


@dataclass(frozen=True)
class CallSpec:
    """How one patched SDK method is read. Functions are SDK-specific and live in its module.

    Attributes:
        provider: genai-prices' provider id ("openai", "anthropic", "google", "mistral").
        api: the operation ("chat", "responses", "embeddings", "messages", "generate").
        base_url: ``(instance, kwargs) -> str | None``, the API root the request goes to.
        streaming: ``(kwargs) -> bool``: will the result be a stream?
        on_result: ``(recorder, call, result) -> result``: read a response (set ``call.usage``)
            or return a stream proxy that records later.
        on_chunk: ``(call, chunk) -> None``: note usage/text in one stream chunk (hot path).
        read_usage: ``(raw_usage) -> TokenCounts``.
        estimate_input: ``(estimator, kwargs) -> int``, prompt tokens when usage is missing.
    """

    provider: str
    api: str
    base_url: Callable[[Any, dict], str | None]
    streaming: Callable[[dict], bool]
    on_result: Callable[[Recorder, Call, Any], Any]
    on_chunk: Callable[[Call, Any], None] | None
    read_usage: Callable[[Any], TokenCounts]
    estimate_input: Callable[[Estimator, dict], int] | None = None


@dataclass(eq=False, slots=True)
class Call:
    """One LLM call in flight (mutable; only its wrapper and stream proxy touch it)."""

    spec: CallSpec
    base_url: str | None
    request_model: str | None
    streaming: bool
    request_hash: str | None
    kwargs: dict | None
    started: float = field(default_factory=time.perf_counter)
    usage: Any = None
    response_model: str | None = None
    service_tier: str | None = None
    pieces: list[str] = field(default_factory=list)
    is_async: bool | None = None
    proxied: bool = False
    ended: bool = False
    error: str | None = None
    interrupted: bool = False  # Ctrl-C or a cancelled task stopped its stream: not an SDK error
    done: bool = False
    extra: dict | None = None  # a local engine's own figures (prefill_s, decode_s), logged as is


_CLEAN_URLS: dict[int, tuple[Any, str]] = {}


def clean_url(url: Any) -> str | None:
    """``scheme://host[:port]/path``: no credentials, query or fragment. Cached by the URL
    object's identity (SDK clients keep one), since ``str()`` of an httpx URL is not free."""
    if not url:
        return None
    hit = _CLEAN_URLS.get(id(url))
    if hit is not None and hit[0] is url:
        return hit[1]
    cleaned = _clean(str(url))
    if len(_CLEAN_URLS) < 1024:
        _CLEAN_URLS[id(url)] = (url, cleaned)
    return cleaned


_ORIGINS: dict[str, str] = {}


def url_origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a cleaned URL: what the spend log keeps. A path can hold a
    secret (``http://proxy/sk-…/v1``, a gateway's account key), so it is used for pricing in
    memory (some providers are told apart by path) and never written."""
    if not url:
        return None
    origin = _ORIGINS.get(url)
    if origin is None:
        parts = urlsplit(url)
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # a port that is not a number
            port = ""
        origin = f"{parts.scheme}://{parts.hostname or ''}{port}"
        if len(_ORIGINS) < 1024:
            _ORIGINS[url] = origin
    return origin


def _clean(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


def request_hash(kwargs: dict) -> str:
    """sha256 of the canonical request; equal requests hash equal, the text is never kept.
    (orjson: a tenth of json's time on a chat request; json for what orjson refuses.)"""
    canonical = {k: v for k, v in kwargs.items() if k not in _UNHASHED}
    try:
        encoded = orjson.dumps(canonical, default=_jsonable, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a key that is not text, an int beyond 64 bits
        encoded = _ENCODER.encode(canonical).encode()
    return hashlib.sha256(encoded).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, type):  # a class: parse()'s response format (a pydantic model)
        return _class_shape(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    return type(value).__name__


@functools.lru_cache(maxsize=64)
def _class_shape(cls: type) -> Any:
    """A class in a request, as the SDK sends it: a model's JSON schema (so a model changed
    and defined again hashes anew), else its name. Once per class: a schema is not cheap."""
    schema = getattr(cls, "model_json_schema", None)
    if callable(schema):
        try:
            return {"schema": schema()}
        except Exception:  # noqa: BLE001 - a model pydantic cannot describe: its name will do
            pass
    return f"{cls.__module__}.{cls.__qualname__}"


#: One encoder, built once: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_jsonable)
