"""A real JupyterLab with the built nbcost extension, driven by headless Debian Chromium.

The server runs on a free loopback port with its own root, settings, workspaces and spend-log
directories; the extension is found through ``JUPYTER_PATH`` (a link to the built
``src/nbcost/labextension``), so the test uses what ``make labext`` built, whatever is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILT_EXTENSION = REPO / "src" / "nbcost" / "labextension"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@dataclass
class Lab:
    url: str
    root: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"jupyter lab did not start in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Lab:
    if not (BUILT_EXTENSION / "package.json").exists():
        pytest.fail("the lab extension is not built: run `make labext` (or `make test-browser`)")
    base = tmp_path_factory.mktemp("lab")
    data = base / "data"
    (data / "labextensions").mkdir(parents=True)
    (data / "labextensions" / "nbcost").symlink_to(BUILT_EXTENSION, target_is_directory=True)
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No news or update toasts over the status bar.
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    root = base / "root"
    root.mkdir()
    log = base / "lab.log"
    env = {
        **os.environ,
        "JUPYTER_PATH": os.pathsep.join(filter(None, [str(data), os.environ.get("JUPYTER_PATH")])),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "NBCOST_HOME": str(base / "nbcost-home"),
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
             "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
             f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
             "--allow-root"],  # CI runs as root
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root,
        )
    try:
        _wait_for_server(url, proc, log)
        yield Lab(url=url, root=root, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log, ARTIFACTS / "jupyterlab.log")


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 850})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(exc.stack or str(exc)))
    page.page_errors = errors
    yield page
    context.close()
