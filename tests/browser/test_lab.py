"""The nbcost extension in a real JupyterLab, in headless Chromium (see conftest.py).

A ``%%cost`` cell that works for about three seconds must change the status bar and the cell's
badge while it runs, show its final cost after, and leave ``metadata.nbcost`` in the saved
notebook. A notebook whose metadata carries HTML shows it as text and runs none of it.
"""

from __future__ import annotations

import re
import shutil
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.browser

# One cent per second of wall time, so the cost visibly grows while the cell runs.
LOAD_CELL = """%load_ext nbcost
import nbcost
from decimal import Decimal
from nbcost.meters.base import Meter, Measurement

class PennyMeter(Meter):
    name = "penny"
    def measure(self, start, end):
        seconds = max(end - start, 0.0)
        return Measurement({"seconds": seconds}, cost_usd=Decimal("0.01") * Decimal(str(round(seconds, 6))))

nbcost.session().add_meter(PennyMeter())"""

WORK_CELL = """%%cost --label browser-demo
import time
started = time.time()
while time.time() - started < 3:
    sum(range(10_000))
"""

HOSTILE = '<img src=x onerror="window.__nbcostPwned=1">'


def write_notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = cells
    nbformat.write(nb, path)
    return nb


def open_notebook(page, lab, name):
    page.goto(f"{lab.url}/lab/tree/{name}?reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function(
        """() => {
            const panel = window.jupyterapp.shell.currentWidget;
            const kernel = panel && panel.sessionContext && panel.sessionContext.session
                && panel.sessionContext.session.kernel;
            return kernel && kernel.status === 'idle';
        }""",
        timeout=90_000,
    )


