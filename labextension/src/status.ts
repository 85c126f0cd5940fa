/**
 * The status bar item: the current notebook's session total, live while cells run.
 * A click opens the side panel.
 */

import { Widget } from '@lumino/widgets';

import { statusText } from './format';
import { NotebookCost } from './notebookcost';

export class CostStatus extends Widget {
  constructor(private readonly _openPanel: () => void) {
    super();
    this.addClass('nbcost-status');
    this.addClass('jp-StatusBar-TextItem');
    this.node.title = 'nbcost: session cost (click for the panel)';
    this.node.addEventListener('click', this._openPanel);
    this._render();
  }

  setSource(source: NotebookCost | null): void {
    if (source === this._source) {
      return;
    }
    this._unsubscribe?.();
    this._unsubscribe = null;
    this._source = source;
    if (source) {
      this._unsubscribe = source.model.subscribe(() => this._render());
    }
    this._render();
  }

  dispose(): void {
    this._unsubscribe?.();
    this.node.removeEventListener('click', this._openPanel);
    super.dispose();
  }

  private _render(): void {
    const model = this._source?.model;
    const running = model?.running.length ?? 0;
    this.node.textContent = statusText(model?.totals ?? null, running);
    this.node.dataset.state = running ? 'running' : 'idle';
  }

  private _source: NotebookCost | null = null;
  private _unsubscribe: (() => void) | null = null;
}
