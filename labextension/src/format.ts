/**
 * Pure formatters: numbers and decimal-string dollars to short text.
 *
 * Dollars arrive from the kernel as decimal strings ("0.0123"); they are rounded here as strings
 * so a displayed amount is never a float artefact. Everything returned is plain text, meant for
 * `textContent`.
 */

import {
  decimalText,
  divideRounded,
  IDecimal,
  parseDecimal,
  roundUnits,
  subtract,
  unitsText
} from './decimal';
import type { IBudget, ICostRecord, IGpuFigures, ISessionTotals } from './protocol';
import { GPU_WASTE } from './quantities';

/**
 * Dollars, the one rule every view uses (the cases are tests/cases/format.json, shared with the
 * Python formatter): "$0.00" for zero, "<$0.0001" for less than half a hundredth of a cent,
 * four places under a dollar ("$0.0123"), else two with thousands separators ("$1,234.50"),
 * "-$0.0015" below zero; "unpriced" when nothing had a price, "$0.0123 + unpriced" when part of
 * it had none; "$?" for anything that is not a decimal.
 */
export function formatUsd(value: string | null | undefined, unpriced = false): string {
  const amount = value === null || value === undefined ? null : parseDecimal(String(value));
  if (amount === null || amount.units === ZERO) {
    if (unpriced) {
      return 'unpriced';
    }
    if (amount === null) {
      return '$?';
    }
  }
  const text = amountText(amount);
  return unpriced ? `${text} + unpriced` : text;
}

const ZERO = BigInt(0);
const ONE_DOLLAR_AT_4 = BigInt(10000);

function amountText(amount: IDecimal): string {
  if (amount.units === ZERO) {
    return '$0.00';
  }
  const sign = amount.units < ZERO ? '-' : '';
  const atFour = roundUnits(amount, 4);
  if (atFour === ZERO) {
    return `${sign}<$0.0001`;
  }
  if (atFour < ONE_DOLLAR_AT_4) {
    return `${sign}$${unitsText(atFour, 4)}`;
  }
  return `${sign}$${unitsText(roundUnits(amount, 2), 2)}`;
}

/**
 * `part / whole` as a percentage, the one rule (tests/cases/format.json): "–" for a zero whole,
 * "0 %", "<1 %" under half a percent, else rounded half up with separators ("4,000 %").
 * Decimal strings are divided exactly; numbers (seconds) go through the same path.
 */
export function formatPercent(
  part: string | number | null | undefined,
  whole: string | number | null | undefined
): string {
  const p = parseDecimal(part);
  const w = parseDecimal(whole);
  if (!p || !w || w.units === ZERO) {
    return '–';
  }
  if (p.units === ZERO) {
    return '0 %';
  }
  const numerator = p.units * BigInt(100) * BigInt('1' + '0'.repeat(w.scale));
  const denominator = w.units * BigInt('1' + '0'.repeat(p.scale));
  const sign = numerator < ZERO !== denominator < ZERO ? '-' : '';
  const abs = (n: bigint) => (n < ZERO ? -n : n);
  if (BigInt(2) * abs(numerator) < abs(denominator)) {
    return `${sign}<1 %`;
  }
  return `${sign}${unitsText(divideRounded(numerator, denominator), 0)} %`;
}

/** Seconds as "0.4 s", "12.3 s", "4 min 05 s", "2 h 03 min". */
export function formatSeconds(seconds: number | null | undefined): string {
  if (typeof seconds !== 'number' || !isFinite(seconds) || seconds < 0) {
    return '–';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 3600) {
    const minutes = Math.floor(seconds / 60);
    const rest = Math.floor(seconds - minutes * 60);
    return `${minutes} min ${String(rest).padStart(2, '0')} s`;
  }
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds - hours * 3600) / 60);
  return `${hours} h ${String(minutes).padStart(2, '0')} min`;
}

/** Token counts as "950", "12.3k", "4.56M". */
export function formatCount(count: number | null | undefined): string {
  if (typeof count !== 'number' || !isFinite(count)) {
    return '–';
  }
  if (count < 1000) {
    return String(Math.round(count));
  }
  if (count < 1e6) {
    return `${(count / 1e3).toFixed(count < 1e4 ? 2 : 1)}k`;
  }
  return `${(count / 1e6).toFixed(count < 1e7 ? 2 : 1)}M`;
}

/** Joules as "350 J", "12.4 kJ", "1.20 MJ". */
export function formatEnergy(joules: number | null | undefined): string {
  if (typeof joules !== 'number' || !isFinite(joules)) {
    return '–';
  }
  if (joules < 1000) {
    return `${Math.round(joules)} J`;
  }
  if (joules < 1e6) {
    return `${(joules / 1e3).toFixed(1)} kJ`;
  }
  return `${(joules / 1e6).toFixed(2)} MJ`;
}