def run_cell(page, index):
    page.evaluate(
        """index => {
            const panel = window.jupyterapp.shell.currentWidget;
            panel.content.activeCellIndex = index;
            // Do not wait for the run: the test watches the page while the cell works.
            void window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        index,
    )


def cell(page, index):
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)


def test_live_status_bar_badge_panel_and_saved_metadata(page, lab):
    write_notebook(lab.root / "live.ipynb", [nbformat.v4.new_code_cell(LOAD_CELL),
                                             nbformat.v4.new_code_cell(WORK_CELL)])
    open_notebook(page, lab, "live.ipynb")
    status = page.locator(".nbcost-status")

    run_cell(page, 0)
    # After the kernel's hello and the session message, the status bar shows dollars.
    page.wait_for_function(
        "() => /\\$\\d/.test(document.querySelector('.nbcost-status')?.textContent || '')",
        timeout=60_000)

    run_cell(page, 1)
    badge = cell(page, 1).locator(".nbcost-badge")
    badge.and_(page.locator("[data-state=running]")).wait_for(timeout=30_000)
    badge_texts, status_texts = set(), set()
    deadline = time.monotonic() + 30
    state_and_text = "el => [el.dataset.state, el.textContent]"  # one read: no race
    while True:
        badge_state, badge_text = badge.evaluate(state_and_text)
        if badge_state != "running":
            break
        assert time.monotonic() < deadline, "the cell never finished"
        badge_texts.add(badge_text)
        status_state, status_text = status.evaluate(state_and_text)
        if status_state == "running":
            status_texts.add(status_text)
        page.wait_for_timeout(150)
    assert len(badge_texts) >= 3, f"the badge should change while the cell runs: {badge_texts}"
    assert len(status_texts) >= 2, f"the status bar should change while running: {status_texts}"
    assert all("●" in text for text in badge_texts | status_texts)

    final_badge = badge.text_content()
    assert "browser-demo" in final_badge
    assert re.search(r"\$0\.03\d\d", final_badge), final_badge
    assert badge.get_attribute("data-state") == "done"
    page.wait_for_function(
        "() => document.querySelector('.nbcost-status')?.dataset.state === 'idle'")
    assert re.search(r"nbcost \$0\.\d{4}", status.text_content())

    # The panel lists the cell and draws the spend chart.
    status.click()
    panel = page.locator("#nbcost-panel")
    panel.wait_for(state="visible")
    row = panel.locator("tr.nbcost-row", has_text="browser-demo")
    row.wait_for()
    assert re.search(r"\$0\.03\d\d", row.text_content())
    assert panel.locator("polyline.nbcost-chart-line").get_attribute("points")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "jupyterlab-live.png")

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while True:
        saved = nbformat.read(lab.root / "live.ipynb", as_version=4)
        if "nbcost" in saved.cells[1].metadata:
            break
        assert time.monotonic() < deadline, "the saved notebook has no metadata.nbcost"
        time.sleep(0.3)
    record = saved.cells[1].metadata["nbcost"]
    assert record["v"] == 1 and record["session_id"]
    assert record["cell_id"] == saved.cells[1].id
    assert record["label"] == "browser-demo"
    assert record["status"] == "ok"
    assert record["wall_s"] >= 3 and record["end"] > record["start"]
    assert Decimal("0.03") <= Decimal(record["cost_usd"]) < Decimal("0.05")
    assert record["penny"]["seconds"] >= 3
    assert "nbcost" not in saved.cells[0].metadata, "the %load_ext cell itself is not recorded"
    assert not page.page_errors


def test_hostile_metadata_shows_as_text_and_runs_nothing(page, lab):
    hostile_cell = nbformat.v4.new_code_cell("print('never run')")
    hostile_cell.metadata["nbcost"] = {
        "v": 1,
        "cell_id": hostile_cell.id,
        "label": HOSTILE,
        "cost_usd": '<img src=x onerror="window.__nbcostPwned=2">',
        "wall_s": 1.5,
        "status": "<script>window.__nbcostPwned=3</script>",
        "unpriced": False,
        "flags": ["<b>bold</b>"],
        "llm": {"calls": 1, "input_tokens": 10, "output_tokens": 5, "cost_usd": "0.1",
                "by_model": {'<img src=x onerror="window.__nbcostPwned=4">': {"calls": 1}}},
    }
    write_notebook(lab.root / "hostile.ipynb", [hostile_cell])
    open_notebook(page, lab, "hostile.ipynb")

    badge = cell(page, 0).locator(".nbcost-badge")
    badge.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # time for any injected handler to fire
    assert HOSTILE in badge.text_content()
    assert "$?" in badge.text_content()
    assert badge.locator("*").count() == 0, "the badge holds text only"
    assert '<img src=x onerror="window.__nbcostPwned=4">' in badge.get_attribute("title")
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("() => window.__nbcostPwned") is None
    assert cell(page, 0).locator(".jp-OutputArea-output").count() == 0, "nothing ran"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "jupyterlab-hostile-metadata.png")


def test_live_demo_example_runs_with_the_live_widget(page, lab):
    """examples/live_demo.ipynb in the browser; its screenshot is the README's."""
    shutil.copy(REPO / "examples" / "live_demo.ipynb", lab.root / "live_demo.ipynb")
    open_notebook(page, lab, "live_demo.ipynb")
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    work = cell(page, 4)
    # While the %%cost cell works, its live widget shows the calls made so far.
    live = work.locator(".nbcost-live[data-state=running]")
    live.wait_for(timeout=90_000)
    assert "train + summarise" in live.text_content()
    # The badge ticks too, although the extension's answer to the kernel's hello waits in the
    # kernel's queue behind the cells of this "run all".
    work.locator(".nbcost-badge[data-state=running]").wait_for(timeout=30_000)
    badge = work.locator(".nbcost-badge[data-state=done]")
    badge.wait_for(timeout=90_000)
    assert "12 calls" in badge.text_content()
    # The widget became the static summary; the session table follows in the last cell.
    summary = work.locator(".nbcost-summary")
    summary.wait_for()
    assert "gpt-4o" in summary.text_content() and "claude-sonnet-4-5" in summary.text_content()
    cell(page, 5).locator(".nbcost-table").wait_for(timeout=30_000)
    page.locator(".nbcost-status").click()
    page.locator("#nbcost-panel tr.nbcost-row", has_text="train + summarise").wait_for()
    page.evaluate("() => window.jupyterapp.shell.currentWidget.content.scrollToItem(4)")
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "live-demo.png")

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while "nbcost" not in nbformat.read(lab.root / "live_demo.ipynb", as_version=4).cells[4].metadata:
        assert time.monotonic() < deadline, "the saved demo has no metadata.nbcost"
        time.sleep(0.3)
    record = nbformat.read(lab.root / "live_demo.ipynb", as_version=4).cells[4].metadata["nbcost"]
    assert record["llm"]["calls"] == 12
    assert set(record["llm"]["by_model"]) == {"gpt-4o", "claude-sonnet-4-5"}
    assert Decimal(record["cost_usd"]) == sum(
        Decimal(m["cost_usd"]) for m in record["llm"]["by_model"].values())
    assert not page.page_errors


