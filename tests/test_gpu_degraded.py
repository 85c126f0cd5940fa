"""Degraded cases: each is flagged in the figures and said to the user once."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from fake_nvml import (
    NVML_ERROR_GPU_IS_LOST,
    Clock,
    FakeGpu,
    FakeNvml,
    RecordingSink,
    Window,
    drive,
)
from test_gpu_meter import GIB, PID, h200, start_meter

from nbcost.meters.gpu import GpuMeter
from nbcost.meters.gpu.backend import NullBackend, load_backend


def assert_said_once(sink, key, *words):
    assert key in sink.warnings, sink.warnings
    for word in words:
        assert word in sink.warnings[key]


def test_no_nvml_library_switches_the_meter_off_softly():
    clock = Clock()
    sink = RecordingSink()
    notices = []
    meter = GpuMeter(FakeNvml([], clock, missing_library=True), clock=clock, threaded=False,
                     notice=notices.append)
    meter.start(sink)
    assert meter.sampler is None
    (notice,) = notices  # one quiet line, not a warning
    assert "no NVIDIA GPU" in notice and "everything else works" in notice
    assert not sink.warnings
    m = meter.measure(1000.0, 1001.0)
    assert m.flags == ("no_gpu",) and m.cost_usd == 0 and dict(m.quantities) == {}
    assert meter.session_measurement(1000.0, 1001.0).flags == ("no_gpu",)
    meter.window_started(Window("c", "cell", 1000.0))
    meter.window_ended(Window("c", "cell", 1000.0, 1001.0))
    meter.stop()
    meter.stop()


def test_a_machine_without_gpus_or_with_every_gpu_hidden():
    for gpus, env in (([], {}), ([h200()], {"CUDA_VISIBLE_DEVICES": "-1"})):
        clock = Clock()
        sink = RecordingSink()
        notices = []
        meter = GpuMeter(FakeNvml(gpus, clock), environ=env, clock=clock, threaded=False,
                         notice=notices.append)
        meter.start(sink)
        assert meter.sampler is None and len(notices) == 1 and not sink.warnings


def test_the_real_pynvml_on_this_machine_fails_softly(monkeypatch):
    # The CPU test machine has nvidia-ml-py but no driver: the real backend must say so once.
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("this machine has a working NVIDIA driver")
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound and friends
        pass
    sink = RecordingSink()
    notices = []
    meter = GpuMeter(notice=notices.append)
    meter.start(sink)
    assert meter.sampler is None
    assert len(notices) == 1 and "no NVIDIA GPU" in notices[0]
    assert meter.measure(0.0, 1.0).flags == ("no_gpu",)


def test_nbcost_no_gpu_and_a_missing_pynvml_give_the_null_backend(monkeypatch):
    monkeypatch.setenv("NBCOST_NO_GPU", "1")
    assert isinstance(load_backend(), NullBackend)
    monkeypatch.delenv("NBCOST_NO_GPU")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    backend = load_backend()
    assert isinstance(backend, NullBackend) and "nvidia-ml-py" in backend.reason


def test_mig_slice_gives_held_time_and_memory_priced_as_its_share():
    parent = FakeGpu("GPU-aaaa", name="NVIDIA H100 80GB HBM3")
    parent.busy(1001.0, 1003.0)
    mig = parent.add_mig("MIG-1234", "NVIDIA H100 80GB HBM3 MIG 1g.10gb", gi=1)
    mig.process(PID, 1000.0, mem_bytes=3 * GIB)
    meter, clock, _, sink = start_meter([parent], env={"CUDA_VISIBLE_DEVICES": "MIG-1234"})
    drive(meter, clock, 1040.0)
    m = meter.measure(1000.0, 1036.0)
    assert "mig" in m.flags
    assert m.quantities["held_s"] == pytest.approx(36.0)
    assert m.quantities["mem_peak_bytes"] == 3 * GIB
    for missing in ("busy_s", "energy_j", "sm_s", "stall_s", "underfill_s", "power_avg_w"):
        assert missing not in m.quantities
    assert m.cost_usd == (Decimal("2.69") / 100 / 7).quantize(Decimal("1e-8"))
    assert_said_once(sink, "gpu:mig", "MIG")


def test_no_energy_counter():
    gpu = h200().busy(1001.0, 1002.0)
    gpu.has_energy = False
    meter, clock, _, sink = start_meter([gpu])
    drive(meter, clock, 1005.0)
    m = meter.measure(1000.0, 1004.0)
    assert "no_energy" in m.flags
    assert "energy_j" not in m.quantities and "power_avg_w" not in m.quantities
    assert m.quantities["busy_s"] == pytest.approx(1.0)
    assert_said_once(sink, "gpu:no_energy", "energy")


def test_no_gpm_means_no_sm_figures_not_zero():
    gpu = h200().busy(1001.0, 1002.0)
    gpu.has_gpm = False
    meter, clock, _, _ = start_meter([gpu])
    drive(meter, clock, 1005.0)
    m = meter.measure(1000.0, 1004.0)
    assert "no_sm" in m.flags
    assert "sm_s" not in m.quantities and "underfill_s" not in m.quantities


def test_pid_not_visible_and_alone_uses_device_wide_figures():
    gpu = FakeGpu("GPU-aaaa").process(31337, 1000.0, mem_bytes=5 * GIB).busy(1001.0, 1002.0)
    meter, clock, _, sink = start_meter([gpu], local_pids=set())  # host pids, not ours
    drive(meter, clock, 1005.0)
    m = meter.measure(1000.0, 1004.0)
    assert "device_wide" in m.flags
    assert m.quantities["held_s"] == pytest.approx(4.0)
    assert m.quantities["busy_s"] == pytest.approx(1.0)
    assert m.quantities["mem_peak_bytes"] == 5 * GIB
    assert_said_once(sink, "gpu:pid_not_visible", "process id", "device_wide")


def test_pid_not_visible_among_several_processes_is_not_attributed():
    gpu = FakeGpu("GPU-aaaa").process(31337, 1000.0).process(31338, 1000.0).busy(1001.0, 1002.0)
    meter, clock, _, sink = start_meter([gpu], local_pids=set())
    drive(meter, clock, 1005.0)
    m = meter.measure(1000.0, 1004.0)
    assert "unattributed" in m.flags
    assert m.quantities["held_s"] == 0 and m.cost_usd == 0
    assert_said_once(sink, "gpu:unattributed", "--pid=host")


def test_foreign_pids_are_not_ours_until_this_process_loads_cuda():
    gpu = FakeGpu("GPU-aaaa").process(31337, 1000.0)
    meter, clock, _, sink = start_meter([gpu], local_pids=set(), cuda_loaded=False)
    drive(meter, clock, 1005.0)
    assert meter.measure(1000.0, 1004.0).quantities["held_s"] == 0
    assert not sink.warnings


def test_other_processes_on_the_gpu_are_said_in_the_record():
    gpu = h200().process(555, 1002.0, 1003.0).busy(1001.0, 1002.0)
    meter, clock, _, _ = start_meter([gpu], local_pids={PID, 555})
    drive(meter, clock, 1006.0)
    assert "shared" in meter.measure(1001.5, 1003.5).flags
    assert "shared" not in meter.measure(1004.0, 1005.5).flags


def test_nvml_errors_mid_cell_mark_the_cell_partial_and_it_completes():
    gpu = h200().busy(1001.0, 1005.0).fail(1002.0, 1003.0)
    meter, clock, _, sink = start_meter([gpu])
    meter.window_started(Window("c", "cell", 1000.5))
    drive(meter, clock, 1008.0)
    meter.window_ended(Window("c", "cell", 1000.5, 1006.0))
    drive(meter, clock, 1010.0)
    m = meter.measure(1000.5, 1006.0)
    assert "partial" in m.flags
    assert m.quantities["held_s"] == pytest.approx(5.5, abs=0.3)
    assert m.quantities["busy_s"] == pytest.approx(4.0, abs=0.01)  # the buffer filled the gap
    assert "partial" not in meter.measure(1007.0, 1009.0).flags
    error_keys = [k for k in sink.warnings if k.startswith("gpu:error")]
    assert error_keys and "partial" in sink.warnings[error_keys[0]]
    assert sink.warn_calls >= 2  # repeated failures go through warn_once, said once


def test_a_lost_gpu_stops_being_read():
    gpu = h200().fail(1002.0, 1e9, code=NVML_ERROR_GPU_IS_LOST)
    meter, clock, nvml, _ = start_meter([gpu])
    drive(meter, clock, 1004.0)
    calls = len(nvml.calls)
    drive(meter, clock, 1010.0)
    assert len(nvml.calls) == calls
    assert "partial" in meter.measure(1001.0, 1003.0).flags


def test_the_gpu_modules_import_without_ipython_pandas_or_sdks():
    code = (
        "import sys\n"
        "import nbcost.meters.gpu, nbcost.pricing.gpu\n"
        "heavy = [m for m in ('IPython', 'pandas', 'pyarrow', 'openai', 'anthropic', 'litellm',"
        " 'google.genai', 'mistralai', 'pynvml', 'ipykernel') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("processes", "exists_here", "cuda", "expected"),
    [
        ({PID: 5, 9: 1}, set(), True, ("own", 5, True)),
        ({PID: 5}, set(), True, ("own", 5, False)),
        ({}, set(), True, ("none", None, False)),
        ({9: 1}, {9}, True, ("none", None, True)),  # a neighbour in our own namespace
        ({9: 7}, set(), True, ("device_wide", 7, False)),  # a container: it must be us
        ({9: 7}, set(), False, ("none", None, True)),  # ... unless we never loaded CUDA
        ({9: 7, 10: 1}, set(), True, ("unattributed", None, True)),
    ],
)
def test_whose_context_it_is(processes, exists_here, cuda, expected):
    from nbcost.meters.gpu.attribution import classify

    assert classify(processes, PID, 0.0, exists_here.__contains__, lambda now: cuda) == expected


def test_an_unexpected_nvml_module_switches_the_meter_off_not_the_session():
    class Broken(FakeNvml):
        def nvmlDeviceGetCount(self):
            raise AttributeError("this pynvml has no nvmlDeviceGetCount")

    clock = Clock()
    sink = RecordingSink()
    meter = GpuMeter(Broken([h200()], clock), environ={}, clock=clock, threaded=False)
    meter.start(sink)
    assert meter.sampler is None and "AttributeError" in sink.warnings["gpu:none"]
    assert meter.measure(1000.0, 1001.0).flags == ("no_gpu",)


def test_an_nvml_error_in_a_running_cell_leaves_the_users_code_alone(tmp_path, capsys):
    """End to end through the extension and its Session: NVML starts failing while a cell runs
    (the fake raises on every call from that moment). The cell finishes with its result, its
    record is flagged ``partial``, the user is told once, and the log's cell_end says so too."""
    import json
    import os
    import time

    from fake_nvml import live_meter
    from IPython.core.interactiveshell import InteractiveShell

    from nbcost.ipython import extension_for

    gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=1 << 30)
    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext nbcost", store_history=True)
    try:
        session = extension_for(ip).session
        session.remove_meter("gpu")  # the machine's own (no NVML here): the fake instead
        meter = live_meter(gpu, checkpoint_s=0.2)
        session.add_meter(meter)
        ip.user_ns.update(gpu=gpu, session=session, wait=_wait_for_gpu_error, time=time,
                          failed_since=lambda t: _wait_for_failed_read(meter, t))
        capsys.readouterr()
        outcome = ip.run_cell("gpu.fail(time.time(), float('inf'))\n"
                              "wait(session)  # the sampler has met the failure\n"
                              "gpu.failures.clear()\n"
                              "answer = 6 * 7\n", store_history=True)
        outcome.raise_error()
        assert ip.user_ns["answer"] == 42
        second = ip.run_cell("t = time.time()\ngpu.fail(t, float('inf'))\n"
                             "failed_since(t)  # a read has failed again\n"
                             "gpu.failures.clear()\nanswer += 1", store_history=True)
        second.raise_error()
        assert ip.user_ns["answer"] == 43
        session.flush()
        ends = [json.loads(line) for line in session.ledger_path.read_text().splitlines()
                if '"cell_end"' in line]
    finally:
        ip.run_cell("%unload_ext nbcost", store_history=True)
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "NVML" in line or "partial" in line]
    assert len(said) == 1, err  # once for the session, not per call or per cell
    failing = [e for e in ends if e["meters"]["gpu"]["flags"] and
               "partial" in e["meters"]["gpu"]["flags"]]
    assert len(failing) == 2 and all(e["status"] == "ok" for e in failing)


def _wait_for_gpu_error(session, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while not any(key.startswith("gpu:error") for key in session._warned):
        assert time.monotonic() < deadline, "the GPU sampler never met the failure"
        time.sleep(0.02)


def _wait_for_failed_read(meter, since, timeout=60.0):
    """Until a read after ``since`` has failed (reads come on their own cadence, not each tick)."""
    import time

    deadline = time.monotonic() + timeout
    while not any(s.errors.overlaps(since, time.time() + 1) for s in meter.sampler.series):
        assert time.monotonic() < deadline, "the GPU sampler never met the failure"
        time.sleep(0.02)