/** Bytes as "512 MiB", "1.5 GiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (typeof bytes !== 'number' || !isFinite(bytes)) {
    return '–';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A decimal string as a number, for chart geometry only (never for money arithmetic). */
export function decimalToNumber(value: string | null | undefined): number {
  return parseDecimal(value ?? '') ? Number(value) : 0;
}

// ---- budgets and GPU waste ------------------------------------------------------------------

/** Where spending stands against a budget. */
export interface IBudgetShare {
  /** "4,000 %": the true share, never capped. */
  percent: string;
  /** Spent / budget (for the bar's width; not money). */
  fraction: number;
  /** Dollars over the budget ("0.049"), or null while within it. */
  over: string | null;
  level: 'ok' | 'near' | 'over';
}

/** Spent against a budget (decimal strings), or null when either is not a decimal. */
export function budgetShare(spent: string, budget: string): IBudgetShare | null {
  const cost = parseDecimal(spent);
  const limit = parseDecimal(budget);
  if (!cost || !limit) {
    return null;
  }
  const over = subtract(cost, limit);
  const fraction = limit.units > ZERO ? Number(spent) / Number(budget) : Infinity;
  return {
    percent: formatPercent(spent, budget),
    fraction,
    over: over.units > ZERO ? decimalText(over) : null,
    level: over.units >= ZERO ? 'over' : fraction >= 0.8 ? 'near' : 'ok'
  };
}

/** "4,000 % of $0.0010 budget, $0.0390 over" (with `what` before "budget": "cell", "session"). */
export function budgetText(share: IBudgetShare, budget: string, what = ''): string {
  const name = what ? `${what} budget` : 'budget';
  const base = `${share.percent} of ${formatUsd(budget)} ${name}`;
  return share.over ? `${base}, ${formatUsd(share.over)} over` : base;
}

/** The session budget's share, or null without one. */
export function sessionBudget(totals: ISessionTotals | null): IBudgetShare | null {
  if (!totals || !totals.budget_usd) {
    return null;
  }
  return budgetShare(totals.cost_usd, totals.budget_usd);
}

/** A cell's own budget (`%%cost --budget`, or the session's recorded with it), or null. */
export function cellBudget(record: ICostRecord): { share: IBudgetShare; budget: IBudget } | null {
  if (!record.budget) {
    return null;
  }
  const share = budgetShare(record.cost_usd, record.budget.usd);
  return share ? { share, budget: record.budget } : null;
}

/** The largest named GPU waste: its label, seconds and dollars; null when there is none. */
export function largestWaste(
  gpu: IGpuFigures
): { label: string; s: number; usd: string | null | undefined } | null {
  let best: { label: string; s: number; usd: string | null | undefined } | null = null;
  for (const { kind, label } of GPU_WASTE) {
    const item = gpu.waste?.[kind];
    const seconds = item?.s ?? 0;
    if (seconds > 0 && (!best || seconds > best.s)) {
      best = { label, s: seconds, usd: item?.usd };
    }
  }
  return best;
}

/**
 * What the GPU's waste cost, leading with it: "GPU 44 % busy · $0.0034 of $0.0061 wasted, most
 * of it stalled (1.2 s, $0.0010)"; busy time gets its uncertainty where that is a large part of it.
 * Null when no GPU was held.
 */
export function gpuWasteText(gpu: IGpuFigures | undefined): string | null {
  if (!gpu || !((gpu.held_s ?? 0) > 0)) {
    return null;
  }
  let busy = `GPU ${formatPercent(gpu.busy_s ?? 0, gpu.held_s)} busy`;
  const uncertainty = gpu.uncertainty_s ?? 0;
  if (uncertainty > 0 && uncertainty >= 0.05 * (gpu.held_s ?? 0)) {
    busy += ` (± ${uncertainty.toFixed(2)} s)`;
  }
  const parts = [busy];
  const largest = largestWaste(gpu);
  if (gpu.waste_usd !== undefined && (largest || gpu.waste_usd !== null)) {
    const cost = formatUsd(gpu.cost_usd ?? '0');
    const spent =
      gpu.waste_usd === null ? 'waste unpriced' : `${formatUsd(gpu.waste_usd)} of ${cost} wasted`;
    const most = largest
      ? `, most of it ${largest.label} (${formatSeconds(largest.s)}` +
        (largest.usd ? `, ${formatUsd(largest.usd)})` : ')')
      : '';
    parts.push(spent + most);
  }
  return parts.join(' · ');
}

// ---- one-line summaries of records and totals (plain text) ------------------------------------

/** ", $0.0010 wasted" when the GPU's waste cost something, else nothing. */
function wasted(gpu: IGpuFigures): string {
  const amount = parseDecimal(gpu.waste_usd ?? '');
  return amount && amount.units > ZERO ? `, ${formatUsd(gpu.waste_usd)} wasted` : '';
}

