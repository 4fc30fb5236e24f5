import type { EqualityCondition } from './filter-plan.js';
import type { Layer, LayerHits, Space } from './layer.js';
import type { Metadata } from './metadata.js';

/**
 * Filtered search of one layer, planned per query. The metadata index (or,
 * for a filter it cannot answer, a small sample of the layer) estimates how
 * many records match, and a cost model picks the cheaper of:
 *  - an exact scan of the matching records (exact-scan.ts), costing about
 *    one row distance per match and losing no neighbour;
 *  - HNSW with the filter applied during traversal, its ef raised as the
 *    filter gets more selective (a filtered walk must reach past refused
 *    nodes to find k accepted ones), costing about WALK_COST row distances
 *    per unit of ef / selectivity.
 * When the index alone decides the filter (one equality or `$in`
 * condition, no `where`), neither path calls the filter: the scan visits the
 * postings, the walk tests a bitmap of them.
 */
export type Accept = (m: Metadata | undefined, id: string) => boolean;

/** How a query's filter meets the metadata index. */
export interface FilterPlan {
  /** Equality conditions every match meets (filter-plan.ts). */
  conditions: readonly EqualityCondition[];
  /** Whether the postings of the one condition are exactly the matches (so the filter need not run). */
  indexDecides: boolean;
}

/**
 * Row distances one filtered graph walk costs per unit of ef / selectivity.
 * Measured on 20,000 × 768 (bench/prof-filtered.ts): a walk at 10% with ef 64
 * took as long as a JavaScript scan of about 2,000 full rows, at 50% of about
 * 400, at 1% of 20,000-50,000 (the model errs towards scanning there).
 */
const WALK_COST = 3;
/** Records tested to estimate a filter the metadata index cannot answer. */
const SAMPLE = 128;
/** A layer this small is scanned whatever the filter. */
const SCAN_SMALL = 4096;
/** Upper bound of the raised ef. */
const EF_MAX = 4096;

/** The ef a filtered walk uses at `selectivity` (the fraction of the layer that matches). */
export function walkEf(ef: number, selectivity: number): number {
  return selectivity >= 1 ? ef : Math.max(ef, Math.min(EF_MAX, Math.ceil(ef / Math.sqrt(selectivity))));
}

/** Whether an exact scan of `matches` records is cheaper than a filtered walk of a layer of `size` records. */
export function scanIsCheaper(matches: number, size: number, ef: number): boolean {
  if (size <= SCAN_SMALL) return true;
  const selectivity = Math.max(matches, 1) / size;
  return matches <= (WALK_COST * walkEf(ef, selectivity)) / selectivity;
}

/** Nearest live labels of `layer` that `accept` admits, closest first, at most k. */
export function searchLayerFiltered(
  layer: Layer,
  query: number[],
  k: number,
  ef: number,
  space: Space,
  accept: Accept,
  plan: FilterPlan,
): LayerHits {
  if (layer.live === 0) return { neighbors: [], distances: [] };
  const size = layer.size;
  const { ids, metadata } = layer;
  const test = (label: number): boolean => accept(metadata[label], ids[label] as string);
  let matches: number;
  if (plan.conditions.length > 0) {
    const index = layer.metadataIndex;
    let best = plan.conditions[0] as EqualityCondition;
    let bestCount = Infinity;
    for (const c of plan.conditions) {
      const n = index.count(c);
      if (n < bestCount) {
        best = c;
        bestCount = n;
      }
    }
    if (bestCount === 0) return { neighbors: [], distances: [] };
    const postings = index.postings(best);
    const decides = plan.indexDecides && plan.conditions.length === 1;
    if (layer.isTail || (layer.canScan && scanIsCheaper(bestCount, size, ef)))
      return layer.scanExact(query, k, space, postings, decides ? undefined : test);
    if (decides) return walkMarked(layer, query, k, walkEf(ef, bestCount / size), postings);
    matches = bestCount;
  } else {
    let hits = 0;
    const step = Math.max(1, Math.floor(size / SAMPLE));
    let tested = 0;
    for (let label = 0; label < size && tested < SAMPLE; label += step, tested++) if (test(label)) hits++;
    // No match in the sample: the walk would be hopeless, the scan finds what there is.
    if (layer.isTail || (layer.canScan && (hits === 0 || scanIsCheaper(Math.round((hits / tested) * size), size, ef)))) {
      return layer.scanExact(query, k, space, undefined, test);
    }
    matches = (Math.max(hits, 1) / tested) * size;
  }
  return layer.search(query, k, walkEf(ef, matches / size), accept);
}

/** A bitmap per layer, all zero between walks (a walk sets its matches' bits and clears them after). */
const marks = new WeakMap<Layer, Uint8Array>();

/** A filtered walk whose filter is membership in `postings`, tested on a bitmap (no metadata read, no filter run). */
function walkMarked(layer: Layer, query: number[], k: number, ef: number, postings: readonly (readonly number[])[]): LayerHits {
  let bits = marks.get(layer);
  if (!bits || bits.length < layer.size) {
    bits = new Uint8Array(layer.size);
    marks.set(layer, bits);
  }
  const b = bits;
  for (const list of postings) for (let i = 0; i < list.length; i++) b[list[i] as number] = 1;
  try {
    // The bitmap itself is the filter: the native backend tests it in C++, with no JS call per candidate.
    return layer.searchIndex(query, k, ef, b);
  } finally {
    for (const list of postings) for (let i = 0; i < list.length; i++) b[list[i] as number] = 0;
  }
}
