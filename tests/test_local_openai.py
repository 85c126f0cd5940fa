"""OpenAI-compatible servers the user runs (vLLM, Ollama, llama.cpp) as self-hosted calls: the
real openai SDK against the loopback server speaking as a local model, in this process and in
another one (attributed through the pid listening on its port, flagged ``shared``)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from decimal import Decimal

import openai
import pytest
from fake_nvml import FakeGpu, live_meter
from llm_support import FAKE_KEY, expected_cost, llm, llm_calls, messages, one_call, srv

from nbcost.config import Settings
from nbcost.meters.llm import LlmMeter
from nbcost.meters.llm.selfhosted import SOURCE, is_private_url
from nbcost.meters.selfhosted.server import listening_pid
from nbcost.session import Session


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=FAKE_KEY, max_retries=0)


def test_private_addresses():
    for url in ("http://localhost:8000/v1", "http://127.0.0.1:11434", "http://10.1.2.3:8000/v1",
                "http://192.168.0.7", "http://gpu-box:8000/v1", "http://vllm.internal/v1",
                "http://[::1]:8080/v1"):
        assert is_private_url(url), url
    for url in ("https://api.openai.com/v1", "https://8.8.8.8/v1", None, ""):
        assert not is_private_url(url), url


def test_an_unknown_model_at_a_local_server_is_self_hosted_not_unpriced(srv, llm, capsys):
    client(srv.base_url("openai", input_tokens=40, output_tokens=12)).chat.completions.create(
        model="Qwen/Qwen2.5-0.5B-Instruct", messages=messages())
    call = one_call(llm)
    assert call.cost_usd == 0 and "unpriced" not in call.flags
    assert (call.quantities["input_tokens"], call.quantities["output_tokens"]) == (40, 12)
    a = call.attributes
    assert (a["provider"], a["engine"], a["usage_source"], a["price_source"]) == (
        "self-hosted", "openai", "api", SOURCE)
    assert "no price known" not in capsys.readouterr().err
    assert llm.meters["local"].measure(time.time() - 60, time.time() + 1).quantities[
        "output_tokens"] == 12


def test_a_known_model_at_a_local_address_keeps_its_api_price(srv, llm):
    # A proxy in front of the real API (or the loopback test server) serving gpt-4o-mini.
    client(srv.base_url("openai")).chat.completions.create(model="gpt-4o-mini",
                                                          messages=messages())
    call = one_call(llm)
    assert call.attributes["provider"] == "openai"
    assert call.cost_usd == expected_cost("gpt-4o-mini", "openai", input_tokens=21,
                                          output_tokens=9)


def test_a_listed_server_is_self_hosted_whatever_the_model_is_called(srv, llm):
    llm.settings.self_hosted_urls = [srv.root]
    client(srv.base_url("openai")).chat.completions.create(model="gpt-4o-mini",
                                                          messages=messages())
    call = one_call(llm)
    assert call.attributes["provider"] == "self-hosted" and call.cost_usd == 0


SERVER = """
import sys
import nbcost.testing
server = nbcost.testing.llm_server(input_tokens=30, output_tokens=20).start()
print(server.base_url("openai"), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def server_process():
    process = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), base_url
        yield process.pid, base_url
    finally:
        process.stdin.close()
        process.wait(30)


def test_the_pid_listening_on_a_base_urls_port_is_found(server_process):
    pid, base_url = server_process
    assert listening_pid(base_url) == pid
    assert listening_pid("https://api.openai.com/v1") is None


def test_a_server_in_another_process_is_priced_by_its_gpus_and_flagged_shared(
        tmp_path, server_process):
    pid, base_url = server_process
    gpu = FakeGpu("GPU-aaaa").process(pid, time.time() - 5)  # the server holds it, not us
    settings = Settings(data_dir=tmp_path, user="t", gpu_rate_usd_per_hour=Decimal("3.60"))
    # A server someone else started: the fixture's process is this test's child, which the GPU
    # meter would count as the kernel's own (a server the notebook started is billed to it).
    not_ours = live_meter(gpu, descendants=lambda pids: set())
    session = Session(settings=settings, meters=[not_ours, LlmMeter()])
    try:
        info = session.open_window("cell", cell_id="c1", execution_count=1)
        now = time.time()
        gpu.busy(now, now + 0.5, util=100)
        for _ in range(2):
            client(base_url).chat.completions.create(model="llama-3.2-1b-local",
                                                     messages=messages())
        time.sleep(0.8)
        record = session.close_window(info.id)
    finally:
        session.close()
        gc.collect()
    [call, _] = llm_calls(session)
    assert call.attributes["provider"] == "self-hosted"
    local = record.meters["local"]
    assert "shared" in local.flags
    assert local.detail["sources"] == {f"pid {pid}": {"pid": pid, "flags": ["shared"]}}
    # By hand: the server holds the GPU for the whole window, at $3.60 an hour.
    wall_s = record.info.end - record.info.start
    expected = (Decimal(repr(round(wall_s, 6))) / 3600 * Decimal("3.60")).quantize(
        Decimal("0.00000001"))
    assert Decimal(local.detail["gpu_cost_usd"]) == expected
    assert (local.quantities["input_tokens"], local.quantities["output_tokens"]) == (60, 40)
    unit = expected * 1_000_000 / (60 + 4 * 40)
    assert Decimal(local.detail["output_usd_per_mtok"]) == (unit * 4).quantize(Decimal("0.000001"))
    # The device was busy 0.5 s of the window (read from its utilization buffer at the end).
    assert local.quantities["gpu_busy_share"] == pytest.approx(0.5 / wall_s, abs=0.1)
    gpu_cost = record.meters["gpu"].cost_usd
    assert gpu_cost == 0 and record.cost_usd == 0  # the server's GPU is not this kernel's bill
