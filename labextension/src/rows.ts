/**
 * The panel's table rows: the live session's cells plus those saved in the notebook, sorted and
 * filtered as the user asks. Pure, so it is unit-tested in plain jest.
 */

import { compare, parseDecimal } from './decimal';
import { entryKey, ICellEntry } from './model';
import { ICostRecord, timeMs } from './protocol';

/** A row; `saved` when it comes from the notebook's metadata rather than the kernel. */
export interface IRow extends ICellEntry {
  saved?: boolean;
}

export type RowOrder = 'time' | 'cost';

/**
 * The session's rows, and before them the notebook's saved records of cells the session has no
 * row for (a reload, a restarted kernel, a notebook opened later), oldest first.
 */
export function mergeSaved(entries: ICellEntry[], saved: ICostRecord[]): IRow[] {
  const live = new Set(entries.map(entry => entry.key));
  const older: IRow[] = saved
    .map(record => ({ key: entryKey(record), record, running: false, saved: true }))
    .filter(row => !live.has(row.key))
    .sort((a, b) => timeMs(a.record.end) - timeMs(b.record.end));
  return [...older, ...entries];
}

/** Rows newest first, or costliest first (running rows stay on top either way). */
export function orderRows(rows: IRow[], order: RowOrder): IRow[] {
  const newest = [...rows].reverse();
  if (order === 'time') {
    return newest;
  }
  const cost = (row: IRow) => parseDecimal(row.record.cost_usd) ?? parseDecimal('0')!;
  return newest.sort(
    (a, b) => Number(b.running) - Number(a.running) || compare(cost(b), cost(a))
  );
}

/** Whether a row cost nothing (and nothing went unpriced). */
export function isFree(row: IRow): boolean {
  const cost = parseDecimal(row.record.cost_usd);
  return !row.running && !row.record.unpriced && cost !== null && cost.units === BigInt(0);
}
