"""What the LLM meter adds to each call and each streamed chunk: what a user's call pays.

    python benchmarks/llm_overhead.py [--blocks 15] [--calls 100] [--all] [--json FILE]

The headline (goal: ≤ 20 µs per call on the calling thread, the durable spend-log write
included) is measured from outside, the way a user meets it: the real openai SDK over an
in-process ``httpx2.MockTransport`` (no network noise), a real ``Session`` writing its spend log,
and recording switched on and off (the SDK patched and unpatched) in alternating blocks of calls
in one process. Each figure is the median over blocks of (patched − unpatched), in CPU time of
the calling thread, CPU time of the whole process (the ledger's writer thread included) and wall
time. A block of 20-chunk streams gives the per-chunk figure.

``--floor`` measures, the same way, what no design can go below: the patched call recording
nothing, and that plus one durable write of an ``llm_call`` line.

``--all`` adds the older views, for finding where the time goes: each instrumentation's wrapper
alone around prebuilt SDK objects (``isolated``; hot caches make it several times lower than
what a call pays), and end to end against OpenLLMetry's instrumentation (in-memory span
exporter) in fresh worker processes, in process and over loopback HTTP.

Needs for ``--all``: ``pip install opentelemetry-instrumentation-openai opentelemetry-sdk``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import write as write_figure  # noqa: E402
import genai_prices  # noqa: E402
import httpx2  # noqa: E402
import openai  # noqa: E402

import nbcost.testing  # noqa: E402
from nbcost.config import Settings  # noqa: E402
from nbcost.meters.llm import LlmMeter  # noqa: E402
from nbcost.pricing.llm import PriceBook  # noqa: E402
from nbcost.testing._server import answer, sse_bytes  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello in five words."}]


class NullSink:
    """The smallest MeterSink: keeps the usages (what the meter alone costs)."""

    def __init__(self) -> None:
        self.settings = Settings(data_dir=Path("."), user="bench")
        self.usages: list = []

    def record(self, usage: Any) -> None:
        self.usages.append(usage)

    def log(self, event: str, fields: Any) -> None:
        pass

    def warn_once(self, key: str, message: str) -> None:
        pass

    def check_budget(self, meter: str) -> None:
        pass

    def current_cell(self) -> dict:
        return {}


def in_process_client(scenario: nbcost.testing.Scenario) -> openai.OpenAI:
    def handle(request: httpx2.Request) -> httpx2.Response:
        body, events = answer("openai", scenario, request.url.path, json.loads(request.content))
        if body is not None:
            return httpx2.Response(200, json=body)
        return httpx2.Response(200, content=sse_bytes(events),
                               headers={"content-type": "text/event-stream"})

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    return openai.OpenAI(base_url="http://in-process/v1", api_key="sk-bench", http_client=http,
                         max_retries=0)


class Config:
    """Turns one instrumentation on and off."""

    def __init__(self, name: str, on: Callable[[], None], off: Callable[[], None]) -> None:
        self.name, self.on, self.off = name, on, off


def configs(tmp: Path) -> list[Config]:
    out = [Config("unpatched", lambda: None, lambda: None)]
    meter, sink = LlmMeter(), NullSink()
    out.append(Config("nbcost", lambda: meter.start(sink), meter.stop))

    import os

    os.environ["NBCOST_HOME"] = str(tmp)
    from nbcost.session import Session

    holder: dict[str, Any] = {}

    def session_on() -> None:
        holder["s"] = Session(meters=[LlmMeter()])

    out.append(Config("nbcost+spend log", session_on, lambda: holder.pop("s").close()))
    try:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        print("(OpenLLMetry not installed: pip install opentelemetry-instrumentation-openai "
              "opentelemetry-sdk)")
        return out
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()

    def otel_on() -> None:
        exporter.clear()
        instrumentor.instrument(tracer_provider=provider)

    def otel_off() -> None:
        assert exporter.get_finished_spans(), "OpenLLMetry recorded no spans"
        instrumentor.uninstrument()

    out.append(Config("openllmetry", otel_on, otel_off))
    return out


def timed(fn: Callable[[], None], n: int) -> float:
    """Seconds per run of ``fn``, in CPU time of this process (all its threads, the loopback
    server's included): on a shared machine, wall time mostly measures the neighbours."""
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n


def end_to_end(transport: str, config_name: str, calls: int, streams: int, chunks: int,
               blocks: int) -> dict:
    """One worker process per configuration (an instrumentation may leave work behind after it
    is removed). Paired blocks: the SDK unpatched, then instrumented, again and again; the
    figure is the median of the blocks' differences, which slow drift in load cancels out of."""
    import tempfile

    config = {c.name: c for c in configs(Path(tempfile.mkdtemp(prefix="nbcost-bench-")))}[config_name]
    server = None
    if transport == "loopback":
        server = nbcost.testing.llm_server(chunks=chunks, split_bytes=None).start()
        client = openai.OpenAI(base_url=server.base_url("openai"), api_key="sk-bench", max_retries=0)
    else:
        client = in_process_client(nbcost.testing.Scenario(chunks=chunks, split_bytes=None))

    def call() -> None:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def stream() -> None:
        for _chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": True}):
            pass

    config.on()
    time.sleep(1)  # the meter's background tokenizer load is not part of a call
    for _ in range(20):
        call()
    stream()
    config.off()
    base_calls, base_streams, call_diffs, stream_diffs = [], [], [], []
    try:
        for _ in range(blocks):
            base_call, base_stream = timed(call, calls), timed(stream, streams)
            config.on()
            try:
                with_call, with_stream = timed(call, calls), timed(stream, streams)
            finally:
                config.off()
            base_calls.append(base_call)
            base_streams.append(base_stream)
            call_diffs.append(with_call - base_call)
            stream_diffs.append(with_stream - base_stream)
    finally:
        if server is not None:
            server.close()
    return {"call_s": statistics.median(base_calls), "stream_s": statistics.median(base_streams),
            "call_added_s": statistics.median(call_diffs),
            "stream_added_s": statistics.median(stream_diffs)}


def measure(transport: str, names: list[str], calls: int, streams: int, chunks: int,
            blocks: int) -> dict[str, dict]:
    import subprocess

    results = {}
    for name in names:
        if name == "unpatched":
            continue
        out = subprocess.run([sys.executable, __file__, "--worker", name, "--transport", transport,
                              "--calls", str(calls), "--streams", str(streams), "--chunks",
                              str(chunks), "--rounds", str(blocks)],
                             capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def report_end_to_end(title: str, results: dict[str, dict], chunks: int) -> None:
    first = next(iter(results.values()))
    print(f"\n{title}: unpatched call {first['call_s'] * 1e6:.0f} µs, stream of {chunks} chunks "
          f"{first['stream_s'] * 1e6:.0f} µs (CPU time)")
    print(f"{'':20} {'µs added/call':>14} {'µs added/chunk':>15}")
    for name, r in results.items():
        per_chunk = (r["stream_added_s"] - r["call_added_s"]) / chunks * 1e6
        print(f"{name:20} {r['call_added_s'] * 1e6:14.1f} {per_chunk:15.2f}")


def report(title: str, figures: dict[str, tuple[float, float]], chunks: int) -> None:
    base_call, base_stream = figures["unpatched"]
    print(f"\n{title}: unpatched call {base_call * 1e6:.0f} µs, stream of {chunks} chunks "
          f"{base_stream * 1e6:.0f} µs")
    print(f"{'':20} {'µs added/call':>14} {'µs added/chunk':>15}")
    added = {}
    for name, (call_s, stream_s) in figures.items():
        if name == "unpatched":
            continue
        per_call = (call_s - base_call) * 1e6
        per_chunk = ((stream_s - base_stream) - (call_s - base_call)) / chunks * 1e6
        added[name] = (per_call, per_chunk)
        print(f"{name:20} {per_call:14.1f} {per_chunk:15.2f}")
    if "openllmetry" in added and "nbcost" in added:
        (oc, ok), (nc, nk) = added["openllmetry"], added["nbcost"]
        print(f"OpenLLMetry / nbcost: {oc / max(nc, 0.1):.1f}× per call, "
              f"{ok / max(nk, 0.01):.1f}× per chunk")


def pricing_cost() -> None:
    usage = genai_prices.Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=300)
    counts = {"input_tokens": 1200, "cache_read_tokens": 1024, "output_tokens": 300}
    n = 2000
    calc = timed(lambda: genai_prices.calc_price(usage, "gpt-4o", provider_id="openai"), n)
    book, settings = PriceBook(), NullSink().settings
    cached = timed(lambda: book.price(counts, ["gpt-4o"], "openai", None, settings), n)
    print(f"\npricing one call: genai_prices.calc_price {calc * 1e6:.1f} µs, "
          f"nbcost PriceBook (cached lookup, verified flat-price shortcut) {cached * 1e6:.1f} µs")


# --- isolated: the patched method's wrapper around a stand-in for the SDK's request -----------

def prebuilt(client: openai.OpenAI, chunks: int) -> tuple[Any, list[Any]]:
    """A real ChatCompletion and the real ChatCompletionChunks of one stream (via the SDK)."""
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    return response, stream


def fake_stream(client: openai.OpenAI, items: list[Any]) -> openai.Stream:
    """A genuine ``openai.Stream`` (instrumentations check the type) over prebuilt chunks."""
    stream = openai.Stream.__new__(openai.Stream)
    stream.response = httpx2.Response(200, request=httpx2.Request("POST", "http://x/v1"))
    stream._iterator = iter(items)
    return stream


def isolated(client: openai.OpenAI, configs: list[Config], chunks: int, reps: int,
             rounds: int) -> dict[str, tuple[float, float]]:
    """Time only what each instrumentation adds: its wrapper around a stand-in request that
    returns prebuilt SDK objects (for a stream: a real ``openai.Stream`` over prebuilt chunks)."""
    from openai.resources.chat.completions.completions import Completions

    response, items = prebuilt(client, chunks)
    resource = client.chat.completions
    kwargs = {"model": "gpt-4o", "messages": MESSAGES}
    skwargs = {**kwargs, "stream": True, "stream_options": {"include_usage": True}}

    def runner(name: str) -> tuple[Callable[[], None], Callable[[], None]]:
        current = Completions.__dict__["create"]
        wrapper = getattr(current, "_self_wrapper", None)
        if name == "unpatched":  # the stand-in alone
            def call() -> None:
                (lambda **kw: response)(**kwargs)

            def stream() -> None:
                for _ in (lambda **kw: fake_stream(client, items))(**skwargs):
                    pass
            return call, stream

        def call() -> None:
            wrapper(lambda **kw: response, resource, (), dict(kwargs))

        def stream() -> None:
            for _ in wrapper(lambda **kw: fake_stream(client, items), resource, (), dict(skwargs)):
                pass
        return call, stream

    results: dict[str, tuple[list[float], list[float]]] = {c.name: ([], []) for c in configs}
    for r in range(rounds):
        for config in configs[r % len(configs):] + configs[:r % len(configs)]:
            config.on()
            try:
                call, stream = runner(config.name)
                call(), stream()
                gc.collect()
                gc.disable()
                results[config.name][0].append(timed(call, reps))
                results[config.name][1].append(timed(stream, max(1, reps // 20)))
            finally:
                gc.enable()
                config.off()
    return {name: (statistics.median(a), statistics.median(b)) for name, (a, b) in results.items()}


def user_call(blocks: int, calls: int, chunks: int, floor: str | None = None
              ) -> dict[str, float]:
    """The headline: patched vs unpatched blocks of real SDK calls, with a real Session and its
    spend log, in this process. Returns µs added per call (thread, process, wall) and per
    chunk (thread).

    ``floor`` measures what no recording design can go below, the same way: ``"wrapper"``, the
    patched call reading its response but recording nothing; ``"write"``, that plus one
    durable ``os.write`` of a typical 560-byte ``llm_call`` line (what "durable before the
    call returns" costs by itself)."""
    import os
    import tempfile

    os.environ["NBCOST_HOME"] = tempfile.mkdtemp(prefix="nbcost-bench-")
    from nbcost.session import Session

    session = Session(meters=[LlmMeter()])
    patcher = session.meters["llm"]._patcher
    if floor is not None:
        patcher.recorder.finish = _floor_finish(floor, session)
    client = in_process_client(nbcost.testing.Scenario(chunks=chunks, split_bytes=None))

    def call() -> None:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def stream() -> None:
        for _chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                     stream=True,
                                                     stream_options={"include_usage": True}):
            pass

    def block(fn: Callable[[], None], n: int) -> tuple[float, float, float]:
        wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
        for _ in range(n):
            fn()
        return ((time.thread_time() - thread) / n, (time.process_time() - process) / n,
                (time.perf_counter() - wall) / n)

    time.sleep(1)  # the tokenizer's background load is not part of a call
    for _ in range(50):
        call()
    stream()
    diffs: dict[str, list[float]] = {"thread": [], "process": [], "wall": [], "stream": []}
    bases = []
    streams = max(2, calls // 20)
    try:
        for _ in range(blocks):
            patcher.uninstall()
            off, off_stream = block(call, calls), block(stream, streams)
            patcher.install()
            on, on_stream = block(call, calls), block(stream, streams)
            bases.append(off[0])
            for i, name in enumerate(("thread", "process", "wall")):
                diffs[name].append(on[i] - off[i])
            diffs["stream"].append((on_stream[0] - off_stream[0]) - (on[0] - off[0]))
    finally:
        session.close()
    out = {name: statistics.median(values) * 1e6 for name, values in diffs.items()}
    out["stream"] /= chunks + 3  # role, content chunks, finish, usage
    out["base"] = statistics.median(bases) * 1e6
    return out


def _floor_finish(floor: str, session: Any) -> Callable[[Any], None]:
    """A Recorder.finish that records nothing (``wrapper``) or only writes one line durably."""
    import orjson
    import os

    fd = session._ledger._fd
    line = orjson.dumps({
        "schema": 1, "id": "0" * 24, "event": "llm_call", "ts": "2026-11-28T10:00:00.000000Z",
        "session_id": "0" * 32, "notebook_path": None, "notebook_id": None, "user": "bench",
        "team": None, "project": None, "cell_id": None, "execution_count": None,
        "window_ids": ["0" * 22], "meter": "llm", "key": "gpt-4o",
        "quantities": {"calls": 1, "input_tokens": 12, "output_tokens": 20},
        "cost_usd": "0.00023", "attributes": {"provider": "openai", "api": "chat",
                                              "base_url": "http://in-process",
                                              "request_hash": "0" * 64, "latency_s": 0.0005},
        "flags": []}, option=orjson.OPT_APPEND_NEWLINE)

    def finish(call: Any) -> None:
        call.done = True
        if floor == "write":
            os.write(fd, line)

    return finish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="calls per end-to-end block")
    parser.add_argument("--streams", type=int, default=3, help="streams per end-to-end block")
    parser.add_argument("--chunks", type=int, default=400, help="content chunks per stream")
    parser.add_argument("--rounds", type=int, default=15, help="paired blocks / isolated rounds")
    parser.add_argument("--reps", type=int, default=3000, help="isolated calls per round")
    parser.add_argument("--blocks", type=int, default=15, help="paired blocks (headline)")
    parser.add_argument("--block-calls", type=int, default=100, help="calls per block (headline)")
    parser.add_argument("--all", action="store_true", help="also the isolated and OpenLLMetry views")
    parser.add_argument("--floor", action="store_true",
                        help="also what a wrapper that records nothing costs, and one durable write")
    parser.add_argument("--json", help="append the figures to this file (for make bench)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--transport", default="in-process", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(end_to_end(args.transport, args.worker, args.calls, args.streams,
                                    args.chunks, args.rounds)))
        return
    added = user_call(args.blocks, args.block_calls, 20)
    print(f"what a call pays (openai SDK, in-process transport, real Session and spend log; "
          f"median of {args.blocks} paired blocks): unpatched call {added['base']:.0f} µs")
    print(f"  added per call: {added['thread']:.1f} µs on the calling thread (goal ≤ 20), "
          f"{added['process']:.1f} µs CPU of the process, {added['wall']:.1f} µs wall")
    print(f"  added per streamed chunk: {added['stream']:.2f} µs on the calling thread")
    floors = {name: user_call(args.blocks, args.block_calls, 20, floor=name)["thread"]
              for name in ("wrapper", "write")} if args.floor else {}
    for name, label in (("wrapper", "a wrapper that reads the response and records nothing"),
                        ("write", "that wrapper plus one durable write of an llm_call line")):
        if name in floors:
            print(f"  floor: {label}: {floors[name]:.1f} µs on the calling thread")
    write_figure(args.json, "added per LLM call on the calling thread (durable write included)",
                  round(added["thread"], 1), "µs", "≤ 20 µs", added["thread"] <= 20,
                  f"whole process {added['process']:.1f} µs; unpatched call "
                  f"{added['base']:.0f} µs" + (f"; floor (record nothing, one durable write): "
                                               f"{floors['write']:.1f} µs" if floors else ""))
    if not args.all:
        return
    import tempfile

    cfgs = configs(Path(tempfile.mkdtemp(prefix="nbcost-bench-")))
    pricing_cost()
    probe = in_process_client(nbcost.testing.Scenario(chunks=args.chunks, split_bytes=None))
    figures = isolated(probe, cfgs, args.chunks, args.reps, args.rounds)
    report("isolated (wrapper around prebuilt SDK objects; the headline figures)", figures,
           args.chunks + 3)
    names = [c.name for c in cfgs]
    for transport, scale in (("in-process", 1), ("loopback", 2)):
        results = measure(transport, names, args.calls // scale, max(2, args.streams // scale),
                          args.chunks, args.rounds)
        report_end_to_end(f"end to end, {transport} transport (paired blocks, median)", results,
                          args.chunks + 3)


if __name__ == "__main__":
    main()
