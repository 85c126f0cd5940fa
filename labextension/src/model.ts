/**
 * The front end's view of one kernel's nbcost session, built from comm messages.
 *
 * Pure: no JupyterLab imports, so it is unit-tested in plain jest. Every value that arrives
 * (from the kernel or from a notebook's metadata, which is untrusted input) passes through
 * `sanitizeRecord` / `parseMessage`, which keep only known fields of the expected types.
 */

/** Comm target and the message version this front end speaks. */
export const COMM_TARGET = 'nbcost';
export const PROTOCOL_VERSION = 1;

export interface IGpuFigures {
  held_s?: number;
  busy_s?: number;
  sm_s?: number;
  energy_j?: number;
  mem_peak_bytes?: number;
  idle_between_s?: number;
  cost_usd?: string;
  idle_cost_usd?: string;
}

export interface ILlmCounts {
  calls?: number;
  input_tokens?: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
  output_tokens?: number;
  reasoning_tokens?: number;
  cost_usd?: string;
}

export interface ILlmFigures extends ILlmCounts {
  by_model?: { [model: string]: ILlmCounts };
}

/** The compact per-cell record: the shape of `cell.metadata.nbcost` (see CORE_API.md). */
export interface ICostRecord {
  v: number;
  session_id?: string;
  execution_count?: number;
  cell_id?: string;
  label?: string;
  start?: number;
  end?: number;
  wall_s?: number;
  cost_usd: string;
  unpriced: boolean;
  status?: string;
  gpu?: IGpuFigures;
  llm?: ILlmFigures;
  flags: string[];
  interrupted?: boolean;
}

/** Session-wide running totals, as the kernel sends them in `session` and `tick` messages. */
export interface ISessionTotals {
  session_id?: string;
  cost_usd: string;
  unpriced: boolean;
  cells: number;
  at?: number;
  gpu?: IGpuFigures;
  llm?: ILlmFigures;
  budget_usd?: string | null;
  budget_hard?: boolean;
}

export interface IHelloMessage {
  type: 'hello';
  v: number;
  session_id?: string;
  capabilities: string[];
}

export interface ITickMessage {
  type: 'tick';
  v: number;
  window_id: string;
  elapsed_s: number;
  record: ICostRecord;
  /** The record exactly as the kernel sent it (other meters included), for cell metadata. */
  raw: { [key: string]: unknown };
  session?: ISessionTotals;
}

export interface IFinalMessage {
  type: 'final';
  v: number;
  window_id?: string;
  record: ICostRecord;
  /** The record exactly as the kernel sent it (other meters included), for cell metadata. */
  raw: { [key: string]: unknown };
  session?: ISessionTotals;
}

export interface ISessionMessage {
  type: 'session';
  v: number;
  session: ISessionTotals;
  cells: ICostRecord[];
}

export type NbcostMessage = IHelloMessage | ITickMessage | IFinalMessage | ISessionMessage;

// ---- sanitising untrusted values -------------------------------------------------------------

const MAX_TEXT = 500;

function isObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && isFinite(value) ? value : undefined;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') {
    return value.slice(0, MAX_TEXT);
  }
  return typeof value === 'number' && isFinite(value) ? String(value) : undefined;
}

function copyNumbers<T>(source: unknown, names: string[], moneyNames: string[]): T | undefined {
  if (!isObject(source)) {
    return undefined;
  }
  const out: { [key: string]: unknown } = {};
  for (const name of names) {
    const value = num(source[name]);
    if (value !== undefined) {
      out[name] = value;
    }
  }
  for (const name of moneyNames) {
    const value = text(source[name]);
    if (value !== undefined) {
      out[name] = value;
    }
  }
  return out as T;
}

const GPU_NUMBERS = ['held_s', 'busy_s', 'sm_s', 'energy_j', 'mem_peak_bytes', 'idle_between_s'];
const LLM_NUMBERS = [
  'calls',
  'input_tokens',
  'cache_read_tokens',
  'cache_write_tokens',
  'output_tokens',
  'reasoning_tokens'
];
const MONEY = ['cost_usd'];

function sanitizeGpu(value: unknown): IGpuFigures | undefined {
  return copyNumbers<IGpuFigures>(value, GPU_NUMBERS, ['cost_usd', 'idle_cost_usd']);
}

function sanitizeLlm(value: unknown): ILlmFigures | undefined {
  const llm = copyNumbers<ILlmFigures>(value, LLM_NUMBERS, MONEY);
  if (!llm || !isObject(value) || !isObject(value.by_model)) {
    return llm;
  }
  const byModel: { [model: string]: ILlmCounts } = {};
  for (const [model, counts] of Object.entries(value.by_model).slice(0, 50)) {
    const clean = copyNumbers<ILlmCounts>(counts, LLM_NUMBERS, MONEY);
    if (clean) {
      byModel[model.slice(0, MAX_TEXT)] = clean;
    }
  }
  llm.by_model = byModel;
  return llm;
}

