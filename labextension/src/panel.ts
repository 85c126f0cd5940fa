/**
 * The side panel: the current notebook's session total, budget, idle-GPU waste, a spend chart
 * and one row per cell. Built with DOM calls and `textContent` only.
 */

import { Widget } from '@lumino/widgets';

import { renderChart } from './chart';
import {
  badgeText,
  budgetFraction,
  formatCount,
  formatPercent,
  formatSeconds,
  formatUsd,
  recordDetails
} from './format';
import { nbcostIcon } from './icon';
import { ICellEntry } from './model';
import { ISessionTotals } from './protocol';
import { NotebookCost } from './notebookcost';

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

export class CostPanel extends Widget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('nbcost-panel');
    this.title.caption = 'nbcost: what this notebook has cost';
    this.title.icon = nbcostIcon;
    this._render();
  }

  /** Show the session of `source` (the current notebook), or nothing. */
  setSource(source: NotebookCost | null): void {
    if (source === this._source) {
      return;
    }
    this._unsubscribe?.();
    this._unsubscribe = null;
    this._source = source;
    if (source) {
      this._unsubscribe = source.model.subscribe(() => this._scheduleRender());
    }
    this._render();
  }

  dispose(): void {
    this._unsubscribe?.();
    super.dispose();
  }

  private _scheduleRender(): void {
    if (this._renderPending) {
      return;
    }
    this._renderPending = true;
    requestAnimationFrame(() => {
      this._renderPending = false;
      this._render();
    });
  }

  private _render(): void {
    const node = this.node;
    node.replaceChildren();
    const source = this._source;
    if (!source) {
      node.appendChild(element('p', 'nbcost-panel-empty', 'Open a notebook to see its cost.'));
      return;
    }
    const model = source.model;
    node.appendChild(element('h3', 'nbcost-panel-title', source.panel.title.label));
    if (!model.totals && model.entries.length === 0) {
      node.appendChild(
        element('p', 'nbcost-panel-empty', 'No cost yet: run %load_ext nbcost in this notebook.')
      );
      return;
    }
    node.appendChild(this._totals(model.totals, model.running.length));
    node.appendChild(renderChart(model.points));
    node.appendChild(this._table(model.entries));
  }

  private _totals(totals: ISessionTotals | null, running: number): HTMLElement {
    const box = element('div', 'nbcost-panel-totals');
    const total = totals ? formatUsd(totals.cost_usd, totals.unpriced) : '–';
    box.appendChild(
      element('div', 'nbcost-panel-total', `Session ${total}${running ? ' ● running' : ''}`)
    );
    const fraction = budgetFraction(totals);
    if (totals && fraction !== null) {
      const bar = element('div', 'nbcost-budget');
      const fill = element('div', 'nbcost-budget-fill');
      fill.style.width = `${(fraction * 100).toFixed(1)}%`;
      fill.dataset.level = fraction >= 1 ? 'over' : fraction >= 0.8 ? 'near' : 'ok';
      bar.appendChild(fill);
      box.appendChild(bar);
      box.appendChild(
        element(
          'div',
          'nbcost-panel-fact',
          `Budget ${formatUsd(totals.budget_usd)}${totals.budget_hard ? ' (hard)' : ''}, ` +
            `${Math.round(fraction * 100)} % spent`
        )
      );
    }
    if (!totals) {
      return box;
    }
    box.appendChild(element('div', 'nbcost-panel-fact', `Cells ${totals.cells}`));
    const gpu = totals.gpu;
    if (gpu && (gpu.held_s ?? 0) > 0) {
      box.appendChild(
        element(
          'div',
          'nbcost-panel-fact',
          `GPU held ${formatSeconds(gpu.held_s)}, busy ${formatPercent(gpu.busy_s, gpu.held_s)}, ` +
            `cost ${formatUsd(gpu.cost_usd)}`
        )
      );
      box.appendChild(
        element(
          'div',
          'nbcost-panel-fact nbcost-waste',
          `Idle GPU between cells ${formatSeconds(gpu.idle_between_s ?? 0)}` +
            (gpu.idle_cost_usd ? `, ${formatUsd(gpu.idle_cost_usd)} wasted` : '')
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

  private _table(entries: ICellEntry[]): HTMLElement {
    const rows = entries.slice(-MAX_ROWS).reverse();
    // Only the columns this session has something to show in, so the table fits the sidebar.
    const showGpu = rows.some(entry => (entry.record.gpu?.held_s ?? 0) > 0);
    const showTokens = rows.some(entry => (entry.record.llm?.calls ?? 0) > 0);
    const table = element('table', 'nbcost-panel-cells');
    const head = table.createTHead().insertRow();
    const names = ['Cell', 'Time', ...(showGpu ? ['GPU'] : []), ...(showTokens ? ['Tok'] : []), 'Cost'];
    for (const name of names) {
      head.appendChild(element('th', '', name));
    }
    const body = table.createTBody();
    for (const entry of rows) {
      const record = entry.record;
      const row = body.insertRow();
      row.className = entry.running ? 'nbcost-row nbcost-running' : 'nbcost-row';
      row.title = `${badgeText(record, entry.running, entry.elapsedS)}\n${recordDetails(record).join('\n')}`;
      const name = `[${record.execution_count ?? ' '}]` + (record.label ? ` ${record.label}` : '');
      const tokens = (record.llm?.input_tokens ?? 0) + (record.llm?.output_tokens ?? 0);
      const cells = [name, formatSeconds(entry.running ? entry.elapsedS : record.wall_s)];
      if (showGpu) {
        cells.push(record.gpu?.held_s ? formatSeconds(record.gpu.busy_s) : '–');
      }
      if (showTokens) {
        cells.push(tokens ? formatCount(tokens) : '–');
      }
      cells.push(formatUsd(record.cost_usd, record.unpriced));
      for (const value of cells) {
        row.appendChild(element('td', '', value));
      }
    }
    return table;
  }

  private _source: NotebookCost | null = null;
  private _unsubscribe: (() => void) | null = null;
  private _renderPending = false;
}
