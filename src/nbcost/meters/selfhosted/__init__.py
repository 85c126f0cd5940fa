"""Self-hosted models: the effective price of local tokens from measured GPU cost.

:class:`LocalModelMeter` (added to a session by its first self-hosted call), the pure
arithmetic in :mod:`.price`, and the pid behind a local server's URL in :mod:`.server`.
"""

from __future__ import annotations

from .meter import LocalCall, LocalModelMeter
from .price import EffectivePrice, at_busy_share, break_even_busy_share, effective_price

__all__ = ["EffectivePrice", "LocalCall", "LocalModelMeter", "at_busy_share",
           "break_even_busy_share", "effective_price"]
