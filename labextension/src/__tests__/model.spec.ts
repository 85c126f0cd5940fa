import { entryKey, SessionModel } from '../model';
import { parseMessage, sanitizeRecord } from '../protocol';
import { compact, totals } from './fixtures';

describe('SessionModel', () => {
  const apply = (model: SessionModel, data: object) => model.apply(parseMessage({ v: 1, ...data })!);

  it('shows a running cell live, then its final record', () => {
    const model = new SessionModel();
    const seen: string[] = [];
    model.changed.connect((_, change) => seen.push(change.kind));
    apply(model, { type: 'hello', session_id: 's1', capabilities: [] });
    apply(model, {
      type: 'tick',
      window_id: 'w1',
      elapsed_s: 1,
      record: compact({ cost_usd: '0.001', end: null }),
      session: totals('0.001', 101)
    });
    expect(model.running).toHaveLength(1);
    expect(model.entryForCell('cell-a')).toMatchObject({ running: true, elapsedS: 1 });
    expect(model.totals!.cost_usd).toBe('0.001');

    apply(model, { type: 'final', window_id: 'w1', record: compact(), session: totals('0.0100', 103) });
    expect(model.running).toHaveLength(0);
    expect(model.entryForCell('cell-a')).toMatchObject({ running: false, elapsedS: 3 });
    expect(model.entries).toHaveLength(1);
    expect(model.points).toEqual([
      { t: 101, usd: 0.001, cost: '0.001' },
      { t: 103, usd: 0.01, cost: '0.0100' }
    ]);
    expect(seen).toEqual(['hello', 'tick', 'final']);
  });

  it('moves a cell run again to the end and keeps one row per cell', () => {
    const model = new SessionModel();
    apply(model, { type: 'final', record: compact() });
    apply(model, { type: 'final', record: compact({ cell_id: 'cell-b', execution_count: 3 }) });
    apply(model, { type: 'final', record: compact({ execution_count: 4 }) });
    expect(model.entries.map(e => e.record.execution_count)).toEqual([3, 4]);
  });

  it('replaces a window row without a cell id by its final record', () => {
    const model = new SessionModel();
    apply(model, { type: 'tick', window_id: 'w9', elapsed_s: 1, record: compact({ cell_id: null }) });
    expect(model.entry('window:w9')).toBeDefined();
    apply(model, { type: 'final', window_id: 'w9', record: compact({ cell_id: null }) });
    expect(model.entries).toHaveLength(1);
    expect(model.entries[0].running).toBe(false);
  });

  it('restores history from a session message after a reload, keeping live rows', () => {
    const model = new SessionModel();
    apply(model, { type: 'tick', window_id: 'w2', elapsed_s: 1, record: compact({ cell_id: 'cell-b' }) });
    apply(model, {
      type: 'session',
      session: totals('0.02', 200),
      cells: [compact(), compact({ cell_id: 'cell-b', cost_usd: '0.5' })]
    });
    expect(model.entries.map(e => e.key)).toEqual(['cell:cell-a', 'cell:cell-b']);
    expect(model.entryForCell('cell-b')!.running).toBe(true);
    expect(model.totals!.cost_usd).toBe('0.02');
  });

  it('starts over when the kernel reports a new session', () => {
    const model = new SessionModel();
    apply(model, { type: 'hello', session_id: 's1', capabilities: [] });
    apply(model, { type: 'final', record: compact(), session: totals('0.01', 5) });
    apply(model, { type: 'hello', session_id: 's2', capabilities: [] });
    expect(model.entries).toHaveLength(0);
    expect(model.totals).toBeNull();
    expect(model.points).toHaveLength(0);
  });

  it('marks running cells interrupted when the kernel is lost', () => {
    const model = new SessionModel();
    apply(model, { type: 'tick', window_id: 'w1', elapsed_s: 2, record: compact() });
    const stopped = model.interruptRunning();
    expect(stopped).toHaveLength(1);
    expect(stopped[0].record).toMatchObject({ interrupted: true, status: 'interrupted' });
    expect(stopped[0].raw).toMatchObject({ cell_id: 'cell-a', interrupted: true });
    expect(model.running).toHaveLength(0);
  });

  it('keys rows by cell id, then window, then execution count', () => {
    expect(entryKey(sanitizeRecord(compact())!)).toBe('cell:cell-a');
    expect(entryKey(sanitizeRecord(compact({ cell_id: null }))!, 'w')).toBe('window:w');
    expect(entryKey(sanitizeRecord(compact({ cell_id: null }))!)).toBe('count:2:2026-11-28T08:10:39.123456Z');
  });

  it('keeps working when a listener throws', () => {
    const model = new SessionModel();
    const errors = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const calls: string[] = [];
    model.changed.connect(() => {
      throw new Error('boom');
    });
    model.changed.connect((_, change) => calls.push(change.kind));
    apply(model, { type: 'final', record: compact() });
    expect(calls).toEqual(['final']);
    expect(errors).toHaveBeenCalled();
    errors.mockRestore();
  });
});