def test_notebook_7_shows_badges_and_writes_metadata(page, lab):
    pytest.importorskip("notebook", minversion="7")
    write_notebook(lab.root / "nb7.ipynb", [
        nbformat.v4.new_code_cell(LOAD_CELL),
        nbformat.v4.new_code_cell(WORK_CELL.replace("< 3", "< 2").replace("browser-demo", "nb7")),
    ])
    page.goto(f"{lab.url}/notebooks/nb7.ipynb")
    first = page.locator(".jp-Notebook .jp-Cell").nth(0)
    first.locator(".cm-content").click(timeout=90_000)
    # Run the load cell once the kernel is up (the prompt gets its number), then the work cell.
    deadline = time.monotonic() + 90
    while "[1]" not in (first.locator(".jp-InputPrompt").text_content() or ""):
        assert time.monotonic() < deadline, "Notebook 7 never ran the first cell"
        page.keyboard.press("Shift+Enter")
        page.wait_for_timeout(2000)
        first.locator(".cm-content").click()
    second = page.locator(".jp-Notebook .jp-Cell").nth(1)
    second.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    second.locator(".nbcost-badge[data-state=running]").wait_for(timeout=30_000)
    badge = second.locator(".nbcost-badge[data-state=done]")
    badge.wait_for(timeout=30_000)
    assert re.search(r"nb7 · \$0\.02\d\d", badge.text_content()), badge.text_content()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while "nbcost" not in nbformat.read(lab.root / "nb7.ipynb", as_version=4).cells[1].metadata:
        assert time.monotonic() < deadline, "Notebook 7 saved no metadata.nbcost"
        time.sleep(0.3)
    record = nbformat.read(lab.root / "nb7.ipynb", as_version=4).cells[1].metadata["nbcost"]
    assert record["label"] == "nb7" and record["status"] == "ok"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "notebook7.png")
    # (Notebook 7.6 served by a lab server logs one error of its own about a settings schema.)
    assert not [error for error in page.page_errors if "nbcost" in error]


def cents4(amount):
    """An amount under a dollar as the formatters show it: four places, half up."""
    return Decimal(amount).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def cell_metadata(page, index):
    return page.evaluate(
        "index => window.jupyterapp.shell.currentWidget.content.widgets[index].model"
        ".getMetadata('nbcost') ?? null", index)


def test_a_second_page_watches_live_but_only_the_running_page_writes(browser, lab):
    """Every client gets the comm; only the one that sent the execute request writes metadata.

    The second page opens after ``%load_ext`` ran, so it also shows the reattach path.
    """
    write_notebook(lab.root / "two.ipynb", [nbformat.v4.new_code_cell(LOAD_CELL),
                                            nbformat.v4.new_code_cell(
                                                WORK_CELL.replace("browser-demo", "shared"))])
    runner = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    watcher = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    try:
        open_notebook(runner, lab, "two.ipynb")
        run_cell(runner, 0)
        runner.wait_for_function(
            "() => /\\$\\d/.test(document.querySelector('.nbcost-status')?.textContent || '')",
            timeout=60_000)
        open_notebook(watcher, lab, "two.ipynb")
        watcher.wait_for_function(  # the reattached page gets the session so far
            "() => /\\$\\d/.test(document.querySelector('.nbcost-status')?.textContent || '')",
            timeout=60_000)
        run_cell(runner, 1)
        cell(watcher, 1).locator(".nbcost-badge[data-state=running]").wait_for(timeout=30_000)
        cell(watcher, 1).locator(".nbcost-badge[data-state=done]").wait_for(timeout=30_000)
        cell(runner, 1).locator(".nbcost-badge[data-state=done]").wait_for(timeout=30_000)
        assert "shared" in cell(watcher, 1).locator(".nbcost-badge").text_content()
        written = cell_metadata(runner, 1)
        assert written["label"] == "shared" and written["status"] == "ok"
        assert cell_metadata(watcher, 1) is None, "the watching page must not write"
    finally:
        runner.context.close()
        watcher.context.close()


