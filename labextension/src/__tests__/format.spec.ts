import {
  badgeText,
  budgetFraction,
  formatBytes,
  formatCount,
  formatEnergy,
  formatPercent,
  formatSeconds,
  formatUsd,
  recordDetails,
  roundDecimal,
  statusText
} from '../format';
import { ICostRecord, ISessionTotals } from '../protocol';

describe('roundDecimal', () => {
  it.each([
    ['0.01234', 4, '0.0123'],
    ['0.00005', 4, '0.0001'],
    ['0.00004999', 4, '0.0000'],
    ['9.999', 2, '10.00'],
    ['99.995', 2, '100.00'],
    ['12', 2, '12.00'],
    ['0.1', 0, '0'],
    ['0.5', 0, '1'],
    ['-0.00001', 4, '0.0000'],
    ['-1.005', 2, '-1.01']
  ])('rounds %s to %i places as %s', (value, places, expected) => {
    expect(roundDecimal(value, places)).toBe(expected);
  });

  it('refuses anything that is not a decimal', () => {
    expect(roundDecimal('1e3', 2)).toBeNull();
    expect(roundDecimal('<img src=x>', 2)).toBeNull();
    expect(roundDecimal('', 2)).toBeNull();
  });

  it('keeps digits a float would lose', () => {
    // 0.1 + 0.2 style artefacts never appear: the string is rounded digit by digit.
    expect(roundDecimal('1234567890123.455', 2)).toBe('1234567890123.46');
  });
});

describe('formatUsd', () => {
  it.each([
    ['0', '$0.0000'],
    ['0.0123456', '$0.0123'],
    ['0.00000001', '<$0.0001'],
    ['1.234', '$1.23'],
    ['1234.5', '$1,234.50'],
    ['0012.5', '$12.50']
  ])('%s → %s', (value, expected) => {
    expect(formatUsd(value)).toBe(expected);
  });

  it('marks unpriced and malformed amounts instead of showing zero', () => {
    expect(formatUsd('0.5', true)).toBe('$0.5000+?');
    expect(formatUsd(null, true)).toBe('unpriced');
    expect(formatUsd('NaN')).toBe('$?');
    expect(formatUsd(undefined)).toBe('$?');
  });
});

describe('number formatters', () => {
  it('formats seconds', () => {
    expect(formatSeconds(0.42)).toBe('0.4 s');
    expect(formatSeconds(245)).toBe('4 min 05 s');
    expect(formatSeconds(7380)).toBe('2 h 03 min');
    expect(formatSeconds(undefined)).toBe('–');
    expect(formatSeconds(-1)).toBe('–');
  });

  it('formats counts, energy, bytes and percentages', () => {
    expect(formatCount(950)).toBe('950');
    expect(formatCount(1234)).toBe('1.23k');
    expect(formatCount(12345)).toBe('12.3k');
    expect(formatCount(4560000)).toBe('4.56M');
    expect(formatEnergy(350.4)).toBe('350 J');
    expect(formatEnergy(12400)).toBe('12.4 kJ');
    expect(formatBytes(512 * 1024 * 1024)).toBe('512 MiB');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.5 GiB');
    expect(formatPercent(45, 100)).toBe('45 %');
    expect(formatPercent(1, 0)).toBe('–');
  });
});

const record: ICostRecord = {
  v: 1,
  cell_id: 'abc',
  execution_count: 3,
  wall_s: 3.14,
  cost_usd: '0.0123',
  unpriced: false,
  status: 'ok',
  gpu: { held_s: 3, busy_s: 2.9, sm_s: 1.5, energy_j: 900, mem_peak_bytes: 2 ** 30, cost_usd: '0.002' },
  llm: {
    calls: 3,
    input_tokens: 1000,
    output_tokens: 200,
    cost_usd: '0.0103',
    by_model: { 'gpt-4o': { calls: 3, input_tokens: 1000, output_tokens: 200, cost_usd: '0.0103' } }
  },
  flags: ['estimated']
};

describe('summaries', () => {
  it('writes a badge with cost, time, GPU and tokens', () => {
    expect(badgeText(record, false)).toBe(
      'nbcost $0.0123 · 3.1 s · GPU 2.9 s busy · 1.20k tok · 3 calls'
    );
    expect(badgeText(record, true, 1.5)).toBe(
      'nbcost ● $0.0123 · 1.5 s · GPU 2.9 s busy · 1.20k tok · 3 calls'
    );
    expect(badgeText({ ...record, interrupted: true, gpu: undefined, llm: undefined }, false)).toBe(
      'nbcost ✕ $0.0123 · 3.1 s · interrupted'
    );
  });

  it('shows a hostile label as the same text', () => {
    const label = '<img src=x onerror=alert(1)>';
    expect(badgeText({ ...record, label, llm: undefined, gpu: undefined }, false)).toBe(
      `nbcost ${label} · $0.0123 · 3.1 s`
    );
  });

  it('lists details line by line', () => {
    const lines = recordDetails(record);
    expect(lines[0]).toBe('cost $0.0123');
    expect(lines).toContain('GPU held 3.0 s, busy 2.9 s (97 %), SM 50 %');
    expect(lines).toContain('  gpt-4o: 3 calls, 1.20k tokens, $0.0103');
    expect(lines[lines.length - 1]).toBe('flags: estimated');
  });

  it('writes the status bar text and the budget fraction', () => {
    const totals: ISessionTotals = {
      cost_usd: '2.5',
      unpriced: false,
      cells: 4,
      gpu: { held_s: 100, busy_s: 45 },
      llm: { calls: 2, input_tokens: 10000, output_tokens: 2345 },
      budget_usd: '10',
      budget_hard: false
    };
    expect(statusText(totals, 0)).toBe('nbcost $2.50 · GPU 45 % busy · 12.3k tok · of $10.00 budget');
    expect(statusText(totals, 1)).toMatch(/^nbcost ● \$2\.50/);
    expect(statusText(null, 0)).toBe('nbcost –');
    expect(budgetFraction(totals)).toBeCloseTo(0.25);
    expect(budgetFraction({ ...totals, cost_usd: '20' })).toBe(1);
    expect(budgetFraction({ ...totals, budget_usd: null })).toBeNull();
  });
});
