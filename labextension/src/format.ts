/**
 * Pure formatters: numbers and decimal-string dollars to short text.
 *
 * Dollars arrive from the kernel as decimal strings ("0.0123"); they are rounded here as strings
 * so a displayed amount is never a float artefact. Everything returned is plain text, meant for
 * `textContent`.
 */

import type { ICostRecord, ISessionTotals } from './protocol';

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/** Round a non-negative decimal string to `places` digits (half up), as a string. */
export function roundDecimal(value: string, places: number): string | null {
  const match = DECIMAL.exec(value.trim());
  if (!match) {
    return null;
  }
  const [, sign, whole, frac = ''] = match;
  const padded = (frac + '0'.repeat(places + 1)).slice(0, places + 1);
  let digits = (whole + padded.slice(0, places)).replace(/^0+(?=\d)/, '');
  if (Number(padded[places]) >= 5) {
    digits = addOne(digits);
  }
  digits = digits.padStart(places + 1, '0');
  const intPart = digits.slice(0, digits.length - places);
  const fracPart = places > 0 ? '.' + digits.slice(digits.length - places) : '';
  const isZero = /^[0.]*$/.test(intPart + fracPart);
  return (sign && !isZero ? '-' : '') + intPart + fracPart;
}

function addOne(digits: string): string {
  const out = digits.split('');
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] === '9') {
      out[i] = '0';
    } else {
      out[i] = String(Number(out[i]) + 1);
      return out.join('');
    }
  }
  return '1' + out.join('');
}

/** Whether a decimal string is exactly zero. */
export function isZeroDecimal(value: string): boolean {
  return DECIMAL.test(value.trim()) && /^-?[0.]*$/.test(value.trim());
}

/**
 * Dollars for a badge or status bar: "$0.0123" under a dollar, "$12.35" above,
 * "<$0.0001" for tiny non-zero amounts, "$?" for anything that is not a decimal.
 */
export function formatUsd(value: string | null | undefined, unpriced = false): string {
  const suffix = unpriced ? '+?' : '';
  if (value === null || value === undefined || !DECIMAL.test(String(value).trim())) {
    return unpriced ? 'unpriced' : '$?';
  }
  const text = String(value).trim();
  const whole = DECIMAL.exec(text)![2];
  if (whole !== '0' && whole.replace(/^0+/, '') !== '') {
    return '$' + groupThousands(roundDecimal(text, 2)!) + suffix;
  }
  const rounded = roundDecimal(text, 4)!;
  if (isZeroDecimal(rounded) && !isZeroDecimal(text)) {
    return '<$0.0001' + suffix;
  }
  return '$' + rounded + suffix;
}

function groupThousands(value: string): string {
  const [intPart, fracPart] = value.split('.');
  const grouped = intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return fracPart === undefined ? grouped : `${grouped}.${fracPart}`;
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

/** A fraction `part / whole` as "45 %", or "–" when the whole is zero. */
export function formatPercent(part: number | undefined, whole: number | undefined): string {
  if (!part || !whole || !isFinite(part / whole) || whole <= 0) {
    return '–';
  }
  return `${Math.round((100 * part) / whole)} %`;
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
  if (value === null || value === undefined || !DECIMAL.test(String(value).trim())) {
    return 0;
  }
  return Number(value);
}

// ---- one-line summaries of records and totals (plain text) ------------------------------------

function tokenTotal(llm: { input_tokens?: number; output_tokens?: number } | undefined): number {
  return (llm?.input_tokens ?? 0) + (llm?.output_tokens ?? 0);
}

/** The badge beside a cell: "$0.0123 · 3.1 s · GPU 2.9 s · 1.2k tok · 3 calls". */
export function badgeText(record: ICostRecord, running: boolean, elapsedS?: number): string {
  const parts: string[] = [];
  if (record.label) {
    parts.push(record.label);
  }
  parts.push(formatUsd(record.cost_usd, record.unpriced));
  parts.push(formatSeconds(running ? elapsedS ?? record.wall_s : record.wall_s));
  if (record.gpu && (record.gpu.held_s ?? 0) > 0) {
    parts.push(`GPU ${formatSeconds(record.gpu.busy_s ?? 0)} busy`);
  }
  if (record.llm && (record.llm.calls ?? 0) > 0) {
    const calls = record.llm.calls ?? 0;
    parts.push(`${formatCount(tokenTotal(record.llm))} tok`);
    parts.push(`${calls} call${calls === 1 ? '' : 's'}`);
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
  lines.push(`wall ${formatSeconds(record.wall_s)}`);
  const gpu = record.gpu;
  if (gpu) {
    lines.push(
      `GPU held ${formatSeconds(gpu.held_s)}, busy ${formatSeconds(gpu.busy_s)} ` +
        `(${formatPercent(gpu.busy_s, gpu.held_s)}), SM ${formatPercent(gpu.sm_s, gpu.held_s)}`
    );
    lines.push(
      `GPU energy ${formatEnergy(gpu.energy_j)}, peak memory ${formatBytes(gpu.mem_peak_bytes)}, ` +
        `cost ${formatUsd(gpu.cost_usd)}`
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

/** The status bar: "nbcost $0.0123 · GPU 45 % busy · 12.3k tok", "●" while a cell runs. */
export function statusText(totals: ISessionTotals | null, runningCells: number): string {
  const mark = runningCells > 0 ? '● ' : '';
  if (!totals) {
    return `nbcost ${mark}–`;
  }
  const parts = [formatUsd(totals.cost_usd, totals.unpriced)];
  if (totals.gpu && (totals.gpu.held_s ?? 0) > 0) {
    parts.push(`GPU ${formatPercent(totals.gpu.busy_s, totals.gpu.held_s)} busy`);
  }
  if (totals.llm && (totals.llm.calls ?? 0) > 0) {
    parts.push(`${formatCount(tokenTotal(totals.llm))} tok`);
  }
  if (totals.budget_usd) {
    parts.push(`of ${formatUsd(totals.budget_usd)} budget`);
  }
  return `nbcost ${mark}${parts.join(' · ')}`;
}

/** How much of the budget is spent, 0..1 (capped), or null without a budget. */
export function budgetFraction(totals: ISessionTotals | null): number | null {
  if (!totals || !totals.budget_usd) {
    return null;
  }
  const budget = decimalToNumber(totals.budget_usd);
  if (budget <= 0) {
    return 1;
  }
  return Math.min(1, decimalToNumber(totals.cost_usd) / budget);
}
