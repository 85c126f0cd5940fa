import { entryKey, parseMessage, sanitizeRecord, SessionModel } from '../model';

const compact = (extra: object = {}) => ({
  v: 1,
  session_id: 's1',
  execution_count: 2,
  cell_id: 'cell-a',
  label: null,
  start: 100,
  end: 103,
  wall_s: 3,
  cost_usd: '0.0100',
  unpriced: false,
  status: 'ok',
  gpu: { held_s: 3, busy_s: 2, sm_s: 1, energy_j: 500, mem_peak_bytes: 1024, cost_usd: '0.004' },
  llm: {
    calls: 1,
    input_tokens: 100,
    cache_read_tokens: 0,
    cache_write_tokens: 0,
    output_tokens: 20,
    reasoning_tokens: 0,
    cost_usd: '0.006',
    by_model: { 'gpt-4o': { calls: 1, input_tokens: 100, output_tokens: 20, cost_usd: '0.006' } }
  },
  flags: [],
  ...extra
});

const totals = (cost: string, at: number) => ({
  session_id: 's1',
  cost_usd: cost,
  unpriced: false,
  cells: 1,
  at,
  budget_usd: '1.00',
  budget_hard: false
});

describe('sanitizeRecord', () => {
  it('keeps the compact record shape', () => {
    const record = sanitizeRecord(compact());
    expect(record).toMatchObject({
      cell_id: 'cell-a',
      cost_usd: '0.0100',
      wall_s: 3,
      gpu: { busy_s: 2, cost_usd: '0.004' },
      llm: { calls: 1, by_model: { 'gpt-4o': { output_tokens: 20 } } }
    });
    expect(record).not.toHaveProperty('label');
  });

  it('drops unknown fields and wrong types from untrusted metadata', () => {
    const record = sanitizeRecord({
      cost_usd: { toString: 'x' },
      wall_s: '3',
      label: '<img src=x onerror=alert(1)>',
      gpu: { busy_s: 'lots', script: 'alert(1)' },
      flags: ['a', 7, { b: 1 }],
      extra: 'ignored',
      interrupted: 'yes'
    })!;
    expect(record.cost_usd).toBe('');
    expect(record.wall_s).toBeUndefined();
    expect(record.label).toBe('<img src=x onerror=alert(1)>');
    expect(record.gpu).toEqual({});
    expect(record.flags).toEqual(['a', '7']);
    expect(record).not.toHaveProperty('extra');
    expect(record.interrupted).toBeUndefined();
  });

  it('caps long strings', () => {
    expect(sanitizeRecord({ label: 'x'.repeat(10000) })!.label).toHaveLength(500);
  });

  it('is null for non-objects', () => {
    expect(sanitizeRecord('x')).toBeNull();
    expect(sanitizeRecord([compact()])).toBeNull();
    expect(sanitizeRecord(null)).toBeNull();
  });
});

describe('parseMessage', () => {
  it('accepts the four kernel messages of version 1', () => {
    expect(parseMessage({ v: 1, type: 'hello', session_id: 's1', capabilities: ['tick'] })).toEqual({
      type: 'hello',
      v: 1,
      session_id: 's1',
      capabilities: ['tick']
    });
    const tick = parseMessage({ v: 1, type: 'tick', window_id: 'w1', elapsed_s: 1.5, record: compact() });
    expect(tick).toMatchObject({ type: 'tick', window_id: 'w1', elapsed_s: 1.5 });
    expect(parseMessage({ v: 1, type: 'final', record: compact() })).toMatchObject({ type: 'final' });
    expect(
      parseMessage({ v: 1, type: 'session', session: totals('0.1', 1), cells: [compact(), 'junk'] })
    ).toMatchObject({ type: 'session', cells: [{ cell_id: 'cell-a' }] });
  });

  it('keeps the kernel record as sent, other meters included, for cell metadata', () => {
    const sent = compact({ penny: { seconds: 3, cost_usd: '0.03' } });
    const final = parseMessage({ v: 1, type: 'final', record: sent });
    expect(final).toMatchObject({ raw: sent });
    expect((final as { record: object }).record).not.toHaveProperty('penny');
  });

  it('ignores other versions, unknown types and incomplete messages', () => {
    expect(parseMessage({ v: 2, type: 'hello' })).toBeNull();
    expect(parseMessage({ type: 'hello' })).toBeNull();
    expect(parseMessage({ v: 1, type: 'reattach' })).toBeNull();
    expect(parseMessage({ v: 1, type: 'tick', record: compact() })).toBeNull();
    expect(parseMessage({ v: 1, type: 'final' })).toBeNull();
    expect(parseMessage('tick')).toBeNull();
  });
});

describe('SessionModel', () => {
  const apply = (model: SessionModel, data: object) => model.apply(parseMessage({ v: 1, ...data })!);

  it('shows a running cell live, then its final record', () => {
    const model = new SessionModel();
    const seen: string[] = [];
    model.subscribe(kind => seen.push(kind));
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
      { t: 101, usd: 0.001 },
      { t: 103, usd: 0.01 }
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
    expect(entryKey(sanitizeRecord(compact({ cell_id: null }))!)).toBe('count:2:100');
  });

  it('keeps working when a listener throws', () => {
    const model = new SessionModel();
    const errors = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const calls: string[] = [];
    model.subscribe(() => {
      throw new Error('boom');
    });
    model.subscribe(kind => calls.push(kind));
    apply(model, { type: 'final', record: compact() });
    expect(calls).toEqual(['final']);
    expect(errors).toHaveBeenCalled();
    errors.mockRestore();
  });
});
