"""A stand-in for the LLM providers, for demos and tests: real SDK clients, real wire, no network.

Example::

    import anthropic, nbcost.testing

    with nbcost.testing.llm_server() as srv:
        client = anthropic.Anthropic(base_url=srv.base_url("anthropic", cached_tokens=1000),
                                     api_key="sk-loopback")
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                               messages=[{"role": "user", "content": "hi"}])

``base_url(provider, **scenario)`` takes any :class:`Scenario` field: token counts (totals,
each provider reports them in its own convention), the reported model, stream chunking and
byte splitting, an Azure trailing content-filter chunk, a failing HTTP status.
"""

from __future__ import annotations

from typing import Any

from ._server import LoopbackServer, ReceivedRequest
from ._wire import Scenario

__all__ = ["LoopbackServer", "ReceivedRequest", "Scenario", "llm_server"]


def llm_server(**defaults: Any) -> LoopbackServer:
    """A :class:`LoopbackServer` (use it as a context manager); ``defaults`` set :class:`Scenario`."""
    return LoopbackServer(Scenario(**defaults))
