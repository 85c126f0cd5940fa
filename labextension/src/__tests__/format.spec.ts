import { readFileSync } from 'fs';
import { join } from 'path';

import {
  badgeText,
  budgetShare,
  budgetText,
  formatBytes,
  formatCount,
  formatEnergy,
  formatPercent,
  formatSeconds,
  formatUsd,
  gpuWasteText,
  recordDetails,
  sessionBudget,
  statusText
} from '../format';
import { ICostRecord, ISessionTotals } from '../protocol';

// The one table of formatting cases, shared with the Python formatter.
const CASES = JSON.parse(
  readFileSync(join(__dirname, '..', '..', '..', 'tests', 'cases', 'format.json'), 'utf8')
) as { usd: [string | null, boolean, string][]; percent: [string, string, string][] };

describe('formatUsd', () => {
  it('has cases to run', () => {
    expect(CASES.usd.length).toBeGreaterThan(10);
  });

  it.each(CASES.usd)('%s (unpriced %s) → %s', (amount, unpriced, expected) => {
    expect(formatUsd(amount, unpriced)).toBe(expected);
  });

  it('says "$?" for anything that is not a decimal, and never "+?"', () => {
    expect(formatUsd('NaN')).toBe('$?');
    expect(formatUsd('1e3')).toBe('$?');
    expect(formatUsd('<img src=x>')).toBe('$?');
    expect(formatUsd(undefined)).toBe('$?');
    expect(formatUsd('0.5', true)).not.toContain('?');
  });

  it('keeps digits a float would lose', () => {
    expect(formatUsd('1234567890123.455')).toBe('$1,234,567,890,123.46');
  });
});

describe('formatPercent', () => {
  it.each(CASES.percent)('%s of %s → %s', (part, whole, expected) => {
    expect(formatPercent(part, whole)).toBe(expected);
  });

  it('takes seconds as numbers through the same rule', () => {
    expect(formatPercent(45, 100)).toBe('45 %');
    expect(formatPercent(1, 0)).toBe('–');
    expect(formatPercent(undefined, 3)).toBe('–');
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
    expect(lines).toContain('GPU held 3.0 s, busy 2.9 s, SM 50 %, cost $0.0020');
    expect(lines).toContain('  gpt-4o: 3 calls, 1.20k tokens, $0.0103');
    expect(lines[lines.length - 1]).toBe('flags: estimated');
  });

  it('marks an error cell', () => {
    expect(recordDetails({ ...record, status: 'error' })).toContain('the cell raised an error');
    expect(badgeText({ ...record, status: 'error', gpu: undefined, llm: undefined }, false)).toBe(
      'nbcost $0.0123 · 3.1 s · error'
    );
  });

  it('writes the status bar text', () => {
    const totals: ISessionTotals = {
      cost_usd: '2.5',
      unpriced: false,
      cells: 4,
      gpu: { held_s: 100, busy_s: 45 },
      llm: { calls: 2, input_tokens: 10000, output_tokens: 2345 },
      budget_usd: '10',
      budget_hard: false
    };
    expect(statusText(totals, 0)).toBe(
      'nbcost $2.50 · GPU 45 % busy · 12.3k tok · 25 % of $10.00 budget'
    );
    expect(statusText(totals, 1)).toMatch(/^nbcost ● \$2\.50/);
    expect(statusText(null, 0)).toBe('nbcost –');
    expect(statusText({ ...totals, budget_usd: null }, 0)).not.toContain('budget');
  });
});

describe('budgets', () => {
  it('shows the true share and the overshoot, never capped at 100 %', () => {
    const share = budgetShare('0.049', '0.001')!;
    expect(share).toMatchObject({ percent: '4,900 %', over: '0.048', level: 'over' });
    expect(budgetText(share, '0.001')).toBe('4,900 % of $0.0010 budget, $0.0480 over');
    expect(budgetText(budgetShare('0.006175', '0.001')!, '0.001', 'cell')).toBe(
      '618 % of $0.0010 cell budget, $0.0052 over'
    );
  });

  it('warns from 80 % and is over at 100 %', () => {
    expect(budgetShare('0.5', '1')!.level).toBe('ok');
    expect(budgetShare('0.8', '1')!.level).toBe('near');
    expect(budgetShare('1', '1')).toMatchObject({ level: 'over', over: null, percent: '100 %' });
    expect(budgetText(budgetShare('0.8', '1')!, '1')).toBe('80 % of $1.00 budget');
  });

  it('puts the session budget in the status bar', () => {
    const totals: ISessionTotals = {
      cost_usd: '0.04',
      unpriced: false,
      cells: 1,
      budget_usd: '0.001',
      budget_hard: false
    };
    expect(sessionBudget(totals)!.percent).toBe('4,000 %');
    expect(statusText(totals, 1)).toBe(
      'nbcost ● $0.0400 · 4,000 % of $0.0010 budget, $0.0390 over'
    );
  });

  it("shows a cell's own budget on its badge once it is near or over", () => {
    const cell = { ...record, gpu: undefined, llm: undefined, cost_usd: '0.05' };
    const budget = { usd: '0.001', hard: false, scope: 'cell' };
    expect(badgeText({ ...cell, budget }, false)).toBe(
      'nbcost $0.0500 · 3.1 s · 5,000 % of $0.0010 cell budget, $0.0490 over'
    );
    expect(badgeText({ ...cell, budget: { ...budget, usd: '1' } }, false)).toBe(
      'nbcost $0.0500 · 3.1 s'
    );
  });
});

describe('GPU waste', () => {
  const gpu = {
    held_s: 4,
    busy_s: 1.76,
    sm_s: 1,
    cost_usd: '0.0061',
    waste: {
      stall: { s: 2, usd: '0.0030' },
      underfill: { s: 0.24, usd: '0.0004' }
    },
    waste_usd: '0.0034',
    uncertainty_s: 0.02
  };

  it('leads with the dollars wasted and names the largest waste', () => {
    expect(gpuWasteText(gpu)).toBe(
      'GPU 44 % busy · $0.0034 of $0.0061 wasted, most of it stalled (2.0 s, $0.0030)'
    );
  });

  it('names idle time between cells in the session totals', () => {
    const session = { ...gpu, waste: { ...gpu.waste, idle_between: { s: 30, usd: '0.05' } } };
    expect(gpuWasteText(session)).toContain('most of it idle between cells (30.0 s, $0.0500)');
  });

  it('shows the uncertainty where it is a large part of a short cell', () => {
    expect(gpuWasteText({ ...gpu, held_s: 0.4, busy_s: 0.2, uncertainty_s: 0.05 })).toMatch(
      /^GPU 50 % busy \(± 0\.05 s\)/
    );
  });

  it('says when the waste had no rate, and shows nothing without a GPU', () => {
    expect(gpuWasteText({ ...gpu, waste_usd: null })).toContain('waste unpriced');
    expect(gpuWasteText(undefined)).toBeNull();
    expect(gpuWasteText({ held_s: 0 })).toBeNull();
  });

  it('puts the dollars in the status bar', () => {
    const totals: ISessionTotals = { cost_usd: '0.0061', unpriced: false, cells: 1, gpu };
    expect(statusText(totals, 0)).toBe('nbcost $0.0061 · GPU 44 % busy, $0.0034 wasted');
  });

  it('is in the badge tooltip, and its dollars on the badge', () => {
    expect(recordDetails({ ...record, gpu })).toContain(gpuWasteText(gpu));
    expect(badgeText({ ...record, gpu, llm: undefined }, false)).toBe(
      'nbcost $0.0123 · 3.1 s · GPU 1.8 s busy, $0.0034 wasted'
    );
  });
});
