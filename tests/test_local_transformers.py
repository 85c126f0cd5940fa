"""transformers ``generate()`` (and pipelines) recorded as self-hosted LLM calls, with exact
token counts from the ids, on a tiny randomly initialised GPT-2 built here (no download)."""

from __future__ import annotations

import gc

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LogitsProcessor,
    LogitsProcessorList,
)

from nbcost.meters.llm import LlmMeter
from nbcost.meters.llm.selfhosted import SOURCE
from nbcost.session import Session

VOCAB, EOS, PAD = 100, 99, 0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=64,
                        bos_token_id=98, eos_token_id=EOS, pad_token_id=PAD)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def session(nbcost_home):
    s = Session(meters=[LlmMeter()])
    try:
        yield s
    finally:
        s.close()
        gc.collect()


def local_calls(session):
    return [u for u in session.usages if u.meter == "llm"]


class ForceEos(LogitsProcessor):
    """Row ``row`` ends with EOS as its ``at``-th new token; no other row may end."""

    def __init__(self, prompt_len: int, row: int, at: int) -> None:
        self.prompt_len, self.row, self.at = prompt_len, row, at

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, EOS] = -float("inf")
        if input_ids.shape[1] - self.prompt_len == self.at - 1:
            scores[self.row, :] = -float("inf")
            scores[self.row, EOS] = 0.0
        return scores


def test_generate_counts_real_prompt_tokens_and_every_returned_sequence(session, model):
    ids = torch.tensor([[PAD, PAD, 5, 6, 7], [1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    info = session.open_window("cell", cell_id="c1", execution_count=1)
    out = model.generate(ids, attention_mask=mask, max_new_tokens=5, min_new_tokens=5,
                         do_sample=True, num_return_sequences=3)
    session.close_window(info.id)
    assert out.shape == (6, 10)  # what the user got is generate's own result
    [call] = local_calls(session)
    # 3 + 5 real prompt tokens, counted once per prompt; 2 prompts x 3 sequences x 5 new tokens.
    assert (call.quantities["input_tokens"], call.quantities["output_tokens"]) == (8, 30)
    assert call.cost_usd == 0 and "unpriced" not in call.flags
    a = call.attributes
    assert (a["provider"], a["engine"], a["api"], a["usage_source"]) == (
        "self-hosted", "transformers", "generate", "api")
    assert a["price_source"] == SOURCE and a["base_url"] is None
    assert call.key == "gpt2"  # a model built from a config is named by its type


def test_tokens_after_an_early_end_of_sequence_are_padding(session, model):
    ids = torch.tensor([[11, 12, 13, 14, 15], [21, 22, 23, 24, 25]])
    out = model.generate(ids, max_new_tokens=6, do_sample=False, return_dict_in_generate=True,
                         output_scores=True,
                         logits_processor=LogitsProcessorList([ForceEos(5, row=0, at=3)]))
    assert out.sequences[0, 7].item() == EOS and out.sequences[0, 8:].tolist() == [PAD] * 3
    [call] = local_calls(session)
    # No mask: every prompt id is input. Row 0 made 3 tokens (its EOS included), row 1 six.
    assert (call.quantities["input_tokens"], call.quantities["output_tokens"]) == (10, 9)


def test_a_pipeline_is_one_call_counted_from_its_ids(session, model):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, pipeline

    vocab = {"[PAD]": PAD, **{f"w{i}": i for i in range(1, 98)}, "[BOS]": 98, "[EOS]": EOS}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[PAD]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]",
                                        eos_token="[EOS]", bos_token="[BOS]")
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")
    result = generator("w1 w2 w3", max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert isinstance(result[0]["generated_text"], str)
    [call] = local_calls(session)
    assert (call.quantities["input_tokens"], call.quantities["output_tokens"]) == (3, 4)


def test_a_failing_generate_raises_unchanged_and_is_recorded_as_an_error(session, model):
    with pytest.raises(ValueError) as raised:
        model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2, num_beams=2,
                       num_return_sequences=3)  # more sequences than beams
    assert "num_return_sequences" in str(raised.value)
    [call] = local_calls(session)
    assert call.attributes["status"] == "error" and call.cost_usd == 0


def test_the_local_meter_joins_the_session_with_the_first_generation(session, model):
    assert "local" not in session.meters  # a session without local models never runs it
    info = session.open_window("cell", cell_id="c1", execution_count=1)
    model.generate(torch.tensor([[1, 2, 3, 4]]), max_new_tokens=3, min_new_tokens=3)
    record = session.close_window(info.id)
    local = record.meters["local"]
    assert (local.quantities["calls"], local.quantities["input_tokens"],
            local.quantities["output_tokens"]) == (1, 4, 3)
    assert local.quantities["generate_s"] > 0 and local.quantities["output_tokens_per_s"] > 0
    assert "no_gpu_time" in local.flags and local.detail["gpu_cost_usd"] is None
    assert record.cost_usd == 0  # nothing is counted twice: the local meter adds no dollars
    compact = record.compact()["local"]
    assert compact["input_tokens"] == 4 and compact["output_tokens"] == 3
    # The session's figures are its tokens; its GPU time also paid for what made none.
    totals = session.totals()["local"]
    assert (totals.quantities["input_tokens"], totals.detail) == (4, {"scope": "session"})


def test_after_unloading_generate_is_not_recorded(session, model):
    session.remove_meter("llm")
    model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2)
    assert local_calls(session) == []


def test_an_encoder_decoder_counts_the_encoders_input_and_the_decoders_new_tokens(session):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(
        vocab_size=VOCAB, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        decoder_start_token_id=PAD, eos_token_id=EOS, pad_token_id=PAD)).eval()
    out = t5.generate(torch.tensor([[5, 6, 7, 8]]), max_new_tokens=5, min_new_tokens=5)
    assert out.shape == (1, 6)  # the decoder's start token, then 5 new ones
    [call] = local_calls(session)
    assert (call.quantities["input_tokens"], call.quantities["output_tokens"]) == (4, 5)
    assert call.key == "t5"


def test_a_prompt_given_as_embeddings_counts_its_positions(session, model):
    embeds = model.get_input_embeddings()(torch.tensor([[1, 2, 3, 4, 5, 6]]))
    out = model.generate(inputs_embeds=embeds, max_new_tokens=3, min_new_tokens=3)
    assert out.shape == (1, 3)  # only the new tokens come back
    [call] = local_calls(session)
    assert (call.quantities["input_tokens"], call.quantities["output_tokens"]) == (6, 3)
