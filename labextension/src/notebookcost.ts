/**
 * Everything nbcost keeps for one open notebook: the session model fed by its kernel's comm,
 * the cell badges, and the writer of `cell.metadata.nbcost`.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { CellBadges, METADATA_KEY } from './badges';
import { KernelLink } from './kernellink';
import { SessionModel } from './model';
import { ICostRecord, NbcostMessage, sanitizeRecord } from './protocol';

/** The user's settings (schema/plugin.json mirrors this). */
export interface INbcostSettings {
  /** Write each executed cell's cost record into `cell.metadata.nbcost`. */
  writeMetadata: boolean;
  /** Show a cost badge under each executed code cell. */
  showBadges: boolean;
}

export const DEFAULT_SETTINGS: INbcostSettings = { writeMetadata: true, showBadges: true };

export class NotebookCost implements IDisposable {
  readonly model = new SessionModel();

  constructor(
    readonly panel: NotebookPanel,
    private readonly _settings: () => INbcostSettings
  ) {
    this.model.changed.connect(this._emitChanged, this);
    this._badges = new CellBadges(
      panel,
      this.model,
      () => this._settings().showBadges,
      () => this._emitChanged()
    );
    this._link = new KernelLink(
      panel.sessionContext,
      (message, own) => this._onMessage(message, own),
      () => this._onKernelLost()
    );
  }

  /** Emitted when the session model or a cell's saved record changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * The records saved in this notebook's cells (`metadata.nbcost`), in notebook order: what the
   * panel shows after a page reload or a kernel restart, when the kernel has no history.
   */
  savedRecords(): ICostRecord[] {
    const records: ICostRecord[] = [];
    for (const cell of this.panel.content.model?.cells ?? []) {
      const record = cell.type === 'code' ? sanitizeRecord(cell.getMetadata(METADATA_KEY)) : null;
      if (record) {
        // The cell's own id, whatever the record claims (a copied cell keeps its metadata).
        records.push({ ...record, cell_id: cell.id });
      }
    }
    return records;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._link.dispose();
    this._badges.dispose();
    Signal.clearData(this);
  }

  /** Apply changed settings. */
  refresh(): void {
    this._badges.refreshAll();
  }

  private _onMessage(message: NbcostMessage, own: boolean): void {
    const entry = this.model.apply(message);
    if (message.type === 'tick' && own && entry) {
      this._ownRunning.add(entry.key);
    }
    if (message.type === 'final' && entry) {
      this._ownRunning.delete(entry.key);
      // Under real-time collaboration every client gets this message; only the one that ran
      // the cell writes, so the shared document is written once.
      if (own) {
        this._write(message.record, message.raw);
      }
    }
  }

  /** The kernel restarted or died mid-cell: keep what was measured, marked interrupted. */
  private _onKernelLost(): void {
    for (const entry of this.model.interruptRunning()) {
      if (this._ownRunning.has(entry.key)) {
        this._write(entry.record, entry.raw);
      }
    }
    this._ownRunning.clear();
  }

  /** Store the kernel's record as sent (sanitised only for display), in the cell it names. */
  private _write(record: ICostRecord, raw?: { [key: string]: unknown }): void {
    const notebook = this.panel.content.model;
    if (!this._settings().writeMetadata || !notebook || !record.cell_id) {
      return;
    }
    for (const cell of notebook.cells) {
      if (cell.id === record.cell_id) {
        const stored = JSON.parse(JSON.stringify(raw ?? record));
        // The same types as `nbcost run` writes, whatever an older kernel sent.
        for (const name of ['start', 'end'] as const) {
          if (name in stored) {
            stored[name] = record[name] ?? null;
          }
        }
        cell.setMetadata(METADATA_KEY, stored);
        return;
      }
    }
  }

  private _emitChanged(): void {
    this._changed.emit();
  }

  private _changed = new Signal<this, void>(this);
  private _badges: CellBadges;
  private _link: KernelLink;
  private _ownRunning = new Set<string>();
  private _isDisposed = false;
}
