/**
 * Everything nbcost keeps for one open notebook: the session model fed by its kernel's comm,
 * the cell badges, and the writer of `cell.metadata.nbcost`.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';

import { CellBadges, METADATA_KEY } from './badges';
import { KernelLink } from './kernellink';
import { SessionModel } from './model';
import { ICostRecord, NbcostMessage } from './protocol';

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
    this._badges = new CellBadges(panel, this.model, () => this._settings().showBadges);
    this._link = new KernelLink(
      panel.sessionContext,
      (message, own) => this._onMessage(message, own),
      () => this._onKernelLost()
    );
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._link.dispose();
    this._badges.dispose();
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
        cell.setMetadata(METADATA_KEY, JSON.parse(JSON.stringify(raw ?? record)));
        return;
      }
    }
  }

  private _badges: CellBadges;
  private _link: KernelLink;
  private _ownRunning = new Set<string>();
  private _isDisposed = false;
}
