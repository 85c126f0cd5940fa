"""``%cost compare --local``: a local model's measured price per token beside API prices, from
the spend log of a real session (fake GPU, real transformers model, real openai SDK)."""

from __future__ import annotations

import gc
import os
import time
from decimal import Decimal

import openai
import pytest
from fake_nvml import FakeGpu, live_meter
from local_support import tiny_gpt2
from llm_support import FAKE_KEY, expected_cost, messages, srv

from nbcost.config import Settings
from nbcost.ledger import read_log
from nbcost.meters.llm import LlmMeter
from nbcost.meters.selfhosted.compare import local_compare_report, local_summary
from nbcost.session import Session

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model():
    return tiny_gpt2()


@pytest.fixture
def logged(tmp_path, srv, model):
    """A session's spend log: two cells generating locally (GPU half busy), one API cell."""
    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5)
    session = Session(settings=Settings(data_dir=tmp_path, user="t",
                                        gpu_rate_usd_per_hour=Decimal("3.60")),
                      meters=[live_meter(gpu), LlmMeter()])
    try:
        for count in (1, 2):
            info = session.open_window("cell", cell_id=f"c{count}", execution_count=count)
            now = time.time()
            gpu.busy(now, now + 0.3)
            model.generate(torch.tensor([[1, 2, 3, 4, 5]]), max_new_tokens=8, min_new_tokens=8)
            time.sleep(0.5)
            session.close_window(info.id)
        info = session.open_window("cell", cell_id="c3", execution_count=3)
        client = openai.OpenAI(base_url=srv.base_url("openai", input_tokens=2000,
                                                     output_tokens=1000),
                               api_key=FAKE_KEY, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=messages())
        session.close_window(info.id)
        session.flush()
        events = read_log(session.ledger_path).events
    finally:
        session.close()
        gc.collect()
    return session, events


def test_the_summary_adds_up_the_windows_that_generated(logged):
    session, events = logged
    summary = local_summary(events)
    [gpt2] = summary.models.values()
    assert (gpt2.calls, gpt2.input_tokens, gpt2.output_tokens) == (2, 10, 16)
    ends = [e for e in events if e["event"] == "cell_end" and "local" in e["meters"]]
    assert len(ends) == 2
    costs = [Decimal(e["meters"]["local"]["detail"]["gpu_cost_usd"]) for e in ends]
    assert gpt2.gpu_cost_usd == sum(costs) > 0
    busy = sum(e["meters"]["local"]["quantities"]["gpu_busy_s"] for e in ends)
    held = sum(e["meters"]["local"]["quantities"]["gpu_held_s"] for e in ends)
    assert summary.busy_share == pytest.approx(busy / held) and 0 < summary.busy_share < 1
    assert [c["key"] for c in summary.api_calls] == ["gpt-4o-mini"]


def test_the_report_gives_api_costs_and_the_break_even_utilisation(logged):
    session, events = logged
    summary = local_summary(events)
    gpt2 = summary.models["gpt2"]
    text, html = local_compare_report(events, ["gpt-4o-mini"], None, session.settings)
    price = gpt2.price()
    # By hand: 10 input + 4 x 16 output = 74 weighted tokens.
    unit = gpt2.gpu_cost_usd * 1_000_000 / 74
    assert price.output_usd_per_mtok == (unit * 4).quantize(Decimal("0.000001"))
    api = expected_cost("gpt-4o-mini", "openai", input_tokens=10, output_tokens=16)
    even = summary.busy_share * float(gpt2.gpu_cost_usd / api)
    assert f"{even * 100:.0f} %" in text or "never (over 100 %)" in text and even > 1
    verdict = "local is cheaper" if gpt2.gpu_cost_usd < api else "the API is cheaper"
    assert verdict in text
    assert f"At {summary.busy_share * 100:.0f} % GPU busy gpt2 costs" in text
    assert "gpt-4o-mini is $0.60/Mtok" in text  # genai-prices' output price
    # The API call's 2,000 + 1,000 tokens at gpt2's measured price.
    local = (price.input_usd_per_mtok * 2000 + price.output_usd_per_mtok * 1000) / 1_000_000
    from nbcost.display.format import format_usd

    assert f"at gpt2's measured price they would cost {format_usd(local)}" in text
    assert "gpt2" in html and "<script" not in html


