import { chartCoordinates } from '../chart';

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
