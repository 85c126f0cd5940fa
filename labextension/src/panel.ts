/**
 * The side panel: the current notebook's session total, budget, GPU waste, a spend chart and one
 * row per cell. After a page reload or a kernel restart it is rebuilt from the cost records saved
 * in the notebook's cells. Built with DOM calls and `textContent` only.
 */

import { renderChart, savedPoints } from './chart';
import { sumDecimals } from './decimal';
import {
  badgeText,
  budgetText,
  cellBudget,
  formatCount,
  formatSeconds,
  formatUsd,
  gpuWasteText,
  recordDetails,
  sessionBudget
} from './format';
import { nbcostIcon } from './icon';
import { ICostRecord, ISessionTotals } from './protocol';
import { isFree, IRow, mergeSaved, orderRows, RowOrder } from './rows';
import { NotebookCostView } from './view';

export const PANEL_ID = 'nbcost-panel';
const MAX_ROWS = 200;

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** A row's GPU waste in dollars ("–" without a GPU or waste figures). */
function gpuWasteCell(record: ICostRecord): string {
  const gpu = record.gpu;
  if (!gpu?.held_s || gpu.waste_usd === undefined) {
    return '–';
  }
  return gpu.waste_usd === null ? 'unpriced' : formatUsd(gpu.waste_usd);
}

