/**
 * The status bar item: the current notebook's session total, live while cells run, and its
 * budget's true share. A click opens the side panel.
 */

import { sessionBudget, statusText } from './format';
import { NotebookCostView } from './view';

export class CostStatus extends NotebookCostView {
  constructor(private readonly _openPanel: () => void) {
    super();
    this.addClass('nbcost-status');
    this.addClass('jp-StatusBar-TextItem');
    this.node.title = 'nbcost: session cost (click for the panel)';
    this.node.addEventListener('click', this._openPanel);
    this.render();
  }

  dispose(): void {
    this.node.removeEventListener('click', this._openPanel);
    super.dispose();
  }

  protected render(): void {
    const model = this.source?.model;
    const running = model?.running.length ?? 0;
    const totals = model?.totals ?? null;
    this.node.textContent = statusText(totals, running);
    this.node.dataset.state = running ? 'running' : 'idle';
    this.node.dataset.budget = sessionBudget(totals)?.level ?? 'none';
  }
}