/** A compact record from untrusted input, keeping only known fields; null if it is not one. */
export function sanitizeRecord(value: unknown): ICostRecord | null {
  if (!isObject(value)) {
    return null;
  }
  const record: ICostRecord = {
    v: num(value.v) ?? PROTOCOL_VERSION,
    cost_usd: text(value.cost_usd) ?? '',
    unpriced: value.unpriced === true,
    flags: Array.isArray(value.flags)
      ? value.flags.slice(0, 20).map(text).filter((f): f is string => !!f)
      : []
  };
  for (const name of ['session_id', 'cell_id', 'label', 'status'] as const) {
    const value_ = text(value[name]);
    if (value_ !== undefined) {
      record[name] = value_;
    }
  }
  for (const name of ['execution_count', 'start', 'end', 'wall_s'] as const) {
    const value_ = num(value[name]);
    if (value_ !== undefined) {
      record[name] = value_;
    }
  }
  const gpu = sanitizeGpu(value.gpu);
  if (gpu) {
    record.gpu = gpu;
  }
  const llm = sanitizeLlm(value.llm);
  if (llm) {
    record.llm = llm;
  }
  if (value.interrupted === true) {
    record.interrupted = true;
  }
  return record;
}

function sanitizeTotals(value: unknown): ISessionTotals | undefined {
  if (!isObject(value)) {
    return undefined;
  }
  const totals: ISessionTotals = {
    cost_usd: text(value.cost_usd) ?? '',
    unpriced: value.unpriced === true,
    cells: num(value.cells) ?? 0,
    budget_usd: value.budget_usd === null ? null : text(value.budget_usd),
    budget_hard: value.budget_hard === true
  };
  const sessionId = text(value.session_id);
  if (sessionId !== undefined) {
    totals.session_id = sessionId;
  }
  const at = num(value.at);
  if (at !== undefined) {
    totals.at = at;
  }
  const gpu = sanitizeGpu(value.gpu);
  if (gpu) {
    totals.gpu = gpu;
  }
  const llm = sanitizeLlm(value.llm);
  if (llm) {
    totals.llm = llm;
  }
  return totals;
}

/** A comm message's data as a typed message, or null for anything this version cannot use. */
export function parseMessage(data: unknown): NbcostMessage | null {
  if (!isObject(data) || typeof data.type !== 'string') {
    return null;
  }
  const v = num(data.v);
  if (v === undefined || Math.floor(v) !== PROTOCOL_VERSION) {
    return null;
  }
  switch (data.type) {
    case 'hello':
      return {
        type: 'hello',
        v,
        session_id: text(data.session_id),
        capabilities: Array.isArray(data.capabilities)
          ? data.capabilities.map(text).filter((c): c is string => !!c)
          : []
      };
    case 'tick': {
      const record = sanitizeRecord(data.record);
      const windowId = text(data.window_id);
      if (!record || windowId === undefined) {
        return null;
      }
      return {
        type: 'tick',
        v,
        window_id: windowId,
        elapsed_s: num(data.elapsed_s) ?? 0,
        record,
        raw: data.record as { [key: string]: unknown },
        session: sanitizeTotals(data.session)
      };
    }
    case 'final': {
      const record = sanitizeRecord(data.record);
      if (!record) {
        return null;
      }
      return {
        type: 'final',
        v,
        window_id: text(data.window_id),
        record,
        raw: data.record as { [key: string]: unknown },
        session: sanitizeTotals(data.session)
      };
    }
    case 'session': {
      const session = sanitizeTotals(data.session);
      if (!session) {
        return null;
      }
      const cells = Array.isArray(data.cells) ? data.cells : [];
      return {
        type: 'session',
        v,
        session,
        cells: cells.map(sanitizeRecord).filter((r): r is ICostRecord => r !== null)
      };
    }
    default:
      return null;
  }
}

// ---- the session model ------------------------------------------------------------------------

/** One row of the panel: a finished or running cell (or `track()` block). */
export interface ICellEntry {
  key: string;
  record: ICostRecord;
  /** The kernel's own record (JSON), when it came from the kernel rather than a notebook. */
  raw?: { [key: string]: unknown };
  running: boolean;
  elapsedS?: number;
}

/** One point of the spend-over-time chart: session dollars (as a number, for geometry only). */
export interface ISpendPoint {
  t: number;
  usd: number;
}

export type ChangeKind = 'hello' | 'tick' | 'final' | 'session' | 'reset';

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
 * Listeners are called after every applied message with the kind and the affected row.
 */
export class SessionModel {
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

  subscribe(listener: (kind: ChangeKind, entry?: ICellEntry) => void): () => void {
    this._listeners.push(listener);
    return () => {
      this._listeners = this._listeners.filter(l => l !== listener);
    };
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
      return;
    }
    this.points.push({ t, usd });
    if (this.points.length > MAX_POINTS) {
      this.points.splice(0, this.points.length - MAX_POINTS);
    }
  }

  private _emit(kind: ChangeKind, entry?: ICellEntry): void {
    for (const listener of this._listeners) {
      try {
        listener(kind, entry);
      } catch (error) {
        console.error('nbcost: a listener failed', error);
      }
    }
  }

  private _entries = new Map<string, ICellEntry>();
  private _order: string[] = [];
  private _windowKeys = new Map<string, string>();
  private _listeners: ((kind: ChangeKind, entry?: ICellEntry) => void)[] = [];
}