export class CostPanel extends NotebookCostView {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('nbcost-panel');
    this.title.caption = 'nbcost: what this notebook has cost';
    this.title.icon = nbcostIcon;
    this.render();
  }

  protected render(): void {
    const node = this.node;
    node.replaceChildren();
    const source = this.source;
    if (!source) {
      node.appendChild(element('p', 'nbcost-panel-empty', 'Open a notebook to see its cost.'));
      return;
    }
    const model = source.model;
    const saved = source.savedRecords();
    node.appendChild(element('h3', 'nbcost-panel-title', source.panel.title.label));
    if (!model.totals && model.entries.length === 0 && saved.length === 0) {
      node.appendChild(
        element('p', 'nbcost-panel-empty', 'No cost yet: run %load_ext nbcost in this notebook.')
      );
      return;
    }
    const rows = mergeSaved(model.entries, saved);
    node.appendChild(
      model.totals ? this._totals(model.totals, model.running.length) : this._savedTotals(saved)
    );
    node.appendChild(renderChart(model.points.length ? model.points : savedPoints(saved)));
    node.appendChild(this._controls());
    node.appendChild(this._table(rows));
  }

  /** Without a live session: what the saved records add up to. */
  private _savedTotals(saved: ICostRecord[]): HTMLElement {
    const box = element('div', 'nbcost-panel-totals');
    const total = formatUsd(
      sumDecimals(saved.map(record => record.cost_usd)),
      saved.some(record => record.unpriced)
    );
    box.appendChild(element('div', 'nbcost-panel-total', `Saved in this notebook ${total}`));
    box.appendChild(
      element(
        'div',
        'nbcost-panel-fact',
        `${saved.length} cell${saved.length === 1 ? '' : 's'} with a cost record; ` +
          'run %load_ext nbcost for the live session'
      )
    );
    return box;
  }

  private _totals(totals: ISessionTotals, running: number): HTMLElement {
    const box = element('div', 'nbcost-panel-totals');
    const total = formatUsd(totals.cost_usd, totals.unpriced);
    box.appendChild(
      element('div', 'nbcost-panel-total', `Session ${total}${running ? ' ● running' : ''}`)
    );
    const budget = sessionBudget(totals);
    if (budget && totals.budget_usd) {
      const bar = element('div', 'nbcost-budget');
      const fill = element('div', 'nbcost-budget-fill');
      fill.style.width = `${(Math.min(budget.fraction, 1) * 100).toFixed(1)}%`;
      fill.dataset.level = budget.level;
      bar.appendChild(fill);
      box.appendChild(bar);
      const fact = element(
        'div',
        'nbcost-panel-fact nbcost-panel-budget',
        budgetText(budget, totals.budget_usd) + (totals.budget_hard ? ' (hard)' : '')
      );
      fact.dataset.level = budget.level;
      box.appendChild(fact);
    }
    box.appendChild(element('div', 'nbcost-panel-fact', `Cells ${totals.cells}`));
    const gpu = totals.gpu;
    const waste = gpuWasteText(gpu);
    if (gpu && waste) {
      box.appendChild(element('div', 'nbcost-panel-fact nbcost-waste', waste));
      const idle = gpu.waste?.idle_between;
      const idleS = idle?.s ?? gpu.idle_between_s ?? 0;
      const idleUsd = idle?.usd ?? gpu.idle_cost_usd;
      box.appendChild(
        element(
          'div',
          'nbcost-panel-fact',
          `GPU held ${formatSeconds(gpu.held_s)}, cost ${formatUsd(gpu.cost_usd ?? '0')}; ` +
            `idle between cells ${formatSeconds(idleS)}` +
            (idleUsd ? `, ${formatUsd(idleUsd)}` : '')
        )
      );
    } else {
      box.appendChild(element('div', 'nbcost-panel-fact', 'GPU: none held'));
    }
    const llm = totals.llm;
    if (llm && (llm.calls ?? 0) > 0) {
      box.appendChild(
        element(
          'div',
          'nbcost-panel-fact',
          `LLM ${llm.calls} calls, ${formatCount(llm.input_tokens)} in / ` +
            `${formatCount(llm.output_tokens)} out tokens, ${formatUsd(llm.cost_usd)}`
        )
      );
    }
    return box;
  }

  /** Sort by time or cost; hide cells that cost nothing. */
  private _controls(): HTMLElement {
    const box = element('div', 'nbcost-panel-controls');
    const order = element('select', 'nbcost-order');
    order.title = 'Order of the cells';
    for (const [value, label] of [
      ['time', 'Newest first'],
      ['cost', 'Costliest first']
    ]) {
      const option = element('option', '', label);
      option.value = value;
      option.selected = value === this._order;
      order.appendChild(option);
    }
    order.addEventListener('change', () => {
      this._order = order.value as RowOrder;
      this.render();
    });
    box.appendChild(order);
    const label = element('label', 'nbcost-hide-free');
    const hide = element('input', '');
    hide.type = 'checkbox';
    hide.checked = this._hideFree;
    hide.addEventListener('change', () => {
      this._hideFree = hide.checked;
      this.render();
    });
    label.appendChild(hide);
    label.appendChild(document.createTextNode(' hide $0 cells'));
    box.appendChild(label);
    return box;
  }

  private _table(all: IRow[]): HTMLElement {
    const shown = this._hideFree ? all.filter(row => !isFree(row)) : all;
    const rows = orderRows(shown, this._order).slice(0, MAX_ROWS);
    // Only the columns this session has something to show in, so the table fits the sidebar.
    const showGpu = rows.some(row => (row.record.gpu?.held_s ?? 0) > 0);
    const showTokens = rows.some(row => (row.record.llm?.calls ?? 0) > 0);
    const table = element('table', 'nbcost-panel-cells');
    const head = table.createTHead().insertRow();
    const names = [
      'Cell',
      'Time',
      ...(showGpu ? ['Waste'] : []),
      ...(showTokens ? ['Tok'] : []),
      'Cost'
    ];
    for (const name of names) {
      const th = head.appendChild(element('th', '', name));
      if (name === 'Waste') {
        th.title = 'What the GPU time that did no work cost';
      }
    }
    const body = table.createTBody();
    for (const row of rows) {
      const record = row.record;
      const tr = body.insertRow();
      const classes = ['nbcost-row'];
      if (row.running) {
        classes.push('nbcost-running');
      }
      if (row.saved) {
        classes.push('nbcost-saved');
      }
      if (record.status === 'error') {
        classes.push('nbcost-error');
      }
      if (cellBudget(record)?.share.level === 'over') {
        classes.push('nbcost-over');
      }
      tr.className = classes.join(' ');
      const origin = row.saved ? '\n(saved in the notebook)' : '';
      tr.title =
        `${badgeText(record, row.running, row.elapsedS)}\n${recordDetails(record).join('\n')}` +
        origin;
      const mark = record.status === 'error' ? '✕ ' : record.interrupted ? '⏹ ' : '';
      const name =
        `${mark}[${record.execution_count ?? ' '}]` + (record.label ? ` ${record.label}` : '');
      const tokens = (record.llm?.input_tokens ?? 0) + (record.llm?.output_tokens ?? 0);
      const cells = [name, formatSeconds(row.running ? row.elapsedS : record.wall_s)];
      if (showGpu) {
        cells.push(gpuWasteCell(record));
      }
      if (showTokens) {
        cells.push(tokens ? formatCount(tokens) : '–');
      }
      cells.push(formatUsd(record.cost_usd, record.unpriced));
      for (const value of cells) {
        tr.appendChild(element('td', '', value));
      }
    }
    if (rows.length === 0) {
      const empty = body.insertRow().insertCell();
      empty.colSpan = names.length;
      empty.textContent = 'Every cell shown cost $0.00.';
    }
    return table;
  }

  private _order: RowOrder = 'time';
  private _hideFree = false;
}
