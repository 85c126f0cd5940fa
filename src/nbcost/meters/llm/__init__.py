"""The LLM meter: every call made through openai, anthropic, google-genai, mistralai or litellm
becomes one priced ``llm_call`` usage, recorded the moment it completes; a generation with
transformers or vLLM in this process, or a call to a server the user runs, becomes a
``self-hosted`` one (:mod:`.selfhosted`).

    session.add_meter(LlmMeter())      # done by %load_ext nbcost
    session.remove_meter("llm")        # %unload_ext: every patch is undone

Importing this package imports no SDK: each is patched when the notebook imports it.
"""

from __future__ import annotations

import logging
from typing import Any

from ..base import Meter, MeterSink

__all__ = ["LlmMeter"]

log = logging.getLogger("nbcost.llm")


def _tables() -> dict[str, list]:
    from . import (anthropic, google_genai, hf_transformers, litellm, mistral, openai, vllm_async,
                   vllm_offline)

    return {
        "openai": openai.PATCHES,
        "anthropic": anthropic.PATCHES,
        "google-genai": google_genai.PATCHES,
        "mistralai": mistral.PATCHES,
        "litellm": litellm.PATCHES,
        "transformers": hf_transformers.PATCHES,  # local generation: self-hosted
        "vllm": [*vllm_offline.PATCHES, *vllm_async.PATCHES],
    }


class LlmMeter(Meter):
    """Patches the LLM SDKs at class level while started; ``stop()`` removes every patch."""

    name = "llm"

    def __init__(self, preload_tokenizer: bool = True) -> None:
        self._patcher: Any = None
        # A child process or a Dask worker loads the tokenizer (~0.3 s of CPU) only when an
        # estimate is needed, not in every worker it starts.
        self._preload = preload_tokenizer

    @property
    def running(self) -> bool:
        return self._patcher is not None

    def start(self, sink: MeterSink) -> None:
        """Install the patches (idempotent: a second start while running does nothing)."""
        if self._patcher is not None:
            return
        from .patching import Patcher
        from .recorder import Recorder

        recorder = Recorder(sink)
        patcher = Patcher(recorder, _tables())
        try:
            patcher.install()
        except Exception as exc:  # never break the session over a patch
            recorder.fault("patching the LLM SDKs", exc)
        if self._preload:
            recorder.estimator.preload()
        self._patcher = patcher

    def stop(self) -> None:
        """Remove every patch; calls still streaming are recorded when their stream ends."""
        patcher, self._patcher = self._patcher, None
        if patcher is None:
            return
        patcher.recorder.active = False
        try:
            patcher.uninstall()
        except Exception:
            log.warning("nbcost: could not remove every LLM patch", exc_info=True)
