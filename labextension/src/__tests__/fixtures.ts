/** Records and totals as the kernel sends them (compact shape, version 1). */

export const compact = (extra: object = {}) => ({
  v: 1,
  session_id: 's1',
  execution_count: 2,
  cell_id: 'cell-a',
  label: null,
  start: '2026-11-28T08:10:39.123456Z',
  end: '2026-11-28T08:10:42.123456Z',
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

export const totals = (cost: string, at: number) => ({
  session_id: 's1',
  cost_usd: cost,
  unpriced: false,
  cells: 1,
  at,
  budget_usd: '1.00',
  budget_hard: false
});
