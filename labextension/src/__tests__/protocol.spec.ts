import { parseMessage, sanitizeRecord } from '../protocol';
import { compact, totals } from './fixtures';

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

describe('times, budgets and GPU waste in the compact record', () => {
  it('keeps ISO 8601 UTC start/end, and turns epoch seconds of older notebooks into the same', () => {
    const record = sanitizeRecord(compact())!;
    expect(record.start).toBe('2026-11-28T08:10:39.123456Z');
    expect(record.end).toBe('2026-11-28T08:10:42.123456Z');
    const old = sanitizeRecord(compact({ start: 1795853439.5, end: 1795853442 }))!;
    expect(old.start).toBe('2026-11-28T08:10:39.500Z');
    expect(old.end).toBe('2026-11-28T08:10:42.000Z');
    const bad = sanitizeRecord(compact({ start: 'yesterday', end: '<b>' }))!;
    expect(bad.start).toBeUndefined();
    expect(bad.end).toBeUndefined();
  });

  it('keeps the budget that applied', () => {
    expect(sanitizeRecord(compact({ budget: { usd: '0.001', hard: true, scope: 'session' } }))!.budget)
      .toEqual({ usd: '0.001', hard: true, scope: 'session' });
    expect(sanitizeRecord(compact({ budget: { hard: true } }))!.budget).toBeUndefined();
  });

  it('keeps the named GPU waste and drops kinds it does not know', () => {
    const gpu = sanitizeRecord(
      compact({
        gpu: {
          held_s: 4,
          busy_s: 2,
          cost_usd: '0.006',
          waste: { stall: { s: 2, usd: '0.003' }, underfill: { s: 1, usd: null }, evil: { s: 1 } },
          waste_usd: null,
          uncertainty_s: 0.02
        }
      })
    )!.gpu!;
    expect(gpu.waste).toEqual({ stall: { s: 2, usd: '0.003' }, underfill: { s: 1, usd: null } });
    expect(gpu.waste_usd).toBeNull();
    expect(gpu.uncertainty_s).toBe(0.02);
  });
});