def test_a_restart_mid_cell_keeps_what_was_measured_marked_interrupted(page, lab):
    long_cell = WORK_CELL.replace("< 3", "< 60").replace("browser-demo", "restarted")
    write_notebook(lab.root / "restart.ipynb", [nbformat.v4.new_code_cell(LOAD_CELL),
                                                nbformat.v4.new_code_cell(long_cell)])
    open_notebook(page, lab, "restart.ipynb")
    run_cell(page, 0)
    page.wait_for_function(
        "() => /\\$\\d/.test(document.querySelector('.nbcost-status')?.textContent || '')",
        timeout=60_000)
    run_cell(page, 1)
    badge = cell(page, 1).locator(".nbcost-badge")
    cell(page, 1).locator(".nbcost-badge[data-state=running]").wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session"
                  ".kernel.restart()")
    cell(page, 1).locator(".nbcost-badge[data-state=interrupted]").wait_for(timeout=30_000)
    assert "interrupted" in badge.text_content()
    record = cell_metadata(page, 1)
    assert record["interrupted"] is True and record["status"] == "interrupted"
    assert record["label"] == "restarted" and record["wall_s"] > 0


# The one fake: NVML, since this machine has no GPU (tests/fake_nvml.py, an H200 held by the
# kernel since before the cell, busy for 1.5 s of the cell).
FAKE_GPU_CELL = """%load_ext nbcost
import os, sys, time
sys.path.insert(0, {tests!r})
import nbcost
from fake_nvml import FakeGpu, FakeNvml
from nbcost.meters.gpu import GpuMeter

gpu = FakeGpu("GPU-aaaa").process(os.getpid(), time.time() - 5, mem_bytes=20 << 30)
nbcost.session().remove_meter("gpu")
nbcost.session().add_meter(GpuMeter(FakeNvml([gpu], time.time), environ={{}}, tick_s=0.05,
                                    pid_exists_here=lambda pid: True,
                                    cuda_in_process=lambda now: True))
time.sleep(1)"""

GPU_WORK_CELL = """%%cost --label train
gpu.busy(time.time(), time.time() + 1.5)
time.sleep(2.5)"""


