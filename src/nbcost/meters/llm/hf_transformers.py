"""transformers: ``GenerationMixin.generate``, and so every pipeline that generates, counted
exactly from the token ids (no tokenizer, no text).

* input tokens: the prompt's real tokens, ``attention_mask.sum()`` when a mask is given (padding
  is not input), else every id; counted once per prompt whatever ``num_return_sequences`` is,
  as an API counts a prompt once for ``n`` completions;
* output tokens: per returned sequence, the new tokens up to and including the first end-of-
  sequence token (what follows it in a batch is padding), over every returned sequence
  (``num_return_sequences`` of each prompt); ``return_dict_in_generate`` outputs read
  ``.sequences``. Decoder-only models return the prompt before the new tokens; encoder-decoder
  models return the decoder's start token before them.
"""

from __future__ import annotations

from typing import Any

from .local_call import local_spec, local_wrapper
from .patching import Patch
from .usage import TokenCounts

__all__ = ["PATCHES", "count_generate", "model_name"]

_UTILS = "transformers.generation.utils"


def model_name(model: Any) -> str | None:
    """The name or path the model was loaded from; its type for a model built from a config."""
    config = getattr(model, "config", None)
    return (getattr(model, "name_or_path", None) or getattr(config, "_name_or_path", None)
            or getattr(config, "model_type", None) or type(model).__name__)


def _prompt(args: tuple, kwargs: dict) -> Any:
    for name in ("input_ids", "inputs"):
        if kwargs.get(name) is not None:
            return kwargs[name]
    return args[0] if args else None


def _eos_ids(model: Any, kwargs: dict) -> list[int]:
    config = kwargs.get("generation_config") or getattr(model, "generation_config", None)
    eos = kwargs.get("eos_token_id", getattr(config, "eos_token_id", None))
    if eos is None:
        return []
    if hasattr(eos, "tolist"):
        eos = eos.tolist()
    return [int(e) for e in eos] if isinstance(eos, (list, tuple)) else [int(eos)]


def count_generate(model: Any, args: tuple, kwargs: dict, result: Any) -> tuple[TokenCounts, None]:
    """Exact input and output tokens of one ``generate()`` call, from its ids."""
    import torch

    sequences = result if isinstance(result, torch.Tensor) else result.sequences
    if sequences.dim() == 1:
        sequences = sequences[None, :]
    prompt = _prompt(args, kwargs)
    mask = kwargs.get("attention_mask")
    embeds = kwargs.get("inputs_embeds")
    ids = prompt if isinstance(prompt, torch.Tensor) and not prompt.is_floating_point() else None
    if ids is not None and ids.dim() == 1:
        ids = ids[None, :]
    if mask is not None and (ids is None or tuple(mask.shape) == tuple(ids.shape)):
        input_tokens = int(mask.sum())
    elif ids is not None:
        input_tokens = ids.numel()
    elif embeds is not None:
        input_tokens = int(embeds.shape[0] * embeds.shape[1])
    else:
        input_tokens = 0
    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    if encoder_decoder:
        new = sequences[:, 1:]  # after the decoder's start token
    elif ids is not None and sequences.shape[1] >= ids.shape[1] and embeds is None:
        new = sequences[:, ids.shape[1]:]
    else:  # prompt given as embeddings: only new tokens come back
        new = sequences
    output_tokens = new.numel()
    eos = _eos_ids(model, kwargs)
    if eos and new.shape[1]:
        is_eos = torch.isin(new, torch.tensor(eos, device=new.device))
        ended = is_eos.any(dim=1)
        first = is_eos.int().argmax(dim=1)
        lengths = torch.where(ended, first + 1, torch.full_like(first, new.shape[1]))
        output_tokens = int(lengths.sum())
    return TokenCounts(input_tokens=input_tokens, output_tokens=output_tokens), None


GENERATE = local_spec("transformers", "generate")

PATCHES = [
    Patch(_UTILS, "GenerationMixin.generate", local_wrapper(GENERATE, model_name, count_generate)),
]
