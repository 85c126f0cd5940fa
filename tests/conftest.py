"""Shared fixtures: every test writes its spend log under its own temporary NBCOST_HOME."""

from __future__ import annotations

import time

import pytest


@pytest.fixture(autouse=True)
def nbcost_home(tmp_path, monkeypatch):
    home = tmp_path / "nbcost-home"
    monkeypatch.setenv("NBCOST_HOME", str(home))
    for name in ("NBCOST_USER", "NBCOST_TEAM", "NBCOST_PROJECT", "NBCOST_TAGS", "NBCOST_GPU_RATE",
                 "NBCOST_GPU_RATES", "NBCOST_SESSION_ID", "NBCOST_NOTEBOOK", "NBCOST_NOTEBOOK_ID"):
        monkeypatch.delenv(name, raising=False)
    # What a session tells its child processes (nbcost.remote): set by sessions a test starts,
    # put back (removed) after the test even when a session was never closed.
    for name in ("NBCOST_PARENT_SESSION", "NBCOST_PARENT_FOLDER", "NBCOST_PARENT_WINDOW"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return home


@pytest.fixture
def wait_until():
    def wait(predicate, timeout=30.0, interval=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return False

    return wait