def test_gpu_figures_and_waste_in_dollars_show_on_the_badge_status_bar_and_panel(page, lab):
    write_notebook(lab.root / "gpu.ipynb", [
        nbformat.v4.new_code_cell(FAKE_GPU_CELL.format(tests=str(REPO / "tests"))),
        nbformat.v4.new_code_cell(GPU_WORK_CELL)])
    open_notebook(page, lab, "gpu.ipynb")
    run_cell(page, 0)
    page.wait_for_function(
        "() => /\\$\\d/.test(document.querySelector('.nbcost-status')?.textContent || '')",
        timeout=60_000)
    run_cell(page, 1)
    cell(page, 1).locator(".nbcost-badge[data-state=running]").wait_for(timeout=30_000)
    badge = cell(page, 1).locator(".nbcost-badge[data-state=done]")
    badge.wait_for(timeout=30_000)
    assert re.search(r"GPU 1\.\d s busy", badge.text_content()), badge.text_content()
    record = cell_metadata(page, 1)
    gpu = record["gpu"]
    # The tooltip leads with what the waste cost, from the record's own figures (issue 8, #10).
    tooltip = badge.get_attribute("title")
    match = re.search(r"GPU (\d+) % busy(?: \(± \d\.\d\d s\))? · \$(0\.\d{4}) of \$(0\.\d{4}) wasted, most of it "
                      r"(stalled|underfilled) \(", tooltip)
    assert match, tooltip
    waste = match.group(0)
    assert int(match.group(1)) == round(100 * gpu["busy_s"] / gpu["held_s"])
    assert Decimal(match.group(2)) == cents4(gpu["waste_usd"]) > 0
    assert Decimal(match.group(3)) == cents4(gpu["cost_usd"])
    largest = max(gpu["waste"], key=lambda kind: gpu["waste"][kind]["s"])
    assert match.group(4) == {"stall": "stalled", "underfill": "underfilled"}[largest]
    assert "GPU held" in tooltip
    assert f"${cents4(gpu['waste_usd'])} wasted" in badge.text_content()
    status = page.locator(".nbcost-status")
    page.wait_for_function(
        "() => document.querySelector('.nbcost-status')?.dataset.state === 'idle'")
    assert re.search(r"GPU \d+ % busy, \$0\.\d{4} wasted", status.text_content()), \
        status.text_content()
    status.click()
    panel = page.locator("#nbcost-panel")
    row = panel.locator("tr.nbcost-row", has_text="train")
    row.wait_for()
    assert waste in row.get_attribute("title")
    assert row.locator("td").nth(2).text_content() == f"${cents4(gpu['waste_usd'])}"
    assert panel.locator("th").nth(2).text_content() == "Waste"
    # The session's waste includes the GPU held idle between cells, named when it is the largest.
    session_waste = panel.locator(".nbcost-waste").text_content()
    assert re.search(r"GPU \d+ % busy(?: \(± \d\.\d\d s\))? · \$0\.\d{4} of \$0\.\d{4} "
                     r"wasted, most of it (idle between cells|stalled|underfilled) \(\d+\.\d s, \$0\.\d{4}\)", session_waste), \
        session_waste
    assert re.search(r"idle between cells \d+\.\d s, \$0\.\d{4}", panel.text_content())
    page.evaluate("() => window.jupyterapp.shell.currentWidget.content.scrollToItem(1)")
    row.hover()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "jupyterlab-gpu.png")
    record = cell_metadata(page, 1)
    assert record["gpu"]["busy_s"] > 1 and record["gpu"]["held_s"] >= 2.5
    assert Decimal(record["gpu"]["cost_usd"]) > 0
    # The summary's dollars stay text: Lab's MathJax typesets "$0.0011 of $0.0026" as TeX.
    summary = cell(page, 1).locator(".nbcost-summary")
    assert re.search(r"\$0\.\d{4} of \$0\.\d{4} idle or stalled", summary.inner_text()), \
        summary.inner_text()
    assert summary.locator("mjx-container").count() == 0


def sample_while_badge_runs(page, index, read, seconds=2.0):
    """Values of `read` (a JS expression) sampled with the cell's badge state, while it runs.

    The badge leaves `running` on the kernel's `final`, which the kernel sends on iopub before the
    cell's own `idle`: so a sample taken with the badge running was taken while the cell ran.
    """
    cell(page, index).locator(".nbcost-badge[data-state=running]").wait_for(timeout=30_000)
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state, value = page.evaluate(
            f"""index => [window.jupyterapp.shell.currentWidget.content.widgets[index].node
                            .querySelector('.nbcost-badge')?.dataset.state, {read}]""", index)
        if state != "running":
            break
        samples.append(value)
        page.wait_for_timeout(100)
    return samples


KERNEL_STATUS = "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"


