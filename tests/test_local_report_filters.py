"""``nbcost report --local`` and the audit's local section honour the report's filters
(``--notebook``, ``--tag``, ``--model``, the period), over the spend logs of two real sessions:
a real transformers model generating in each (under two names), a real openai SDK call to the
loopback server in one, the fake NVML for the GPU."""

from __future__ import annotations

import gc
import os
import re
import time
from decimal import Decimal
from functools import partial

import openai
import pytest
from fake_nvml import FakeGpu, live_meter
from llm_support import FAKE_KEY, messages, srv  # noqa: F401 (srv: a fixture)
from local_support import tiny_gpt2

from nbcost.cli import main
from nbcost.config import Settings
from nbcost.meters.llm import LlmMeter
from nbcost.report import Filters, load_spend
from nbcost.report.audit import AuditOptions, render_audit
from nbcost.session import Session

torch = pytest.importorskip("torch")


def _cell(session: Session, gpu: FakeGpu, count: int, tags: dict[str, str], work) -> None:
    info = session.open_window("cell", cell_id=f"c{count}", execution_count=count, tags=tags)
    now = time.time()
    gpu.busy(now, now + 0.2)
    work()
    time.sleep(0.3)
    session.close_window(info.id)


@pytest.fixture(scope="module")
def logs(tmp_path_factory, srv):  # noqa: F811
    """Two sessions' logs in one folder:

    * ``a.ipynb``: cell 1 (experiment=x) generates 8 tokens with ``tiny-a``; cell 2
      (experiment=x) calls gpt-4o-mini (2,000 in, 1,000 out);
    * ``b.ipynb``: cell 1 (experiment=y) generates 6 tokens with ``tiny-b``, twice.
    """
    folder = tmp_path_factory.mktemp("spend")
    tiny_a, tiny_b = tiny_gpt2("tiny-a"), tiny_gpt2("tiny-b")
    prompt = torch.tensor([[1, 2, 3, 4, 5]])
    for notebook in ("a.ipynb", "b.ipynb"):
        gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5)
        session = Session(settings=Settings(data_dir=folder, user="t",
                                            gpu_rate_usd_per_hour=Decimal("3.60")),
                          meters=[live_meter(gpu), LlmMeter()],
                          notebook={"notebook_path": f"/work/{notebook}", "notebook_id": None})
        try:
            if notebook == "a.ipynb":
                _cell(session, gpu, 1, {"experiment": "x"},
                      lambda: tiny_a.generate(prompt, max_new_tokens=8, min_new_tokens=8))
                client = openai.OpenAI(base_url=srv.base_url("openai", input_tokens=2000,
                                                             output_tokens=1000),
                                       api_key=FAKE_KEY, max_retries=0)
                _cell(session, gpu, 2, {"experiment": "x"},
                      partial(client.chat.completions.create, model="gpt-4o-mini",
                              messages=messages()))
            else:
                def twice():
                    for _ in range(2):
                        tiny_b.generate(prompt, max_new_tokens=6, min_new_tokens=6)
                _cell(session, gpu, 1, {"experiment": "y"}, twice)
            session.flush()
        finally:
            session.close()
            gc.collect()
    return folder


def _report(capsys, folder, *options: str) -> str:
    capsys.readouterr()
    assert main(["report", str(folder), "--local", "--no-cache", *options]) == 0
    return capsys.readouterr().out


A_LINE = "tiny-a (self-hosted): 1 generation, 5 input and 8 output tokens"
B_LINE = "tiny-b (self-hosted): 2 generations, 10 input and 12 output tokens"
API_LINE = "The session's 1 API call (2,000 input, 1,000 output tokens)"


def test_without_filters_both_notebooks_and_the_api_call_are_compared(logs, capsys):
    out = _report(capsys, logs)
    assert A_LINE in out and B_LINE in out and API_LINE in out


