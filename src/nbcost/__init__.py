"""nbcost: what your notebook's GPUs and LLM calls cost, cell by cell, while they run.

In a notebook::

    %load_ext nbcost

    %%cost --label "fine-tune" --budget 5
    train()

Anywhere::

    with nbcost.track("embed corpus") as t:
        embed(corpus)
    print(t.cost_usd)
"""

from __future__ import annotations

from .api import Tracked, session, track
from .errors import BudgetExceeded, ConfigError, LedgerError, NbcostError

__version__ = "0.1.0"

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "LedgerError",
    "NbcostError",
    "Tracked",
    "__version__",
    "load_ipython_extension",
    "session",
    "track",
    "unload_ipython_extension",
]


def load_ipython_extension(ip) -> None:
    """``%load_ext nbcost``: record every cell, add ``%cost``/``%%cost``, patch LLM clients."""
    from .ipython import load

    load(ip)


def unload_ipython_extension(ip) -> None:
    """``%unload_ext nbcost``: remove every hook, magic, patch and thread nbcost added."""
    from .ipython import unload

    unload(ip)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nbcost"}]