function tokenTotal(llm: { input_tokens?: number; output_tokens?: number } | undefined): number {
  return (llm?.input_tokens ?? 0) + (llm?.output_tokens ?? 0);
}

/**
 * The badge beside a cell:
 * "$0.0123 · 3.1 s · GPU 2.9 s busy, $0.0010 wasted · 1.2k tok · 3 calls".
 */
export function badgeText(record: ICostRecord, running: boolean, elapsedS?: number): string {
  const parts: string[] = [];
  if (record.label) {
    parts.push(record.label);
  }
  parts.push(formatUsd(record.cost_usd, record.unpriced));
  parts.push(formatSeconds(running ? elapsedS ?? record.wall_s : record.wall_s));
  if (record.gpu && (record.gpu.held_s ?? 0) > 0) {
    parts.push(`GPU ${formatSeconds(record.gpu.busy_s ?? 0)} busy` + wasted(record.gpu));
  }
  if (record.llm && (record.llm.calls ?? 0) > 0) {
    const calls = record.llm.calls ?? 0;
    parts.push(`${formatCount(tokenTotal(record.llm))} tok`);
    parts.push(`${calls} call${calls === 1 ? '' : 's'}`);
  }
  const budget = cellBudget(record);
  if (budget && budget.share.level !== 'ok') {
    parts.push(budgetText(budget.share, budget.budget.usd, budget.budget.scope));
  }
  const prefix = running ? 'nbcost ● ' : record.interrupted ? 'nbcost ✕ ' : 'nbcost ';
  const suffix = record.status === 'error' ? ' · error' : record.interrupted ? ' · interrupted' : '';
  return prefix + parts.join(' · ') + suffix;
}

/** Detail lines for a tooltip or the panel: one fact per line. */
export function recordDetails(record: ICostRecord): string[] {
  const lines = [`cost ${formatUsd(record.cost_usd, record.unpriced)}`];
  if (record.label) {
    lines.unshift(record.label);
  }
  if (record.status === 'error') {
    lines.push('the cell raised an error');
  }
  lines.push(`wall ${formatSeconds(record.wall_s)}`);
  const budget = cellBudget(record);
  if (budget) {
    const hard = budget.budget.hard ? ' (hard)' : '';
    lines.push(budgetText(budget.share, budget.budget.usd, budget.budget.scope) + hard);
  }
  const gpu = record.gpu;
  const waste = gpuWasteText(gpu);
  if (gpu && waste) {
    lines.push(waste);
    lines.push(
      `GPU held ${formatSeconds(gpu.held_s)}, busy ${formatSeconds(gpu.busy_s)}, ` +
        `SM ${formatPercent(gpu.sm_s ?? 0, gpu.held_s)}, cost ${formatUsd(gpu.cost_usd ?? '0')}`
    );
    lines.push(
      `GPU energy ${formatEnergy(gpu.energy_j)}, peak memory ${formatBytes(gpu.mem_peak_bytes)}`
    );
  }
  const llm = record.llm;
  if (llm && (llm.calls ?? 0) > 0) {
    lines.push(
      `LLM ${llm.calls} calls, ${formatCount(llm.input_tokens)} in / ` +
        `${formatCount(llm.output_tokens)} out tokens, cost ${formatUsd(llm.cost_usd)}`
    );
    for (const [model, counts] of Object.entries(llm.by_model ?? {})) {
      lines.push(
        `  ${model}: ${counts.calls ?? 0} calls, ${formatCount(tokenTotal(counts))} tokens, ` +
          formatUsd(counts.cost_usd)
      );
    }
  }
  if (record.flags.length) {
    lines.push(`flags: ${record.flags.join(', ')}`);
  }
  return lines;
}

/**
 * The status bar: "nbcost $0.0123 · GPU 45 % busy · 12.3k tok", "●" while a cell runs, and the
 * session budget's true share once one is set ("4,000 % of $0.0010 budget, $0.0390 over").
 */
export function statusText(totals: ISessionTotals | null, runningCells: number): string {
  const mark = runningCells > 0 ? '● ' : '';
  if (!totals) {
    return `nbcost ${mark}–`;
  }
  const parts = [formatUsd(totals.cost_usd, totals.unpriced)];
  if (totals.gpu && (totals.gpu.held_s ?? 0) > 0) {
    const busy = formatPercent(totals.gpu.busy_s ?? 0, totals.gpu.held_s);
    parts.push(`GPU ${busy} busy` + wasted(totals.gpu));
  }
  if (totals.llm && (totals.llm.calls ?? 0) > 0) {
    parts.push(`${formatCount(tokenTotal(totals.llm))} tok`);
  }
  const budget = sessionBudget(totals);
  if (budget && totals.budget_usd) {
    parts.push(budgetText(budget, totals.budget_usd));
  }
  return `nbcost ${mark}${parts.join(' · ')}`;
}