def test_notebook_filter_keeps_that_notebooks_generation_only(logs, capsys):
    out = _report(capsys, logs, "--notebook", "b.ipynb")
    assert B_LINE in out
    assert "tiny-a" not in out and "API call" not in out  # both are a.ipynb's


def test_tag_filter_keeps_the_tagged_windows_only(logs, capsys):
    out = _report(capsys, logs, "--tag", "experiment=x")
    assert A_LINE in out and API_LINE in out and "tiny-b" not in out
    out = _report(capsys, logs, "--tag", "experiment=y")
    assert B_LINE in out and "tiny-a" not in out and "API call" not in out


def test_model_filter_keeps_those_models_on_either_side(logs, capsys):
    out = _report(capsys, logs, "--model", "tiny-b")
    assert B_LINE in out and "tiny-a" not in out and "API call" not in out
    # The local model named by --local prices the API calls, so it is read under --model too.
    out = _report(capsys, logs, "--model", "gpt-4o-mini", "--local", "tiny-a")
    assert API_LINE in out and "at tiny-a's measured price" in out and "tiny-b" not in out


def test_a_filter_that_matches_nothing_says_so_and_what_there_is(logs, capsys):
    out = _report(capsys, logs, "--notebook", "c.ipynb", "--tag", "experiment=x")
    assert out.strip() == ("No self-hosted generation in these spend logs matches --notebook "
                           "c.ipynb --tag experiment=x; without those filters: tiny-a, tiny-b.")
    out = _report(capsys, logs, "--model", "gpt-4o-mini")  # API calls, but nothing local
    assert out.startswith("No self-hosted generation in these spend logs matches --model "
                          "gpt-4o-mini; without those filters: tiny-a, tiny-b.")


def _local_rows(spend) -> dict[str, list[str]]:
    page = render_audit(spend, AuditOptions(compare_models=["gpt-4o-mini"]))
    found = re.search(r'<section id="local">(.*?)</section>', page, re.DOTALL)
    if found is None:
        return {}
    rows = re.findall(r"<tr><td>([^<]*)</td>(.*?)</tr>", found.group(1), re.DOTALL)
    return {name: re.findall(r"<td[^>]*>(.*?)</td>", cells) for name, cells in rows}


def test_the_audits_local_section_follows_the_spends_filters(logs):
    with load_spend([logs], cache=False) as spend:
        assert set(_local_rows(spend)) == {"tiny-a", "tiny-b"}
    with load_spend([logs], filters=Filters(notebooks=["a.ipynb"]), cache=False) as spend:
        rows = _local_rows(spend)
    assert set(rows) == {"tiny-a"} and rows["tiny-a"][1:4] == ["1", "5", "8"]
    with load_spend([logs], filters=Filters(tags={"experiment": "y"}), cache=False) as spend:
        assert set(_local_rows(spend)) == {"tiny-b"}
    with load_spend([logs], filters=Filters(models=["tiny-b"]), cache=False) as spend:
        assert set(_local_rows(spend)) == {"tiny-b"}
    with load_spend([logs], filters=Filters(notebooks=["c.ipynb"]), cache=False) as spend:
        assert _local_rows(spend) == {}


def test_only_logs_with_self_hosted_calls_are_searched_for_local_figures(logs, tmp_path):
    """Finding window ends with local figures means reading the logs' text again: only logs
    whose digest saw a self-hosted call are read (an API-only log has none to find)."""
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(logs, folder)
    api_only = Session(settings=Settings(data_dir=folder, user="t"), meters=[],
                       notebook={"notebook_path": "/work/c.ipynb", "notebook_id": None})
    window = api_only.open_window("cell", execution_count=1)
    api_only.close_window(window.id)
    api_only.close()
    spend = load_spend([str(folder)], cache=False)
    try:
        logs_read = {i.url for i in spend.inputs if i.url.endswith(".jsonl")}
        assert str(api_only.ledger_path) in logs_read
        assert spend.local_logs == logs_read - {str(api_only.ledger_path)}
        assert len(spend.local_logs) == 2
    finally:
        spend.close()