def test_naming_a_local_model_that_has_no_measured_price_says_which_do(logged):
    session, events = logged
    text, _ = local_compare_report(events, ["gpt-4o-mini"], "llama-70b", session.settings)
    assert "No measured local price for 'llama-70b': name one of gpt2" in text


def test_without_local_generation_there_is_nothing_to_compare():
    text, _ = local_compare_report([], None, None, None)
    assert text.startswith("No self-hosted generation recorded")


def test_the_magic_compares_a_notebooks_local_generation(nbcost_home):
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext nbcost", store_history=True)
    try:
        ip.push({"torch": torch, "tiny_gpt2": tiny_gpt2})
        ip.run_cell("m = tiny_gpt2()", store_history=True)
        ip.run_cell("out = m.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, "
                    "min_new_tokens=4)", store_history=True)
        from IPython.utils.capture import capture_output

        with capture_output() as captured:
            ip.run_cell("%cost compare --local --models gpt-4o-mini", store_history=True)
    finally:
        ip.run_cell("%unload_ext nbcost", store_history=True)
    text = captured.outputs[0].data["text/plain"] if captured.outputs else captured.stdout
    assert "gpt2 (self-hosted): 1 generation, 3 input and 4 output tokens" in text
    assert "no GPU cost was measured" in text  # this machine has no GPU