def test_the_kernel_reads_busy_while_a_cost_cell_or_a_plain_cell_runs(page, lab):
    """The `%%cost` widget's comm opens mid-cell; Lab's subshell bookkeeping for it must not turn
    the kernel indicator to Idle (issue 8, item 1)."""
    write_notebook(lab.root / "busy.ipynb", [
        nbformat.v4.new_code_cell("%load_ext nbcost"),
        nbformat.v4.new_code_cell("%%cost --label sleepy\nimport time\ntime.sleep(6)"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(6)")])
    open_notebook(page, lab, "busy.ipynb")
    run_cell(page, 0)
    page.wait_for_function(
        "() => /\\$\\d/.test(document.querySelector('.nbcost-status')?.textContent || '')",
        timeout=60_000)
    kernel_item = page.locator(".jp-StatusBar-TextItem", has_text="Python 3")
    for index in (1, 2):
        run_cell(page, index)
        cell(page, index).locator(".nbcost-live, .nbcost-badge").first.wait_for(timeout=30_000)
        samples = sample_while_badge_runs(page, index, KERNEL_STATUS)
        assert len(samples) >= 5, f"cell {index} finished before it could be watched: {samples}"
        assert set(samples) == {"busy"}, f"cell {index}: the kernel read {samples} mid-cell"
        # What the user sees: the status bar's kernel item (a React item, rendered a frame later).
        busy_text = kernel_item.evaluate("el => el.textContent")
        still_running = cell(page, index).locator(".nbcost-badge").get_attribute("data-state")
        assert "Busy" in busy_text or still_running != "running", busy_text
        cell(page, index).locator(".nbcost-badge[data-state=done]").wait_for(timeout=30_000)
    assert not page.page_errors


LLM_SETUP_CELL = """import time
import openai
import nbcost
import nbcost.testing

server = nbcost.testing.llm_server(input_tokens=1800, output_tokens=350).start()
client = openai.OpenAI(base_url=server.base_url("openai"), api_key="sk-loopback")

def ask(n, pause=0.0):
    for step in range(n):
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"step {step}"}])
        time.sleep(pause)"""

BUDGET_SHARE = re.compile(r"([\d,]+) % of \$0\.0010 budget(?:, \$(\d+\.\d+) over)?")


def test_the_budget_shows_its_true_share_and_overshoot_while_the_cell_runs(page, lab):
    """A session budget of $0.001 and five priced calls: the status bar and the panel say how far
    over it is while the cell runs, not "100 %" (issue 8, item 2)."""
    write_notebook(lab.root / "budget.ipynb", [
        nbformat.v4.new_code_cell("%load_ext nbcost"),
        nbformat.v4.new_code_cell(LLM_SETUP_CELL + "\n%cost budget 0.001"),
        nbformat.v4.new_code_cell("%%cost --label over-budget\nask(5, pause=1.0)"),
        nbformat.v4.new_code_cell("print(nbcost.session().total_usd)")])
    open_notebook(page, lab, "budget.ipynb")
    run_cell(page, 0)
    status = page.locator(".nbcost-status")
    page.wait_for_function(
        "() => /\\$\\d/.test(document.querySelector('.nbcost-status')?.textContent || '')",
        timeout=60_000)
    run_cell(page, 1)
    cell(page, 1).locator(".nbcost-badge[data-state=done]").wait_for(timeout=60_000)
    status.click()
    panel = page.locator("#nbcost-panel")
    panel.wait_for(state="visible")

    run_cell(page, 2)
    cell(page, 2).locator(".nbcost-badge[data-state=running]").wait_for(timeout=30_000)
    live = []  # (status text, panel budget text, panel budget level) while the cell runs
    deadline = time.monotonic() + 60
    while True:
        sample = page.evaluate("""() => [
            document.querySelector('.nbcost-status')?.dataset.state,
            document.querySelector('.nbcost-status')?.textContent,
            document.querySelector('#nbcost-panel .nbcost-panel-budget')?.textContent,
            document.querySelector('#nbcost-panel .nbcost-panel-budget')?.dataset.level]""")
        if sample[0] != "running":
            break
        assert time.monotonic() < deadline, "the cell never finished"
        live.append(sample[1:])
        if len(live) == 12:  # mid-run, over budget: the README's live budget warning
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "jupyterlab-budget.png")
        page.wait_for_timeout(250)
    shares = [BUDGET_SHARE.search(text) for text, _, _ in live]
    assert all(shares), live
    over = [int(m.group(1).replace(",", "")) for m in shares if m.group(2)]
    assert len(set(over)) >= 2 and max(over) > 1000, f"the live share must grow past 100 %: {live}"
    assert any(level == "over" and BUDGET_SHARE.search(text or "") for _, text, level in live)

    # Once the cell is done, the figures are exactly the session's total against the budget.
    cell(page, 2).locator(".nbcost-badge[data-state=done]").wait_for(timeout=30_000)
    run_cell(page, 3)
    output = cell(page, 3).locator(".jp-OutputArea-output")
    output.wait_for(timeout=30_000)
    total = Decimal(output.text_content().strip())
    budget = Decimal("0.001")
    share = (total / budget * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    expected = f"{share:,} % of $0.0010 budget, ${cents4(total - budget)} over"
    page.wait_for_function(
        "text => document.querySelector('.nbcost-status')?.textContent.includes(text)", arg=expected)
    assert status.get_attribute("data-budget") == "over"
    assert expected in panel.locator(".nbcost-panel-budget").text_content()
    assert not page.page_errors


def test_the_panel_is_rebuilt_from_saved_records_after_a_restart_and_reload(page, lab):
    """The kernel restarted and the page reloaded: the panel lists the cells from their saved
    `metadata.nbcost`, sorts them by cost, hides $0 cells and marks the error (issue 8, item 11)."""
    write_notebook(lab.root / "saved.ipynb", [
        nbformat.v4.new_code_cell("%load_ext nbcost"),
        nbformat.v4.new_code_cell(LLM_SETUP_CELL),
        nbformat.v4.new_code_cell("%%cost --label one-call\nask(1)"),
        nbformat.v4.new_code_cell("%%cost --label two-calls\nask(2)"),
        nbformat.v4.new_code_cell("%%cost --label broken\nask(1)\nraise ValueError('boom')"),
        nbformat.v4.new_code_cell("x = 1")])
    open_notebook(page, lab, "saved.ipynb")
    run_cell(page, 0)
    page.wait_for_function(
        "() => /\\$\\d/.test(document.querySelector('.nbcost-status')?.textContent || '')",
        timeout=60_000)
    for index in range(1, 6):
        run_cell(page, index)
        cell(page, index).locator(".nbcost-badge[data-state=done], .nbcost-badge[data-state=error]"
                                  ).wait_for(timeout=60_000)
        # A request that arrives while an error is being reported is aborted: wait for idle.
        page.wait_for_function(f"() => {KERNEL_STATUS} === 'idle'", timeout=60_000)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while not all("nbcost" in c.metadata
                  for c in nbformat.read(lab.root / "saved.ipynb", as_version=4).cells[1:]):
        assert time.monotonic() < deadline, "the notebook was not saved with its cost records"
        time.sleep(0.3)
    saved = nbformat.read(lab.root / "saved.ipynb", as_version=4).cells
    assert saved[4].metadata["nbcost"]["status"] == "error"

    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session"
                  ".kernel.restart()")
    page.wait_for_function(f"() => {KERNEL_STATUS} === 'idle'", timeout=60_000)
    open_notebook(page, lab, "saved.ipynb")  # a fresh page: no live session anywhere
    page.locator(".nbcost-status").click()
    panel = page.locator("#nbcost-panel")
    panel.wait_for(state="visible")
    assert "No cost yet" not in panel.text_content()
    rows = panel.locator("tr.nbcost-row")
    for label in ("one-call", "two-calls", "broken"):
        row = panel.locator("tr.nbcost-row", has_text=label)
        row.wait_for(timeout=30_000)
        record = next(c.metadata["nbcost"] for c in saved if label in c.source)
        assert f"${cents4(record['cost_usd'])}" in row.text_content()
    assert rows.count() == 5  # the setup cell and `x = 1` too, at $0.00
    assert rows.locator("td:last-child").all_text_contents().count("$0.00") == 2
    error_row = panel.locator("tr.nbcost-row.nbcost-error")
    assert error_row.count() == 1 and "broken" in error_row.text_content()
    assert "✕" in error_row.text_content()
    total = sum(Decimal(c.metadata["nbcost"]["cost_usd"]) for c in saved[1:])
    assert f"${cents4(total)}" in panel.locator(".nbcost-panel-total").text_content()
    assert panel.locator(".nbcost-chart-band").count() == 5
    assert panel.locator(".nbcost-chart-y").text_content().startswith(f"${cents4(total)}")

    panel.locator("select.nbcost-order").select_option("cost")
    page.wait_for_function(
        "() => document.querySelector('#nbcost-panel tr.nbcost-row')?.textContent"
        ".includes('two-calls')")
    panel.locator(".nbcost-hide-free input").check()
    page.wait_for_function(
        "() => document.querySelectorAll('#nbcost-panel tr.nbcost-row').length === 3")
    assert "$0.00" not in rows.locator("td:last-child").all_text_contents()
    assert not page.page_errors
