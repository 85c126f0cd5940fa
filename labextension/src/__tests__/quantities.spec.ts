import { readFileSync } from 'fs';
import { join } from 'path';

import { GPU_FIGURES, GPU_WASTE, LLM_FIGURES } from '../quantities';

// The one list of figure names, shared with the Python side.
const LIST = JSON.parse(
  readFileSync(join(__dirname, '..', '..', '..', 'src', 'nbcost', 'quantities.json'), 'utf8')
) as { [meter: string]: { key: string; label: string; unit: string; compact: boolean }[] };

const strip = ({ key, label, unit }: { key: string; label: string; unit: string }) => ({
  key,
  label,
  unit
});

describe('the figures the extension reads', () => {
  it.each([
    ['gpu', GPU_FIGURES],
    ['llm', LLM_FIGURES]
  ])("are %s's compact figures of quantities.json, in its order", (meter, figures) => {
    const compact = LIST[meter as string].filter(q => q.compact).map(strip);
    expect(figures.map(strip)).toEqual(compact);
  });

  it('name each kind of GPU waste as quantities.json does', () => {
    for (const waste of GPU_WASTE) {
      expect(waste.key).toBe(`${waste.kind}_s`);
      expect(LIST.gpu.map(strip)).toContainEqual(strip(waste));
    }
  });
});
