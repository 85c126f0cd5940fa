"""The live panel under a ``%%cost`` cell: an anywidget (inline ESM, no build step).

While the cell runs the ticker feeds it the cell's running totals; when the cell ends it gets the
final record once, and its output is replaced by the static text/plain + text/html summary, so a
saved notebook shows the summary in every viewer (GitHub, nbconvert, a notebook reopened without
a kernel) instead of an unrenderable widget. The ESM uses plain DOM and ``textContent`` only,
which VS Code's notebook renderer supports too.
"""

from __future__ import annotations

import threading
from typing import Any

import anywidget
import traitlets

from ..records import WindowInfo, WindowRecord, money
from .summary import RecordSummary
from .ticker import Ticker

__all__ = ["CostWidget", "LivePanel", "window_budget"]

# Plain DOM and textContent only: labels are user input, and VS Code renders no more than this.
_ESM = r"""
const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

function usd(value, unpriced) {
  const match = DECIMAL.exec(String(value ?? ""));
  if (!match) return unpriced ? "unpriced" : "$?";
  const places = match[1].replace(/^0+/, "") ? 2 : 4;
  const scaled = BigInt(match[1] + ((match[2] || "") + "0".repeat(places + 1)).slice(0, places + 1));
  const rounded = ((scaled + 5n) / 10n).toString().padStart(places + 1, "0");
  const text = rounded.slice(0, -places) + "." + rounded.slice(-places);
  const tiny = /^[0.]*$/.test(text) && /[1-9]/.test(match[2] || "");
  return (tiny ? "<$0.0001" : "$" + text) + (unpriced ? " + unpriced" : "");
}

function secs(s) {
  if (typeof s !== "number") return "–";
  if (s < 60) return s.toFixed(1) + " s";
  return Math.floor(s / 60) + " min " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
}

function pct(part, whole) {
  return part && whole ? Math.round((100 * part) / whole) + " %" : "–";
}

function count(n) {
  return (n || 0).toLocaleString("en-US");
}

function node(tag, className, text) {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function rows(r) {
  const out = [["Elapsed", secs(r.wall_s)]];
  const gpu = r.gpu;
  if (gpu && gpu.held_s) {
    out.push(["GPU", `held ${secs(gpu.held_s)}, busy ${pct(gpu.busy_s, gpu.held_s)}, SM ${pct(gpu.sm_s, gpu.held_s)}`]);
    const extra = [];
    if (gpu.energy_j) extra.push(`${count(Math.round(gpu.energy_j))} J`);
    if (gpu.mem_peak_bytes) extra.push(`peak ${(gpu.mem_peak_bytes / 2 ** 30).toFixed(2)} GiB`);
    if (extra.length) out.push(["", extra.join(", ")]);
  }
  const llm = r.llm;
  if (llm && llm.calls) {
    out.push(["LLM", `${llm.calls} call${llm.calls === 1 ? "" : "s"}: ${count(llm.input_tokens)} in, ${count(llm.output_tokens)} out tokens`]);
    for (const [model, c] of Object.entries(llm.by_model || {})) {
      out.push([`  ${model}`, `${c.calls || 0} × ${count((c.input_tokens || 0) + (c.output_tokens || 0))} tokens, ${usd(c.cost_usd, c.unpriced)}`]);
    }
  }
  out.push(["Cost", usd(r.cost_usd, r.unpriced)]);
  return out;
}

function render({ model, el }) {
  const root = node("div", "nbcost-live");
  el.appendChild(root);
  const draw = () => {
    const r = model.get("record") || {};
    const running = model.get("running");
    const budget = model.get("budget_usd");
    const name = r.label || `cell [${r.execution_count ?? " "}]`;
    const status = running ? "running" : r.status === "ok" ? "done" : r.status || "";
    root.dataset.state = running ? "running" : "done";
    const table = node("table", "nbcost-live-table");
    for (const [label, value] of rows(r)) {
      const row = table.insertRow();
      row.appendChild(node("th", "", label));
      row.appendChild(node("td", "", value));
    }
    const parts = [node("div", "nbcost-live-title", `nbcost · ${name} · ${status}`), table];
    if (budget) {
      const fraction = Math.min(1, Number(r.cost_usd || 0) / Math.max(Number(budget), 1e-12));
      const bar = node("div", "nbcost-live-budget");
      const fill = node("div", "nbcost-live-budget-fill");
      fill.style.width = (100 * fraction).toFixed(1) + "%";
      fill.dataset.level = fraction >= 1 ? "over" : fraction >= 0.8 ? "near" : "ok";
      bar.appendChild(fill);
      parts.push(bar, node("div", "nbcost-live-budget-text", `${Math.round(100 * fraction)} % of ${usd(budget)} budget`));
    }
    root.replaceChildren(...parts);
  };
  for (const name of ["record", "running", "budget_usd"]) model.on(`change:${name}`, draw);
  draw();
  return () => {
    for (const name of ["record", "running", "budget_usd"]) model.off(`change:${name}`, draw);
  };
}

export default { render };
"""

