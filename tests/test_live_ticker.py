"""The ticker and the live payloads against a real Session (no kernel needed)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from testmeters import PennyMeter, TokenMeter

from nbcost.display.payload import cell_history, session_totals
from nbcost.display.ticker import Ticker
from nbcost.session import Session


@pytest.fixture
def session():
    tokens = TokenMeter()
    s = Session(meters=[PennyMeter(), tokens])
    s.tokens = tokens
    yield s
    s.close()


def test_ticker_feeds_a_watched_window_at_most_four_times_a_second(session, wait_until):
    ticker = Ticker(session)
    seen: list[tuple[float, dict]] = []
    window = session.open_window("cell", cell_id="c1", execution_count=1)
    started = time.monotonic()
    ticker.watch(window.id, lambda wid, live: seen.append((time.monotonic(), live)))
    assert wait_until(lambda: len(seen) >= 4, timeout=10)
    ticker.unwatch(window.id)
    count = len(seen)
    elapsed = time.monotonic() - started
    time.sleep(0.6)
    ticker.stop()
    assert len(seen) == count, "no updates after unwatch"
    assert count <= 4 * elapsed + 1
    assert seen[0][0] - started >= 0.2, "a window that ends within the first interval costs nothing"
    walls = [live["wall_s"] for _, live in seen]
    assert walls == sorted(walls)
    assert all(live["cell_id"] == "c1" and live["status"] == "running" for _, live in seen)
    session.close_window(window.id)


def test_one_computation_serves_every_subscriber_of_a_window(session, wait_until):
    ticker = Ticker(session)
    window = session.open_window("cell")
    first, second = [], []
    ticker.watch(window.id, lambda wid, live: first.append(live))
    ticker.watch(window.id, lambda wid, live: second.append(live))
    assert wait_until(lambda: len(second) >= 2, timeout=10)
    ticker.stop()
    assert [id(x) for x in first[:2]] == [id(x) for x in second[:2]]
    session.close_window(window.id)


def test_ticker_thread_starts_on_demand_sleeps_when_idle_and_stops(session):
    ticker = Ticker(session)
    before = set(threading.enumerate())
    assert not [t for t in threading.enumerate() if t.name == "nbcost-ticker"]
    window = session.open_window("cell")
    ticker.watch(window.id, lambda wid, live: None)
    (thread,) = [t for t in set(threading.enumerate()) - before if t.name == "nbcost-ticker"]
    assert thread.daemon
    ticker.stop()
    ticker.stop()  # idempotent
    assert not thread.is_alive()
    session.close_window(window.id)


def test_a_burst_of_short_cells_wakes_the_ticker_once_per_interval_not_per_cell(session):
    """"Run all" of short cells: each cell is watched and unwatched, but the ticker's thread is
    woken by time (once per interval at most), never by each cell: a wake per cell would hand
    it the GIL on every cell."""
    ticker = Ticker(session)
    first = session.open_window("cell")
    ticker.watch(first.id, lambda wid, live: None)  # starts the thread
    ticker.unwatch(first.id)
    session.close_window(first.id)
    wakes = []
    wait = ticker._cond.wait
    ticker._cond.wait = lambda timeout=None: wakes.append(wait(timeout)) or wakes[-1]
    started = time.monotonic()
    for number in range(300):
        window = session.open_window("cell", cell_id=f"c{number}", execution_count=number)
        ticker.watch(window.id, lambda wid, live: None)
        ticker.unwatch(window.id)
        session.close_window(window.id)
    elapsed = time.monotonic() - started
    ticker.stop()
    intervals = elapsed / ticker.interval_s
    notified = sum(1 for woke in wakes if woke)  # wait() is True when notified, not timed out
    assert notified <= intervals + 2  # (and stop's own notify)
    assert len(wakes) <= 2 * intervals + 3


def test_a_closed_window_and_a_failing_view_stop_quietly(session, wait_until, capsys):
    ticker = Ticker(session)
    window = session.open_window("cell")
    good: list[dict] = []

    def broken(wid, live):
        raise RuntimeError("view gone")

    ticker.watch(window.id, broken)
    ticker.watch(window.id, lambda wid, live: good.append(live))
    assert wait_until(lambda: len(good) >= 2, timeout=10)
    err = capsys.readouterr().err
    assert err.count("the live display stopped updating") == 1
    session.close_window(window.id)
    assert wait_until(lambda: window.id not in ticker.watching, timeout=5)
    ticker.stop()


def test_session_totals_and_history_are_json_with_decimal_strings(session):
    info = session.open_window("cell")
    session.tokens.call("gpt-4o", 1000)
    session.close_window(info.id)
    session.settings.budget_usd = Decimal("2.5")
    totals = session_totals(session)
    assert totals["session_id"] == session.id and totals["cells"] == 1
    assert totals["budget_usd"] == "2.5" and totals["budget_hard"] is False
    assert totals["budget"] == {"usd": "2.5", "hard": False, "scope": "session"}
    assert Decimal(totals["cost_usd"]) >= Decimal("0.002")
    assert totals["tokens"]["cost_usd"] == "0.002"
    (record,) = cell_history(session)
    assert record["cell_id"] is None and record["execution_count"] is None
    assert record == session.records[-1].compact()
    assert info.id == session.records[-1].info.id


def test_session_totals_name_the_idle_gpu_and_its_price(tmp_path, wait_until):
    """What the panel shows as idle-GPU waste, from the GPU meter on the fake NVML."""
    import os

    from fake_nvml import FakeGpu, live_meter

    from nbcost.config import Settings

    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
    meter = live_meter(gpu, checkpoint_s=5)
    session = Session(settings=Settings(data_dir=tmp_path, user="tester"), meters=[meter])
    ticker = Ticker(session)
    try:
        time.sleep(0.6)  # the GPU is held before the cell: idle between cells
        window = session.open_window("cell", cell_id="g1", execution_count=1)
        gpu.busy(time.time(), time.time() + 0.5)
        live: list[dict] = []
        ticker.watch(window.id, lambda wid, totals: live.append(totals))
        assert wait_until(lambda: len(live) >= 2, timeout=10)
        session.close_window(window.id)
        totals = session_totals(session)
    finally:
        ticker.stop()
        session.close()
    assert live[-1]["gpu"]["held_s"] > 0 and live[-1]["status"] == "running"
    assert totals["gpu"]["idle_between_s"] >= 0.4
    assert Decimal(totals["gpu"]["idle_cost_usd"]) > 0
    assert Decimal(totals["gpu"]["cost_usd"]) > Decimal(totals["gpu"]["idle_cost_usd"])
