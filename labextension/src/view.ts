/**
 * A widget that shows the current notebook's cost (the status bar item, the side panel): it
 * follows one `NotebookCost` at a time and redraws on its `changed` signal, at most once a frame.
 */

import { Widget } from '@lumino/widgets';

import { NotebookCost } from './notebookcost';

export abstract class NotebookCostView extends Widget {
  /** The notebook shown, or null. */
  get source(): NotebookCost | null {
    return this._source;
  }

  /** Show `source` (the current notebook), or nothing. */
  setSource(source: NotebookCost | null): void {
    if (source === this._source) {
      return;
    }
    this._source?.changed.disconnect(this._scheduleRender, this);
    this._source = source;
    source?.changed.connect(this._scheduleRender, this);
    this.render();
  }

  dispose(): void {
    this._source?.changed.disconnect(this._scheduleRender, this);
    this._source = null;
    super.dispose();
  }

  /** Redraw from `source` (plain DOM, text only). */
  protected abstract render(): void;

  private _scheduleRender(): void {
    if (this._renderPending) {
      return;
    }
    this._renderPending = true;
    requestAnimationFrame(() => {
      this._renderPending = false;
      if (!this.isDisposed) {
        this.render();
      }
    });
  }

  private _source: NotebookCost | null = null;
  private _renderPending = false;
}
