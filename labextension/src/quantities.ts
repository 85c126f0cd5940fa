/**
 * The figures this extension reads and names, mirroring `src/nbcost/quantities.json` (the one
 * list of figure names; a jest test keeps the two equal).
 */

export interface IFigure {
  key: string;
  label: string;
  unit: string;
}

/** GPU figures of the compact record (`cell.metadata.nbcost.gpu`). */
export const GPU_FIGURES: IFigure[] = [
  { key: 'held_s', label: 'held', unit: 's' },
  { key: 'busy_s', label: 'busy', unit: 's' },
  { key: 'sm_s', label: 'SM-weighted', unit: 's' },
  { key: 'energy_j', label: 'energy', unit: 'J' },
  { key: 'mem_peak_bytes', label: 'peak memory', unit: 'bytes' }
];

/** The named GPU waste (`gpu.waste.<kind>`), each the figure `<kind>_s` of the list. */
export const GPU_WASTE: (IFigure & { kind: string })[] = [
  { kind: 'idle_between', key: 'idle_between_s', label: 'idle between cells', unit: 's' },
  { kind: 'stall', key: 'stall_s', label: 'stalled', unit: 's' },
  { kind: 'underfill', key: 'underfill_s', label: 'underfilled', unit: 's' }
];

/** LLM figures of the compact record (`llm` and each `llm.by_model[model]`). */
export const LLM_FIGURES: IFigure[] = [
  { key: 'calls', label: 'calls', unit: 'count' },
  { key: 'input_tokens', label: 'input', unit: 'tokens' },
  { key: 'cache_read_tokens', label: 'cached', unit: 'tokens' },
  { key: 'cache_write_tokens', label: 'cache write', unit: 'tokens' },
  { key: 'output_tokens', label: 'output', unit: 'tokens' },
  { key: 'reasoning_tokens', label: 'reasoning', unit: 'tokens' }
];
