"""The data side in a real kernel: the quiet no-GPU line and ``%cost export`` from a cell."""

from __future__ import annotations

import os

import pytest
from jupyter_client.manager import start_new_kernel

from nbcost.export import read_export


@pytest.fixture
def kernel(nbcost_home):
    # No GPU here whatever the machine: the test is about what the user is told.
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ, "NBCOST_NO_GPU": "1"})
    yield kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def run(kc, code: str) -> dict[str, str]:
    """Execute ``code``; its stdout and stderr as the kernel streamed them."""
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    streams = {"stdout": "", "stderr": ""}
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            streams[msg["content"]["name"]] += msg["content"]["text"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return streams


def test_no_gpu_is_one_quiet_line_and_an_export_cell_is_running(kernel, tmp_path):
    loaded = run(kernel, "%load_ext nbcost")
    assert loaded["stderr"] == ""  # no red box
    (line,) = [ln for ln in loaded["stdout"].splitlines() if "GPU" in ln]
    assert "no NVIDIA GPU visible" in line

    run(kernel, "x = 1")
    path = tmp_path / "live.csv"
    run(kernel, f"%cost export {path}")
    rows = read_export(path).to_pylist()
    cells = [r for r in rows if r["kind"] == "cell"]
    assert cells[0]["status"] == "ok"
    assert cells[-1]["status"] == "running"  # the cell that ran the export
    assert cells[-1]["execution_count"] == 3
