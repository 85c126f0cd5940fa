/**
 * The front end's view of one kernel's nbcost session, built from comm messages.
 *
 * Pure: no JupyterLab imports (only Lumino's signals), so it is unit-tested in plain jest.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { ICostRecord, ISessionTotals, NbcostMessage } from './protocol';

/** One row of the panel: a finished or running cell (or `track()` block). */
export interface ICellEntry {
  key: string;
  record: ICostRecord;
  /** The kernel's own record (JSON), when it came from the kernel rather than a notebook. */
  raw?: { [key: string]: unknown };
  running: boolean;
  elapsedS?: number;
}

/** One point of the spend-over-time chart: epoch seconds and session dollars. */
export interface ISpendPoint {
  t: number;
  /** Dollars as a number, for geometry only. */
  usd: number;
  /** The same dollars as the kernel's decimal string, for labels. */
  cost?: string;
}

export type ChangeKind = 'hello' | 'tick' | 'final' | 'session' | 'reset';

/** What `SessionModel.changed` carries: the kind of change and the row it touched, if one. */
export interface IModelChange {
  kind: ChangeKind;
  entry?: ICellEntry;
}

const MAX_ENTRIES = 500;
const MAX_POINTS = 600;

/** A row's key: the cell id when there is one, else the window id, else the execution count. */
export function entryKey(record: ICostRecord, windowId?: string): string {
  if (record.cell_id) {
    return `cell:${record.cell_id}`;
  }
  if (windowId) {
    return `window:${windowId}`;
  }
  return `count:${record.execution_count ?? '?'}:${record.start ?? ''}`;
}

/**
 * What one kernel's session has spent, cell by cell, plus the live state of running cells.
 * `changed` is emitted after every applied message with the kind and the affected row.
 */
export class SessionModel {
  /** Emitted after every change. */
  get changed(): ISignal<this, IModelChange> {
    return this._changed;
  }

  sessionId: string | undefined;
  capabilities: string[] = [];
  totals: ISessionTotals | null = null;
  readonly points: ISpendPoint[] = [];

  /** Rows, oldest first. */
  get entries(): ICellEntry[] {
    return this._order.map(key => this._entries.get(key)!);
  }

  /** Rows of cells running now. */
  get running(): ICellEntry[] {
    return this.entries.filter(entry => entry.running);
  }

  entry(key: string): ICellEntry | undefined {
    return this._entries.get(key);
  }

  /** The row for a notebook cell (by its model id), if the session has one. */
  entryForCell(cellId: string): ICellEntry | undefined {
    return this._entries.get(`cell:${cellId}`);
  }

  /** Apply one parsed message; returns the row it touched, if any. */
  apply(message: NbcostMessage): ICellEntry | undefined {
    let entry: ICellEntry | undefined;
    switch (message.type) {
      case 'hello':
        this._enterSession(message.session_id);
        this.capabilities = message.capabilities;
        break;
      case 'tick':
        entry = this._upsert(entryKey(message.record, message.window_id), message.record, true);
        entry.elapsedS = message.elapsed_s;
        entry.raw = message.raw;
        this._windowKeys.set(message.window_id, entry.key);
        this._setTotals(message.session);
        break;
      case 'final': {
        const windowKey = message.window_id ? this._windowKeys.get(message.window_id) : undefined;
        const key = entryKey(message.record, message.window_id);
        if (windowKey && windowKey !== key) {
          this._remove(windowKey);
        }
        entry = this._upsert(key, message.record, false);
        entry.elapsedS = message.record.wall_s;
        entry.raw = message.raw;
        if (message.window_id) {
          this._windowKeys.delete(message.window_id);
        }
        this._setTotals(message.session);
        break;
      }
      case 'session':
        this._enterSession(message.session.session_id);
        for (const record of message.cells) {
          const key = entryKey(record);
          if (!this._entries.get(key)?.running) {
            this._upsert(key, record, false);
          }
        }
        // History is older than whatever runs now: keep running rows last.
        this._order = [
          ...this._order.filter(key => !this._entries.get(key)!.running),
          ...this._order.filter(key => this._entries.get(key)!.running)
        ];
        this._setTotals(message.session);
        break;
    }
    this._emit(message.type, entry);
    return entry;
  }

  /**
   * The kernel restarted or died: running rows become interrupted records. Returns them so the
   * caller can write what was measured into the cells' metadata.
   */
  interruptRunning(): ICellEntry[] {
    const stopped = this.running;
    for (const entry of stopped) {
      entry.running = false;
      entry.record = { ...entry.record, interrupted: true, status: 'interrupted' };
      if (entry.raw) {
        entry.raw = { ...entry.raw, interrupted: true, status: 'interrupted' };
      }
    }
    this._windowKeys.clear();
    this._emit('reset');
    return stopped;
  }

  /** Forget everything (a new kernel session). */
  clear(): void {
    this._entries.clear();
    this._order = [];
    this._windowKeys.clear();
    this.points.length = 0;
    this.totals = null;
    this.sessionId = undefined;
  }

  /** A different kernel session id means a restarted kernel: forget the old one's rows. */
  private _enterSession(sessionId: string | undefined): void {
    if (sessionId && this.sessionId && sessionId !== this.sessionId) {
      this.clear();
    }
    this.sessionId = sessionId ?? this.sessionId;
  }

  private _upsert(key: string, record: ICostRecord, running: boolean): ICellEntry {
    let entry = this._entries.get(key);
    if (entry) {
      entry.record = record;
      entry.running = running;
      // A cell run again moves to the end, like the kernel's own order.
      this._order = this._order.filter(k => k !== key);
    } else {
      entry = { key, record, running };
      this._entries.set(key, entry);
    }
    this._order.push(key);
    while (this._order.length > MAX_ENTRIES) {
      this._entries.delete(this._order.shift()!);
    }
    return entry;
  }

  private _remove(key: string): void {
    this._entries.delete(key);
    this._order = this._order.filter(k => k !== key);
  }

  private _setTotals(totals: ISessionTotals | undefined): void {
    if (!totals) {
      return;
    }
    this.totals = totals;
    const usd = Number(totals.cost_usd) || 0;
    const t = totals.at ?? Date.now() / 1000;
    const last = this.points[this.points.length - 1];
    if (last && t <= last.t) {
      last.usd = usd;
      last.cost = totals.cost_usd;
      return;
    }
    this.points.push({ t, usd, cost: totals.cost_usd });
    if (this.points.length > MAX_POINTS) {
      this.points.splice(0, this.points.length - MAX_POINTS);
    }
  }

  private _emit(kind: ChangeKind, entry?: ICellEntry): void {
    this._changed.emit({ kind, entry });
  }

  private _entries = new Map<string, ICellEntry>();
  private _order: string[] = [];
  private _windowKeys = new Map<string, string>();
  private _changed = new Signal<this, IModelChange>(this);
}
