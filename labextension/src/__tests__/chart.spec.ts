import { chartBands, chartCoordinates, chartTop, clockTime, savedPoints } from '../chart';

describe('chartCoordinates', () => {
  it('draws a step line scaled to the box', () => {
    const points = [
      { t: 0, usd: 0 },
      { t: 5, usd: 1 },
      { t: 10, usd: 2 }
    ];
    expect(chartCoordinates(points, 100, 50)).toBe(
      '0.0,50.0 50.0,50.0 50.0,25.0 100.0,25.0 100.0,0.0'
    );
  });

  it('handles no points, one point and a flat zero line', () => {
    expect(chartCoordinates([], 100, 50)).toBe('');
    expect(chartCoordinates([{ t: 3, usd: 1 }], 100, 50)).toBe('100.0,0.0');
    expect(chartCoordinates([{ t: 0, usd: 0 }, { t: 1, usd: 0 }], 10, 10)).toBe(
      '0.0,10.0 10.0,10.0 10.0,10.0'
    );
  });
});

describe('chart labels and hover', () => {
  const points = [
    { t: 1000, usd: 0.01, cost: '0.0100' },
    { t: 1010, usd: 0.05, cost: '0.0500' },
    { t: 1020, usd: 0.02, cost: '0.0200' }
  ];

  it('labels the y axis with the highest total', () => {
    expect(chartTop(points)).toBe('$0.0500');
    expect(chartTop([])).toBe('$0.00');
  });

  it('gives each point a hover band with its time and total', () => {
    const bands = chartBands(points, 100);
    expect(bands.map(b => [b.x, b.width])).toEqual([
      [0, 25],
      [25, 50],
      [75, 25]
    ]);
    expect(bands[1].text).toBe(`${clockTime(1010)} · $0.0500`);
  });

  it('sums saved cells over time, exactly', () => {
    const saved = savedPoints([
      { end: '2026-11-28T08:12:00Z', cost_usd: '0.2' },
      { end: '2026-11-28T08:11:00Z', cost_usd: '0.1' },
      { cost_usd: '5' }
    ]);
    expect(saved.map(p => p.cost)).toEqual(['0.1', '0.3']);
    expect(saved[1].t - saved[0].t).toBe(60);
  });
});
