"""The OpenTelemetry export against a loopback OTLP/HTTP receiver that decodes the protobuf:
spans and metrics from a real session's real LLM calls, replayed from the log and live."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal

import pytest
from export_support import OPENAI, assert_no_prompt, chat, events_of, openai_client, run_scenario
from llm_support import srv  # noqa: F401

pytest.importorskip("opentelemetry.sdk", reason="the otel extra: pip install 'nbcost[otel]'")
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

import nbcost  # noqa: E402
from nbcost.api import set_session  # noqa: E402
from nbcost import otel  # noqa: E402
from nbcost.cli import main  # noqa: E402
from nbcost.meters.llm import LlmMeter  # noqa: E402
from nbcost.rows import parse_ts  # noqa: E402
from nbcost.session import Session  # noqa: E402


def nanos(text):
    return int(round(parse_ts(text).timestamp() * 1e6)) * 1000


@pytest.fixture(scope="module")
def spend(srv, tmp_path_factory):  # noqa: F811 - the fixture from llm_support
    return events_of(run_scenario(srv, tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="module")
def replayed(spend):
    with Receiver() as receiver:
        sent = otel.replay(spend, receiver.url)
        yield sent, receiver


def by_name(spans, name):
    return [s for s in spans if s["name"] == name]


def test_a_span_per_window_and_per_call_at_their_logged_times(replayed, spend):
    sent, receiver = replayed
    spans = receiver.spans()
    assert sent.spans == len(spans)
    calls = [e for e in spend if e["event"] == "llm_call"]
    ends = [e for e in spend if e["event"] in ("cell_end", "track_end")]
    assert len(by_name(spans, "nbcost cell")) == 2 and len(by_name(spans, "nbcost track")) == 1
    assert len(by_name(spans, "nbcost session")) == 1
    assert len([s for s in spans if s["attributes"].get("gen_ai.operation.name")]) == len(calls)
    assert {s["trace_id"] for s in spans} == {spans[0]["trace_id"]}  # one trace per session
    windows = {s["attributes"]["nbcost.window.id"]: s for s in spans
               if "nbcost.window.id" in s["attributes"]}
    for end in ends:
        span = windows[end["window_id"]]
        assert span["start"] == nanos(end["started_at"]) and span["end"] == nanos(end["ended_at"])
        assert span["attributes"]["nbcost.cost_usd"] == end["cost_usd"]  # the decimal string
        assert span["attributes"]["nbcost.status"] == end["status"]
    assert windows[ends[-1]["window_id"]]["status"] == 2  # the cell that failed: ERROR
    for event in calls:
        (span,) = [s for s in spans if s["end"] == nanos(event["ts"])
                   and s["attributes"].get("gen_ai.request.model") == event["attributes"]["request_model"]]
        assert span["start"] < span["end"] and span["kind"] == 3  # CLIENT
        # The innermost window open at the time is the parent.
        parent = event["window_ids"][-1] if event["window_ids"] else None
        expected = windows[parent]["span_id"] if parent else by_name(spans, "nbcost session")[0]["span_id"]
        assert span["parent_id"] == expected


def test_llm_spans_carry_the_genai_usage_attributes_and_the_cost(replayed, spend):
    _, receiver = replayed
    spans = receiver.spans()
    (mini_event, *_) = [e for e in spend if e["event"] == "llm_call" and e["key"] == "gpt-4o-mini"]
    (span, *_) = [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    a = span["attributes"]
    assert a[gen_ai.GEN_AI_OPERATION_NAME] == "chat"
    assert a[gen_ai.GEN_AI_PROVIDER_NAME] == "openai" == a[gen_ai.GEN_AI_SYSTEM]
    assert a[gen_ai.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    # input_tokens *includes* the cached ones, as the convention says.
    assert a[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == OPENAI["input_tokens"]
    assert a[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == OPENAI["cached_tokens"]
    assert a[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == OPENAI["output_tokens"]
    assert a[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == OPENAI["reasoning_tokens"]
    assert a["nbcost.cost_usd"] == mini_event["cost_usd"] and a["nbcost.unpriced"] is False
    (claude,) = [s for s in spans if s["name"] == "chat claude-haiku-4-5"]
    assert claude["attributes"][gen_ai.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert claude["attributes"][gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 600
    (unpriced,) = [s for s in spans if s["name"] == "chat no-such-model-xyz"]
    assert unpriced["attributes"]["nbcost.unpriced"] is True
    assert "nbcost.cost_usd" not in unpriced["attributes"]  # unknown, never "0"


def test_window_spans_carry_tags_and_gpu_seconds(replayed, spend):
    _, receiver = replayed
    (cell, *_) = [s for s in receiver.spans() if s["attributes"].get("nbcost.cell.id") == "c1"
                  and s["name"] == "nbcost cell"]
    (end, *_) = [e for e in spend if e["event"] == "cell_end" and e["cell_id"] == "c1"]
    a = cell["attributes"]
    assert a["nbcost.tag.exp"] == "a" and a["nbcost.tag.env"] == "dev"
    assert a["nbcost.label"] == "embed" and a["nbcost.user"] == "ada"
    assert a["nbcost.gpu.held_s"] == end["meters"]["gpu"]["quantities"]["held_s"]
    assert a["nbcost.gpu.busy_s"] == end["meters"]["gpu"]["quantities"]["busy_s"]
    assert a["nbcost.unpriced"] is True  # it holds the unpriced call


def test_metrics_add_up_to_the_log(replayed, spend):
    _, receiver = replayed
    metrics = receiver.metrics()
    calls = [e for e in spend if e["event"] == "llm_call"]
    tokens = defaultdict(int)
    cost = defaultdict(Decimal)
    for event in calls:
        tokens[event["key"], "input"] += event["quantities"]["input_tokens"]
        tokens[event["key"], "cache_read"] += event["quantities"]["cache_read_tokens"]
        if event["cost_usd"] is not None:
            cost[event["key"]] += Decimal(event["cost_usd"])
    got = {(labels["model"], labels["token_type"]): value
           for labels, value in metrics["nbcost_llm_tokens_total"]}
    for key, value in tokens.items():
        assert got.get(key, 0) == value, key
    usd = {labels["model"]: value for labels, value in metrics["nbcost_cost_usd_total"]
           if labels["meter"] == "llm"}
    assert usd == {model: pytest.approx(float(total), rel=1e-12) for model, total in cost.items()}
    assert sum(v for _, v in metrics["nbcost_llm_calls_total"]) == len(calls)
    (end,) = [e for e in spend if e["event"] == "session_end"]
    gpu = end["meters"]["gpu"]
    (held,) = metrics["nbcost_gpu_held_seconds_total"]
    assert held[1] == pytest.approx(gpu["quantities"]["held_s"], abs=1e-6)
    gpu_usd = [v for labels, v in metrics["nbcost_cost_usd_total"] if labels["meter"] == "gpu"]
    assert gpu_usd == [pytest.approx(float(gpu["cost_usd"]), abs=1e-9)]


def test_no_prompt_or_key_reaches_the_collector(replayed):
    _, receiver = replayed
    assert receiver.raw
    for body in receiver.raw:
        assert_no_prompt(body, "an OTLP request")


def test_live_export_gives_the_same_spans_as_a_replay(srv, nbcost_home):  # noqa: F811
    session = Session(meters=[LlmMeter()])
    with Receiver() as live:
        detach = otel.attach(session, live.url)
        old = set_session(session)
        try:
            with nbcost.track("ask"):
                chat(openai_client(srv, **OPENAI), "gpt-4o-mini")
        finally:
            set_session(old)
            session.close()
            detach()
        live_spans = live.spans()
        live_metrics = live.metrics()
    with Receiver() as later:
        otel.replay(events_of(session), later.url)
        replay_spans = later.spans()

    def key(spans):
        return sorted((s["name"], s["span_id"], s["parent_id"], s["start"], s["end"],
                       json.dumps(s["attributes"], sort_keys=True)) for s in spans)

    assert {s["name"] for s in live_spans} == {"nbcost session", "nbcost track", "chat gpt-4o-mini"}
    assert key(live_spans) == key(replay_spans)
    assert sum(v for _, v in live_metrics["nbcost_llm_calls_total"]) == 1


def test_a_dead_collector_is_one_warning_and_the_cells_run_on(srv, nbcost_home, capsys):  # noqa: F811
    with Receiver() as gone:
        url = gone.url  # a port nothing listens on once the receiver is closed
    session = Session(meters=[LlmMeter()])
    detach = otel.attach(session, url)
    old = set_session(session)
    try:
        with nbcost.track("ask") as t:
            chat(openai_client(srv, **OPENAI), "gpt-4o-mini")
            chat(openai_client(srv, **OPENAI), "gpt-4o-mini")
    finally:
        set_session(old)
        session.close()
        detach()  # flushes: the export fails here at the latest
    assert t.cost_usd > 0 and not t.record.flags  # recorded as usual, no internal_error
    err = capsys.readouterr().err
    assert err.count("the OpenTelemetry export to") == 1 and "Traceback" not in err


def test_cli_export_otlp(spend, tmp_path, capsys):
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "s.jsonl").write_text("".join(json.dumps(e) + "\n" for e in spend))
    with Receiver() as receiver:
        assert main(["export", "--format", "otlp", "--endpoint", receiver.url, str(folder),
                     "--service-name", "team-notebooks"]) == 0
        spans = receiver.spans()
    assert "Sent" in capsys.readouterr().out
    assert spans and {s["resource"]["service.name"] for s in spans} == {"team-notebooks"}
    assert main(["export", "--format", "otlp", str(folder)]) == 2
    assert "needs --endpoint" in capsys.readouterr().err
    assert main(["export", "--format", "otlp", "--endpoint", "localhost:4318", str(folder)]) == 2
    assert "must be an http(s) URL" in capsys.readouterr().err
    with Receiver(fail_status=400) as refusing:
        assert main(["export", "--format", "otlp", "--endpoint", refusing.url, str(folder)]) == 2
    assert "did not take the export" in capsys.readouterr().err


def test_a_killed_sessions_open_cell_is_an_interrupted_span(spend):
    (my_call,) = [i for i, e in enumerate(spend) if e.get("key") == "my-model"]
    with Receiver() as receiver:
        otel.replay(spend[:my_call + 1], receiver.url)
        spans = receiver.spans()
    (cell,) = [s for s in spans if s["attributes"].get("nbcost.cell.id") == "c2"
               and s["name"] == "nbcost cell"]
    assert cell["status"] == 2 and cell["attributes"]["nbcost.status"] == "interrupted"
    assert cell["end"] == nanos(spend[my_call]["ts"])
    assert not by_name(spans, "nbcost session")  # it never ended


def test_load_ext_exports_live_to_the_configured_endpoint(nbcost_home, monkeypatch):
    """`NBCOST_OTLP_ENDPOINT` (or c.NbCost.otlp_endpoint) turns the live export on at
    `%load_ext`; `%unload_ext` ends the session and flushes its spans."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    with Receiver() as receiver:
        monkeypatch.setenv("NBCOST_OTLP_ENDPOINT", receiver.url)
        shell.run_cell("%load_ext nbcost")
        try:
            shell.run_cell("%%cost --label exported\nx = 1")
        finally:
            shell.run_cell("%unload_ext nbcost")
        spans = receiver.spans()
    assert "nbcost session" in {s["name"] for s in spans}
    labelled = [s for s in spans if s["attributes"].get("nbcost.label") == "exported"]
    assert len(labelled) == 1, [s["name"] for s in spans]
