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
#: What a worker process holds on its (fake) GPU.
WORKER_GPU_MEMORY = 3 << 30


def worker_nvml():
    """This worker's own fake GPU, held by the worker process (dask-cuda style)."""
    global GPU
    from fake_nvml import FakeGpu, FakeNvml

    GPU = FakeGpu(f"GPU-{os.getpid()}").process(os.getpid(), 0.0, mem_bytes=WORKER_GPU_MEMORY)
    return FakeNvml([GPU], time.time)


def gpu_busy(seconds: float) -> bool:
    """Keep this worker's (fake) GPU fully busy for ``seconds``."""
    start = time.time()
    GPU.busy(start, start + seconds, util=100, sm=50)
    time.sleep(seconds)
    return True



class GpuUser:
    """An actor whose method uses the GPU."""

    def work(self, seconds: float) -> bool:
        return gpu_busy(seconds)


# --- tasks that submit tasks ---------------------------------------------------------------------
def ask_in_dask_subtasks(base_urls: list[str]) -> bool:
    """Fan the calls out from inside a task, through ``worker_client``."""
    from distributed import worker_client

    with worker_client() as client:
        return all(client.gather(client.map(ask, base_urls, pure=False)))


def ask_in_a_dask_subtask(base_url: str) -> bool:
    """One call from a task the task submits through ``get_client`` (waiting seceded)."""
    from distributed import get_client, rejoin, secede

    future = get_client().submit(ask, base_url, pure=False)
    secede()
    try:
        return future.result()
    finally:
        rejoin()


def ask_in_ray_subtasks(base_urls: list[str], depth: int) -> bool:
    """Ask through tasks ``depth`` levels below this one (each level a Ray task)."""
    import ray

    if depth == 0:
        return all(ask(url) for url in base_urls)
    inner = ray.remote(ask_in_ray_subtasks)
    return all(ray.get([inner.remote([url], depth - 1) for url in base_urls]))
