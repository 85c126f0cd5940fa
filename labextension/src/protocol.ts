/**
 * The comm protocol between the kernel and this extension: message and record types, and the
 * sanitising every incoming value passes through.
 *
 * Pure: no JupyterLab imports. Values come from the kernel or from a notebook's metadata, which
 * is untrusted input: `sanitizeRecord` / `parseMessage` keep only known fields of the expected
 * types, and everything is later rendered as text.
 */

/** Comm target and the message version this front end speaks. */
export const COMM_TARGET = 'nbcost';
export const PROTOCOL_VERSION = 1;

import { GPU_FIGURES, GPU_WASTE, LLM_FIGURES } from './quantities';

/** One kind of GPU waste: seconds, and dollars (null where a wasting GPU had no rate). */
export interface IWaste {
  s?: number;
  usd?: string | null;
}

export interface IGpuFigures {
  held_s?: number;
  busy_s?: number;
  sm_s?: number;
  energy_j?: number;
  mem_peak_bytes?: number;
  idle_between_s?: number;
  cost_usd?: string;
  idle_cost_usd?: string;
  /** Named waste: `stall`, `underfill` and (session totals) `idle_between`. */
  waste?: { [kind: string]: IWaste };
  /** The waste's dollars summed; null when part of it had no rate. */
  waste_usd?: string | null;
  /** How far busy seconds may be off (the utilization buffer's resolution). */
  uncertainty_s?: number;
}

/** The budget that applied to a cell (`%%cost --budget`, or the session's). */
export interface IBudget {
  usd: string;
  hard: boolean;
  scope: string;
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
  /** ISO 8601 UTC ("2026-11-28T08:10:39.123456Z"), as in the spend log. */
  start?: string;
  end?: string;
  wall_s?: number;
  cost_usd: string;
  unpriced: boolean;
  status?: string;
  budget?: IBudget;
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

const GPU_NUMBERS = [...GPU_FIGURES.map(f => f.key), 'idle_between_s', 'uncertainty_s'];
const LLM_NUMBERS = LLM_FIGURES.map(f => f.key);
const MONEY = ['cost_usd'];

function sanitizeGpu(value: unknown): IGpuFigures | undefined {
  const gpu = copyNumbers<IGpuFigures>(value, GPU_NUMBERS, ['cost_usd', 'idle_cost_usd']);
  if (!gpu || !isObject(value)) {
    return gpu;
  }
  if (value.waste_usd === null || typeof value.waste_usd === 'string') {
    gpu.waste_usd = value.waste_usd === null ? null : text(value.waste_usd);
  }
  if (isObject(value.waste)) {
    const waste: { [kind: string]: IWaste } = {};
    for (const { kind } of GPU_WASTE) {
      const item = value.waste[kind];
      if (isObject(item)) {
        waste[kind] = { s: num(item.s), usd: item.usd === null ? null : text(item.usd) };
      }
    }
    gpu.waste = waste;
  }
  return gpu;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]00:00)$/;

/**
 * A start/end time as ISO 8601 UTC. Notebooks saved before the compact record's times became
 * strings carry epoch seconds: those become the same ISO form.
 */
export function isoTime(value: unknown): string | undefined {
  if (typeof value === 'string' && ISO_UTC.test(value)) {
    return value;
  }
  if (typeof value === 'number' && isFinite(value) && value > 0 && value < 1e11) {
    return new Date(value * 1000).toISOString();
  }
  return undefined;
}

/** Milliseconds since the epoch of an ISO time (for ordering), 0 when there is none. */
export function timeMs(value: string | undefined): number {
  const ms = value ? Date.parse(value) : NaN;
  return isFinite(ms) ? ms : 0;
}

function sanitizeBudget(value: unknown): IBudget | undefined {
  if (!isObject(value)) {
    return undefined;
  }
  const usd = text(value.usd);
  if (usd === undefined) {
    return undefined;
  }
  return { usd, hard: value.hard === true, scope: value.scope === 'session' ? 'session' : 'cell' };
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
  for (const name of ['execution_count', 'wall_s'] as const) {
    const value_ = num(value[name]);
    if (value_ !== undefined) {
      record[name] = value_;
    }
  }
  for (const name of ['start', 'end'] as const) {
    const value_ = isoTime(value[name]);
    if (value_ !== undefined) {
      record[name] = value_;
    }
  }
  const budget = sanitizeBudget(value.budget);
  if (budget) {
    record.budget = budget;
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
