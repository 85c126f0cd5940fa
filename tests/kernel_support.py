"""A real kernel for tests, and a cell run in it the way JupyterLab sends one."""

from __future__ import annotations

import os

import pytest
from jupyter_client.manager import start_new_kernel


@pytest.fixture
def kernel(nbcost_home):
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})
    yield km, kc
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=True)


def execute(kc, code, cell_id=None, timeout=60):
    """Send an execute_request the way JupyterLab does (cellId in the metadata); wait for it."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    msg = kc.session.msg("execute_request", content,
                         metadata={"cellId": cell_id} if cell_id else {})
    kc.shell_channel.send(msg)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
        reply = kc.get_shell_msg(timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return reply["content"]