def test_nbcost_report_local_reads_the_same_from_the_logs(logged, tmp_path, capsys):
    from nbcost.cli import main

    session, events = logged
    expected, _ = local_compare_report(events, None, None, session.settings)
    assert main(["report", str(session.ledger_path), "--local"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == expected.strip()
    assert "gpt2 (self-hosted): 2 generations, 10 input and 16 output tokens" in out
    written = tmp_path / "local.txt"
    assert main(["report", str(session.ledger_path), "--local", "-o", str(written)]) == 0
    assert written.read_text().strip() == expected.strip()
    assert main(["report", str(session.ledger_path), "--local", "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out.strip() == ("No self-hosted generation in these spend logs "
                                               "matches --since 2999-01-01; without those "
                                               "filters: gpt2.")


def test_a_log_line_with_bad_local_money_is_skipped_not_read(logged):
    from nbcost.logcheck import event_problem

    _, events = logged
    [end, _] = [e for e in events if e["event"] == "cell_end" and "local" in e["meters"]]
    assert event_problem(end) is None
    for where, key, bad in (("detail", "gpu_cost_usd", 1.5), ("detail", "output_usd_per_mtok", "NaN")):
        broken = {**end, "meters": {**end["meters"], "local": {
            **end["meters"]["local"], where: {**end["meters"]["local"][where], key: bad}}}}
        assert "money must be a decimal string" in event_problem(broken)
    row = {**end["meters"]["local"]["by_key"]["gpt2"], "prefill_s": -1}
    broken = {**end, "meters": {**end["meters"], "local": {**end["meters"]["local"],
                                                           "by_key": {"gpt2": row}}}}
    assert "prefill_s" in event_problem(broken)


def test_the_audit_has_a_local_models_section_from_the_logs(logged):
    import datetime as dt
    import re

    from nbcost.display.format import format_per_mtok
    from nbcost.report import load_spend
    from nbcost.report.audit import AuditOptions, render_audit

    session, events = logged
    gpt2 = local_summary(events).models["gpt2"]
    with load_spend([session.ledger_path]) as spend:
        page = render_audit(spend, AuditOptions(compare_models=["gpt-4o-mini"]))
    assert 'id="local"' in page and "Local models against API prices" in page
    section = re.search(r'<section id="local">(.*?)</section>', page, re.S).group(1)
    row = re.search(r"<tr><td>gpt2</td>(.*?)</tr>", section, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[:4] == ["notebook", "2", "10", "16"]
    assert cells[7] == format_per_mtok(gpt2.price().output_usd_per_mtok)
    assert cells[9].startswith("gpt-4o-mini ($0.60/Mtok out)")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    with load_spend([session.ledger_path], since=later.isoformat()) as spend:
        assert 'id="local"' not in render_audit(spend, AuditOptions())


def test_focus_rows_carry_local_tokens_at_zero_and_the_gpu_at_its_cost(logged):
    from nbcost.focus import focus_table

    _, events = logged
    rows = focus_table(events).rows
    local = [r for r in rows if r["SkuId"] == "self-hosted/gpt2"]
    assert local and {r["ServiceName"] for r in local} == {"Self-hosted model"}
    assert all(Decimal(str(r["BilledCost"])) == 0 for r in local)
    assert sum(Decimal(str(r["ConsumedQuantity"])) for r in local) == 26  # 10 in + 16 out


def test_report_by_provider_names_self_hosted_models(logged, capsys):
    from nbcost.cli import main

    session, _ = logged
    assert main(["report", str(session.ledger_path), "--by", "provider", "--format", "csv"]) == 0
    rows = {line.split(",")[0] for line in capsys.readouterr().out.splitlines()[1:]}
    assert "self-hosted" in rows and "openai" in rows
    assert "(unknown provider)" not in rows


def test_a_tagged_block_counts_alone_when_only_it_is_kept_and_once_with_its_cell(tmp_path,
                                                                                 model):
    from nbcost.meters.selfhosted.compare import tagged_events

    session = Session(settings=Settings(data_dir=tmp_path, user="t"), meters=[LlmMeter()])
    try:
        cell = session.open_window("cell", cell_id="c1", execution_count=1)
        model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, min_new_tokens=4)
        block = session.open_window("track", label="sweep", tags={"sweep": "a"})
        model.generate(torch.tensor([[1, 2, 3, 4, 5]]), max_new_tokens=6, min_new_tokens=6)
        session.close_window(block.id)
        session.close_window(cell.id)
        session.flush()
        events = read_log(session.ledger_path).events
    finally:
        session.close()
        gc.collect()
    [track_end] = [e for e in events if e["event"] == "track_end"]
    assert track_end["parent_id"] == cell.id  # nested in the cell
    whole = local_summary(events).models["gpt2"]  # the cell, with its block inside, once
    assert (whole.calls, whole.input_tokens, whole.output_tokens) == (2, 8, 10)
    kept = tagged_events(events, {"sweep": "a"})
    assert {e["event"] for e in kept} == {"track_end", "llm_call"}
    alone = local_summary(kept).models["gpt2"]
    assert (alone.calls, alone.input_tokens, alone.output_tokens) == (1, 5, 6)
    assert tagged_events(events, {"sweep": "b"}) == []


def test_the_magic_compares_only_the_tagged_cells(nbcost_home):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext nbcost", store_history=True)
    try:
        ip.push({"torch": torch, "tiny_gpt2": tiny_gpt2})
        ip.run_cell("a, b = tiny_gpt2('tiny-a'), tiny_gpt2('tiny-b')", store_history=True)
        ip.run_cell("%%cost --tag run=1 --quiet\n"
                    "a.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, min_new_tokens=4)",
                    store_history=True)
        ip.run_cell("%%cost --tag run=2 --quiet\n"
                    "b.generate(torch.tensor([[1, 2]]), max_new_tokens=5, min_new_tokens=5)",
                    store_history=True)
        outputs = {}
        for tag in ("run=1", "run=2", "run=9"):
            with capture_output() as captured:
                ip.run_cell(f"%cost compare --local --models gpt-4o-mini --tag {tag}",
                            store_history=True)
            outputs[tag] = captured.outputs[0].data["text/plain"]
        with capture_output():
            plain = ip.run_cell("%cost compare --tag run=1", store_history=True)
    finally:
        ip.run_cell("%unload_ext nbcost", store_history=True)
    assert "tiny-a (self-hosted): 1 generation, 3 input and 4 output tokens" in outputs["run=1"]
    assert "tiny-b" not in outputs["run=1"]
    assert "tiny-b (self-hosted): 1 generation, 2 input and 5 output tokens" in outputs["run=2"]
    assert "tiny-a" not in outputs["run=2"]
    assert outputs["run=9"] == ("No self-hosted generation in this session's windows with "
                                "--tag run=9: nothing to compare.")
    assert isinstance(plain.error_in_exec, UsageError)
    assert "--tag works with --local" in str(plain.error_in_exec)
