"""Which LLM calls are *self-hosted*: generated on GPUs the user runs, not bought from an API.

Three kinds, all recorded as ``llm_call`` with ``provider: "self-hosted"`` and ``cost_usd`` 0
(their cost is GPU time, measured by the GPU meter and turned into an effective price per
million tokens by :class:`nbcost.meters.selfhosted.LocalModelMeter`):

* ``transformers`` ``generate()`` and vLLM's offline ``LLM`` in this process (their own modules);
* an OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI) at a base URL listed in
  ``settings.self_hosted_urls``;
* with ``settings.self_hosted_auto`` (the default), a model genai-prices does not know served
  from a loopback or private address (``localhost``, ``127.0.0.1``, ``10.x``, ``192.168.x``,
  a one-word host name, ``*.local``/``*.internal``). A known model there (a proxy in front
  of the real API, or the loopback test server) keeps its API price.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LOCAL_ENGINES", "SELF_HOSTED", "SOURCE", "is_private_url", "listed_self_hosted"]

SELF_HOSTED = "self-hosted"
#: The ``CallSpec.provider`` of engines that generate in this process: always self-hosted.
LOCAL_ENGINES = frozenset({"transformers", "vllm"})
#: ``price_source`` of a self-hosted call: its dollars are the GPU meter's, not a price list's.
SOURCE = "self-hosted: GPU time (see the local meter)"

_PRIVATE: dict[str, bool] = {}
_PRIVATE_SUFFIXES = (".local", ".internal", ".lan", ".home.arpa", ".localhost")


def is_private_url(url: str | None) -> bool:
    """True for a loopback, private, link-local or single-label host (not a public API)."""
    if not url:
        return False
    hit = _PRIVATE.get(url)
    if hit is None:
        hit = _private_host(urlsplit(url).hostname or "")
        if len(_PRIVATE) < 1024:
            _PRIVATE[url] = hit
    return hit


def _private_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if not host:
        return False
    if host == "localhost" or host.endswith(_PRIVATE_SUFFIXES) or host == "host.docker.internal":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a bare name: a machine on the local network or in a cluster
    return address.is_loopback or address.is_private or address.is_link_local


def listed_self_hosted(url: str | None, settings: Any) -> bool:
    """``url`` starts with one of ``settings.self_hosted_urls``."""
    listed = getattr(settings, "self_hosted_urls", None) or ()
    if not url or not listed:
        return False
    return any(url.startswith(prefix.rstrip("/")) for prefix in listed)


def auto(settings: Any) -> bool:
    return bool(getattr(settings, "self_hosted_auto", True))
