/**
 * Run sizes: the CI-sized run inside `npm test` by default; `npm run
 * reliability` sets VECTORSEAL_RELIABILITY=full. VECTORSEAL_KILL_POINTS and
 * VECTORSEAL_RELIABILITY_SEED override either.
 */
export interface Sizes {
  full: boolean;
  killPoints: number;
  lanes: number;
  seed: number;
  /** Random positions per file for the single-bit flips. */
  bitFlipsPerFile: number;
  /** fast-check runs per property. */
  hostileRuns: number;
  /** Power cuts at random boundaries, beside those at every boundary (full) or every `powerCutStride`-th one (CI). */
  powerCutsRandom: number;
  powerCutStride: number;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} expected a non-negative integer, got "${v}"`);
  return n;
}

export function sizes(): Sizes {
  const full = process.env['VECTORSEAL_RELIABILITY'] === 'full';
  return {
    full,
    killPoints: envInt('VECTORSEAL_KILL_POINTS') ?? (full ? 1000 : 200),
    lanes: envInt('VECTORSEAL_RELIABILITY_LANES') ?? 4,
    seed: envInt('VECTORSEAL_RELIABILITY_SEED') ?? Math.floor(Math.random() * 2 ** 31),
    bitFlipsPerFile: envInt('VECTORSEAL_BIT_FLIPS') ?? (full ? 24 : 4),
    hostileRuns: envInt('VECTORSEAL_HOSTILE_RUNS') ?? (full ? 1000 : 100),
    powerCutsRandom: envInt('VECTORSEAL_POWER_CUTS_RANDOM') ?? (full ? 400 : 10),
    powerCutStride: envInt('VECTORSEAL_POWER_CUT_STRIDE') ?? 20,
  };
}
