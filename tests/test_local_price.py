"""The effective price of self-hosted tokens: the arithmetic by hand, then the local meter over a
fake GPU with a real transformers model generating in the window."""

from __future__ import annotations

import gc
import os
import time
from decimal import Decimal

import pytest
from fake_nvml import FakeGpu, live_meter
from local_support import tiny_gpt2

from nbcost.config import Settings
from nbcost.meters.llm import LlmMeter
from nbcost.meters.selfhosted import (
    at_busy_share,
    break_even_busy_share,
    effective_price,
)
from nbcost.meters.selfhosted.price import OUTPUT_WEIGHT
from nbcost.session import Session

D = Decimal


# --- the arithmetic ------------------------------------------------------------------------------

def test_without_engine_timings_output_tokens_weigh_four_input_tokens():
    # $0.03 over 1,000 input + 4 x 500 output = 3,000 weighted tokens: $10 per million input
    # tokens, $40 per million output tokens; $0.03 over 1,500 tokens is $20 blended.
    price = effective_price(D("0.03"), 1000, 500)
    assert (price.input_usd_per_mtok, price.output_usd_per_mtok, price.blended_usd_per_mtok) == (
        D("10"), D("40"), D("20"))
    assert OUTPUT_WEIGHT == 4 and "×4" in price.rule


def test_engine_timings_split_the_cost_by_prefill_and_decode_time():
    # 0.5 s prefill of 3 s: a sixth of $0.03 ($0.005) is the input's, over 1,000 tokens $5/M;
    # the rest ($0.025) over 500 output tokens is $50/M.
    price = effective_price(D("0.03"), 1000, 500, prefill_s=0.5, decode_s=2.5)
    assert (price.input_usd_per_mtok, price.output_usd_per_mtok) == (D("5"), D("50"))
    assert price.rule == "prefill/decode time"


def test_no_tokens_of_a_kind_has_no_price_for_it():
    price = effective_price(D("0.01"), 0, 250)
    assert price.input_usd_per_mtok is None and price.output_usd_per_mtok == D("40")
    assert effective_price(D("0.01"), 0, 0).blended_usd_per_mtok is None


def test_utilisation_scales_the_price_and_gives_the_break_even():
    # The example: $0.41/M out at 35 % busy is $0.179375/M at 80 %.
    assert at_busy_share(D("0.41"), 0.35, 0.80) == D("0.179375")
    assert at_busy_share(D("0.41"), None, 0.80) is None
    # Local tokens cost $0.82 where the API would charge $0.60, at 35 % busy: even at 47.8 %.
    assert break_even_busy_share(D("0.82"), D("0.60"), 0.35) == pytest.approx(0.35 * 0.82 / 0.60)
    assert break_even_busy_share(D("0.82"), D("0"), 0.35) is None


def test_prices_per_million_tokens_read_as_price_lists_write_them():
    from nbcost.display.format import format_per_mtok

    cases = {D("0.6"): "$0.60/Mtok", D("12.5"): "$12.50/Mtok", D("1234.5"): "$1,234.50/Mtok",
             D("0.0042123"): "$0.0042/Mtok", D("0"): "$0.00/Mtok", None: "–",
             "0.179375": "$0.18/Mtok"}
    assert {value: format_per_mtok(value) for value in cases} == cases


# --- the local meter over a fake GPU ---------------------------------------------------------

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model():
    return tiny_gpt2()


def test_a_window_prices_its_local_tokens_at_its_gpu_cost(tmp_path, model):
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5)
    session = Session(settings=Settings(data_dir=tmp_path, user="t"),
                      meters=[live_meter(gpu), LlmMeter()])
    try:
        info = session.open_window("cell", cell_id="c1", execution_count=1)
        now = time.time()
        gpu.busy(now, now + 0.3, util=100)
        model.generate(torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]),
                       max_new_tokens=7, min_new_tokens=7)
        time.sleep(0.6)
        record = session.close_window(info.id)
    finally:
        session.close()
        gc.collect()
    local, gpu_figures = record.meters["local"], record.meters["gpu"]
    assert (local.quantities["input_tokens"], local.quantities["output_tokens"]) == (12, 14)
    cost = Decimal(local.detail["gpu_cost_usd"])
    assert cost > 0 and float(cost) == pytest.approx(float(gpu_figures.cost_usd), rel=0.05)
    # By hand: 12 input + 4 x 14 output = 68 weighted tokens.
    unit = cost * 1_000_000 / 68
    assert Decimal(local.detail["input_usd_per_mtok"]) == unit.quantize(D("0.000001"))
    assert Decimal(local.detail["output_usd_per_mtok"]) == (unit * 4).quantize(D("0.000001"))
    assert local.detail["blended_usd_per_mtok"] == str((cost * 1_000_000 / 26).quantize(
        D("0.000001")))
    share = gpu_figures.quantities["busy_s"] / gpu_figures.quantities["held_s"]
    assert local.quantities["gpu_busy_share"] == pytest.approx(share, abs=0.05)
    assert 0 < local.quantities["gpu_busy_share"] < 1
    assert record.cost_usd == gpu_figures.cost_usd  # the GPU dollars are counted once
    row = local.by_key["gpt2"]
    assert row["usd_per_mtok_output"] == Decimal(local.detail["output_usd_per_mtok"])
    compact = record.compact()["local"]
    assert compact["output_usd_per_mtok"] == local.detail["output_usd_per_mtok"]


def test_engine_timings_logged_with_a_call_split_the_windows_gpu_cost(tmp_path):
    # What vLLM's wrapper hands the recorder: exact counts and prefill/decode seconds.
    from nbcost.meters.base import Usage
    from nbcost.meters.llm.recorder import note_self_hosted

    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5)
    session = Session(settings=Settings(data_dir=tmp_path, user="t"), meters=[live_meter(gpu)])
    try:
        info = session.open_window("cell", cell_id="c1", execution_count=1)
        time.sleep(0.3)
        usage = Usage("llm", "llm_call", "Qwen/Qwen2.5-0.5B",
                      {"calls": 1, "input_tokens": 3000, "output_tokens": 500}, D(0),
                      {"provider": "self-hosted", "engine": "vllm", "latency_s": 0.2,
                       "prefill_s": 0.05, "decode_s": 0.15})
        session.record(usage)
        note_self_hosted(session, usage)
        record = session.close_window(info.id)
    finally:
        session.close()
    local = record.meters["local"]
    cost = Decimal(local.detail["gpu_cost_usd"])
    assert cost > 0 and local.detail["split"] == "prefill/decode time"
    # A quarter of the cost (0.05 of 0.2 s) over 3,000 input tokens; the rest over 500 output.
    assert Decimal(local.detail["input_usd_per_mtok"]) == (cost / 4 * 1_000_000 / 3000).quantize(
        D("0.000001"))
    assert Decimal(local.detail["output_usd_per_mtok"]) == (
        cost * 3 / 4 * 1_000_000 / 500).quantize(D("0.000001"))
    assert local.by_key["Qwen/Qwen2.5-0.5B"]["split"] == "prefill/decode time"
