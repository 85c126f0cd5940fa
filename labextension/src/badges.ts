/**
 * A cost badge under each code cell's input, live while the cell runs (the execute-time pattern:
 * watch the cell list and each cell's metadata, keep the slots in a map to disconnect them).
 */

import { Cell, CodeCell, ICellModel } from '@jupyterlab/cells';
import { CellList, NotebookPanel } from '@jupyterlab/notebook';
import { IObservableList } from '@jupyterlab/observables';
import { IDisposable } from '@lumino/disposable';

import { badgeText, recordDetails } from './format';
import { IModelChange, SessionModel } from './model';
import { ICostRecord, sanitizeRecord, timeMs } from './protocol';

export const BADGE_CLASS = 'nbcost-badge';
export const METADATA_KEY = 'nbcost';

export class CellBadges implements IDisposable {
  constructor(
    private readonly _panel: NotebookPanel,
    private readonly _model: SessionModel,
    private readonly _enabled: () => boolean,
    private readonly _onSavedChanged: () => void
  ) {
    _model.changed.connect(this._onModelChanged, this);
    _panel.content.modelChanged.connect(this._onNotebookModelChanged, this);
    this._onNotebookModelChanged();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._model.changed.disconnect(this._onModelChanged, this);
    this._watchCells(null);
    this._panel.content.modelChanged.disconnect(this._onNotebookModelChanged, this);
    for (const node of this._panel.node.querySelectorAll(`.${BADGE_CLASS}`)) {
      node.remove();
    }
  }

  /** Redraw every badge (after a settings change). */
  refreshAll(): void {
    for (const cell of this._panel.content.widgets) {
      this._render(cell);
    }
  }

  private _onNotebookModelChanged(): void {
    this._watchCells(this._panel.content.model?.cells ?? null);
  }

  private _watchCells(cells: CellList | null): void {
    if (this._cells) {
      this._cells.changed.disconnect(this._onCellsChanged, this);
    }
    for (const [cellModel, slot] of this._metadataSlots) {
      cellModel.metadataChanged.disconnect(slot);
    }
    this._metadataSlots.clear();
    this._cells = cells;
    if (!cells) {
      return;
    }
    cells.changed.connect(this._onCellsChanged, this);
    for (const cellModel of cells) {
      this._watchCell(cellModel);
    }
    this.refreshAll();
    this._onSavedChanged();
  }

  private _onCellsChanged(_: unknown, change: IObservableList.IChangedArgs<ICellModel>): void {
    for (const cellModel of change.oldValues) {
      const slot = this._metadataSlots.get(cellModel);
      if (slot) {
        cellModel.metadataChanged.disconnect(slot);
        this._metadataSlots.delete(cellModel);
      }
    }
    if (change.oldValues.length || change.newValues.length) {
      this._onSavedChanged();
    }
    for (const cellModel of change.newValues) {
      this._watchCell(cellModel);
      const cell = this._panel.content.widgets.find(widget => widget.model === cellModel);
      if (cell) {
        void cell.ready.then(() => this._render(cell));
      }
    }
  }

  private _watchCell(cellModel: ICellModel): void {
    if (this._metadataSlots.has(cellModel)) {
      return;
    }
    const slot = (_: unknown, change: { key: string }) => {
      this._renderModel(cellModel);
      if (change.key === METADATA_KEY) {
        this._onSavedChanged();
      }
    };
    cellModel.metadataChanged.connect(slot);
    this._metadataSlots.set(cellModel, slot);
  }

  private _onModelChanged(_: SessionModel, { entry }: IModelChange): void {
    if (!entry) {
      this.refreshAll();
      return;
    }
    const cellId = entry.record.cell_id;
    const cell = this._panel.content.widgets.find(widget => widget.model.id === cellId);
    if (cell) {
      this._render(cell);
    }
  }

  private _renderModel(cellModel: ICellModel): void {
    const cell = this._panel.content.widgets.find(widget => widget.model === cellModel);
    if (cell) {
      this._render(cell);
    }
  }

  /** What a cell's badge shows: the live row while it runs, else the newer of row and metadata. */
  private _pick(cell: Cell): { record: ICostRecord; running: boolean; elapsedS?: number } | null {
    const entry = this._model.entryForCell(cell.model.id);
    if (entry?.running) {
      return entry;
    }
    const saved = sanitizeRecord(cell.model.getMetadata(METADATA_KEY));
    if (saved && (!entry || timeMs(saved.end) >= timeMs(entry.record.end))) {
      return { record: saved, running: false };
    }
    return entry ?? null;
  }

  private _render(cell: Cell): void {
    if (this._isDisposed || cell.model.type !== 'code' || cell.isDisposed) {
      return;
    }
    const host = (cell as CodeCell).inputArea?.editorWidget?.node;
    let badge = cell.node.querySelector<HTMLElement>(`.${BADGE_CLASS}`);
    const shown = this._enabled() ? this._pick(cell) : null;
    if (shown && !host && !this._waited.has(cell)) {
      // A windowed notebook renders some cells later: try once more when the cell is ready.
      this._waited.add(cell);
      void cell.ready.then(() => this._render(cell));
    }
    if (!shown || !host) {
      badge?.remove();
      return;
    }
    if (!badge) {
      badge = document.createElement('div');
      badge.className = BADGE_CLASS;
      host.appendChild(badge);
    }
    // Text only: the record may come from an untrusted notebook's metadata.
    badge.textContent = badgeText(shown.record, shown.running, shown.elapsedS);
    badge.title = recordDetails(shown.record).join('\n');
    badge.dataset.state = shown.running
      ? 'running'
      : shown.record.interrupted
        ? 'interrupted'
        : shown.record.status === 'error'
          ? 'error'
          : 'done';
  }

  private _cells: CellList | null = null;
  private _metadataSlots = new Map<ICellModel, (_: unknown, change: { key: string }) => void>();
  private _waited = new WeakSet<Cell>();
  private _isDisposed = false;
}