_CSS = """
.nbcost-live { font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px; padding: 4px 0; }
.nbcost-live-title { font-weight: 600; margin-bottom: 2px; }
.nbcost-live[data-state='running'] .nbcost-live-title { color: var(--jp-brand-color1, #1976d2); }
.nbcost-live-table th { text-align: left; padding-right: 1em; font-weight: normal; opacity: 0.8; }
.nbcost-live-table td { text-align: left; }
.nbcost-live-budget { height: 6px; width: 240px; background: rgba(128, 128, 128, 0.25); border-radius: 3px; overflow: hidden; margin-top: 4px; }
.nbcost-live-budget-fill { height: 100%; background: #2e7d32; }
.nbcost-live-budget-fill[data-level='near'] { background: #ef6c00; }
.nbcost-live-budget-fill[data-level='over'] { background: #c62828; }
"""


class CostWidget(anywidget.AnyWidget):
    """Elapsed time, GPU, LLM calls and tokens by model, dollars and budget of one window."""

    _esm = _ESM
    _css = _CSS

    #: The window's compact record (``Session.live_totals`` while running, then the final one).
    record = traitlets.Dict().tag(sync=True)
    running = traitlets.Bool(True).tag(sync=True)
    #: The budget the bar measures against (the cell's, else the session's), a decimal string.
    budget_usd = traitlets.Unicode(None, allow_none=True).tag(sync=True)


class LivePanel:
    """One ``%%cost`` cell's widget, fed by the ticker; ``finish(record)`` makes it final."""

    def __init__(self, session: Any, window: WindowInfo, ticker: Ticker,
                 budget_usd: str | None) -> None:
        from IPython.display import display

        self.session = session
        self.window = window
        self.ticker = ticker
        self._lock = threading.Lock()  # one writer of the widget's traits at a time
        self._done = False
        self.widget = CostWidget(record=session.live_totals(window.id), running=True,
                                 budget_usd=budget_usd)
        self._handle = display(self._bundle(running=True), raw=True, display_id=True)
        ticker.watch(window.id, self._update)

    def _bundle(self, running: bool, record: WindowRecord | None = None) -> dict:
        if record is not None:
            summary = RecordSummary(record)
            return {"text/plain": repr(summary), "text/html": summary._repr_html_()}
        data, _ = self.widget._repr_mimebundle_()
        return {**data, "text/plain": "nbcost: cell running…"}

    def _update(self, window_id: str, live: dict) -> None:
        """Ticker thread: show the running totals."""
        with self._lock:
            if not self._done:
                self.widget.record = live

    def finish(self, record: WindowRecord) -> None:
        """The cell ended: show its final record, then leave the static summary in the output."""
        self.ticker.unwatch(self.window.id, self._update)
        with self._lock:
            self._done = True
            with self.widget.hold_sync():
                self.widget.record = record.compact()
                self.widget.running = False
        if self._handle is not None:
            self._handle.update(self._bundle(running=False, record=record), raw=True)
        self.widget.close()


def window_budget(session: Any, window: WindowInfo) -> str | None:
    """The cell's own budget if ``%%cost --budget`` set one, else the session's."""
    budget, _hard = session.budget_of(window.id)
    return money(budget)
