import { SessionModel } from '../model';
import { parseMessage, sanitizeRecord } from '../protocol';
import { isFree, mergeSaved, orderRows } from '../rows';
import { compact } from './fixtures';

const saved = (extra: object) => sanitizeRecord(compact(extra))!;

describe('panel rows', () => {
  it('rebuilds the rows from saved records when the session has none (reload, restart)', () => {
    const rows = mergeSaved(
      [],
      [
        saved({ cell_id: 'b', end: '2026-11-28T08:12:00Z', cost_usd: '0.02' }),
        saved({ cell_id: 'a', end: '2026-11-28T08:11:00Z', cost_usd: '0.01' })
      ]
    );
    expect(rows.map(row => [row.key, row.saved])).toEqual([
      ['cell:a', true],
      ['cell:b', true]
    ]);
  });

  it("prefers the live session's row to a cell's saved record", () => {
    const model = new SessionModel();
    model.apply(parseMessage({ v: 1, type: 'final', record: compact({ cost_usd: '0.5' }) })!);
    const rows = mergeSaved(model.entries, [saved({}), saved({ cell_id: 'old' })]);
    expect(rows.map(row => row.key)).toEqual(['cell:old', 'cell:cell-a']);
    expect(rows[1].record.cost_usd).toBe('0.5');
    expect(rows[1].saved).toBeUndefined();
  });

  it('orders newest first or costliest first, exactly', () => {
    const rows = mergeSaved(
      [],
      [
        saved({ cell_id: 'a', end: '2026-11-28T08:11:00Z', cost_usd: '0.0100000001' }),
        saved({ cell_id: 'b', end: '2026-11-28T08:12:00Z', cost_usd: '0.01' }),
        saved({ cell_id: 'c', end: '2026-11-28T08:13:00Z', cost_usd: '2' })
      ]
    );
    expect(orderRows(rows, 'time').map(r => r.key)).toEqual(['cell:c', 'cell:b', 'cell:a']);
    expect(orderRows(rows, 'cost').map(r => r.key)).toEqual(['cell:c', 'cell:a', 'cell:b']);
  });

  it('calls a priced $0 cell free, never an unpriced or running one', () => {
    const [free, unpriced] = mergeSaved(
      [],
      [saved({ cell_id: 'a', cost_usd: '0' }), saved({ cell_id: 'b', cost_usd: '0', unpriced: true })]
    );
    expect(isFree(free)).toBe(true);
    expect(isFree(unpriced)).toBe(false);
    expect(isFree({ ...free, running: true })).toBe(false);
  });
});
