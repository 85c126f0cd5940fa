// The live panel under a %%cost cell (anywidget ES module, no build step).
//
// The kernel sends every line already written (nbcost.display.summary, the same code as the
// static summary): this module only lays them out. Plain DOM and textContent only: labels are
// user input, and VS Code's notebook renderer supports no more than this.

const TRAITS = ["title", "lines", "running", "budget"];

function node(tag, className, text) {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function render({ model, el }) {
  const root = node("div", "nbcost-live");
  el.appendChild(root);
  const draw = () => {
    root.dataset.state = model.get("running") ? "running" : "done";
    const table = node("table", "nbcost-live-table");
    for (const [label, value] of model.get("lines") || []) {
      const row = table.insertRow();
      row.appendChild(node("th", "", label));
      row.appendChild(node("td", "", value));
    }
    const parts = [node("div", "nbcost-live-title", model.get("title") || "nbcost"), table];
    const budget = model.get("budget");
    if (budget) {
      const bar = node("div", "nbcost-live-budget");
      const fill = node("div", "nbcost-live-budget-fill");
      fill.style.width = (100 * Math.min(1, Math.max(0, budget.fill || 0))).toFixed(1) + "%";
      fill.dataset.level = budget.level;
      bar.appendChild(fill);
      const text = node("div", "nbcost-live-budget-text", budget.text);
      text.dataset.level = budget.level;
      parts.push(bar, text);
    }
    root.replaceChildren(...parts);
  };
  for (const name of TRAITS) model.on(`change:${name}`, draw);
  draw();
  return () => {
    for (const name of TRAITS) model.off(`change:${name}`, draw);
  };
}

export default { render };
