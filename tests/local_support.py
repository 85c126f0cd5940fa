"""The model the local-model tests generate with: a 2-layer GPT-2 with random weights, built
here (nothing is downloaded)."""

from __future__ import annotations


def tiny_gpt2(name: str | None = None):
    """The same tiny model each call (seeded); ``name`` is what nbcost calls it (its name or
    path), else transformers' own ("gpt2")."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100,
                                       n_positions=64, eos_token_id=99, pad_token_id=0)).eval()
    if name is not None:
        model.config._name_or_path = name
    return model
