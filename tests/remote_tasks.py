"""Task functions the Dask tests run on workers (imported there by module name)."""

from __future__ import annotations

import os
import time


def ask(base_url: str) -> bool:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-loopback", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": "hi"}])
    return True


def ask_when(base_url: str, event_name: str) -> bool:
    """Wait for a distributed Event, then ask: a task still running when its cell ends."""
    from distributed import Event

    Event(event_name).wait(120)
    return ask(base_url)


def ask_then_hang_once(base_url: str, marker: str) -> bool:
    """Ask; the first time, then hang until the worker is killed (the retry only asks)."""
    ask(base_url)
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(300)
    return True


def pid() -> int:
    return os.getpid()


def tiny(x: int) -> int:
    return x + 1


def ask_when_file(base_url: str, path: str) -> bool:
    """Wait for a file to exist, then ask: a task still running when its cell ends."""
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return ask(base_url)


class Asker:
    """An actor whose method calls an LLM."""

    def ask(self, base_url: str) -> bool:
        return ask(base_url)


# --- a fake GPU per worker process (the test-only NVML hook of nbcost.dask.attach) ---------------
GPU = None


def worker_nvml():
    """This worker's own fake GPU, held by the worker process (dask-cuda style)."""
    global GPU
    from fake_nvml import FakeGpu, FakeNvml

    GPU = FakeGpu(f"GPU-{os.getpid()}").process(os.getpid(), 0.0)
    return FakeNvml([GPU], time.time)


def gpu_busy(seconds: float) -> bool:
    """Keep this worker's (fake) GPU fully busy for ``seconds``."""
    start = time.time()
    GPU.busy(start, start + seconds, util=100, sm=50)
    time.sleep(seconds)
    return True
