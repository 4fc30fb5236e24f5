import type { EqualityCondition } from './filter-plan.js';
import type { Layer, LayerHits, Space } from './layer.js';
import type { Metadata } from './metadata.js';

/**
 * Filtered search of one layer, planned per query. The metadata index (or,
 * for a filter it cannot answer, a small sample of the layer) estimates how
 * many records match:
 *  - few: an exact scan of exactly those records (the filter tested on each,
 *    distances computed here the way hnswlib computes them), so a selective
 *    filter costs in proportion to its matches and loses no neighbour;
 *  - more: HNSW with the filter applied during traversal, its ef raised as
 *    the filter gets more selective, since a filtered graph walk must reach
 *    past refused nodes to find k accepted ones.
 */
export type Accept = (m: Metadata | undefined, id: string) => boolean;

/** At most this many candidates (or this fraction of the layer, if larger) are scanned exactly. */
const SCAN_MIN = 4096;
const SCAN_FRACTION = 0.03;
/** Records tested to estimate a filter the metadata index cannot answer. */
const SAMPLE = 128;
/** Upper bound of the raised ef. */
const EF_MAX = 4096;

/** The largest candidate count answered by an exact scan in a layer of `size` records. */
export function scanLimit(size: number): number {
  return Math.max(SCAN_MIN, Math.floor(size * SCAN_FRACTION));
}

/** Nearest live labels of `layer` that `accept` admits, closest first, at most k. */
export function searchLayerFiltered(
  layer: Layer,
  query: number[],
  k: number,
  ef: number,
  space: Space,
  accept: Accept,
  conditions: readonly EqualityCondition[],
): LayerHits {
  if (layer.live === 0) return { neighbors: [], distances: [] };
  const size = layer.size;
  let selectivity: number;
  if (conditions.length > 0) {
    const index = layer.metadataIndex;
    let best = conditions[0] as EqualityCondition;
    let bestCount = Infinity;
    for (const c of conditions) {
      const n = index.count(c);
      if (n < bestCount) {
        best = c;
        bestCount = n;
      }
    }
    if (bestCount === 0) return { neighbors: [], distances: [] };
    if (layer.canScan && bestCount <= scanLimit(size)) return scan(layer, index.postings(best), query, k, space, accept);
    selectivity = bestCount / size;
  } else {
    let hits = 0;
    const step = Math.max(1, Math.floor(size / SAMPLE));
    let tested = 0;
    for (let label = 0; label < size && tested < SAMPLE; label += step, tested++) if (accept(layer.metadata[label], layer.ids[label] as string)) hits++;
    // A small layer, or no match in the sample: the scan is cheap or the walk would be hopeless.
    if (layer.canScan && (size <= SCAN_MIN || hits === 0)) return scan(layer, [allLabels(size)], query, k, space, accept);
    selectivity = Math.max(hits, 1) / tested;
  }
  const raised = selectivity >= 1 ? ef : Math.min(EF_MAX, Math.ceil(ef / Math.sqrt(selectivity)));
  return layer.search(query, k, Math.max(ef, raised), accept);
}

function allLabels(size: number): number[] {
  return Array.from({ length: size }, (_, i) => i);
}

/** Exact k nearest among the candidate labels (dead ones and those `accept` refuses skipped). */
function scan(layer: Layer, lists: number[][], query: number[], k: number, space: Space, accept: Accept): LayerHits {
  const dim = query.length;
  const q = Float64Array.from(query);
  if (space === 'cosine') {
    let norm = 0;
    for (let j = 0; j < dim; j++) norm += (q[j] as number) * (q[j] as number);
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < dim; j++) q[j] = (q[j] as number) / norm;
  }
  const neighbors: number[] = [];
  const distances: number[] = [];
  const { ids, metadata } = layer;
  for (const list of lists) {
    for (const label of list) {
      if (layer.isDead(label) || !accept(metadata[label], ids[label] as string)) continue;
      const d = distance(layer.vectorOf(label), q, dim, space);
      if (neighbors.length === k && d >= (distances[k - 1] as number)) continue;
      // Insertion into the sorted top k.
      let at = neighbors.length < k ? neighbors.length : k - 1;
      while (at > 0 && (distances[at - 1] as number) > d) {
        if (at < k) {
          neighbors[at] = neighbors[at - 1] as number;
          distances[at] = distances[at - 1] as number;
        }
        at--;
      }
      neighbors[at] = label;
      distances[at] = d;
    }
  }
  return { neighbors, distances };
}

/** hnswlib's distances: squared L2, 1 − inner product, 1 − cosine (the query already normalized). */
function distance(v: Float32Array, q: Float64Array, dim: number, space: Space): number {
  if (space === 'l2') {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const x = (v[j] as number) - (q[j] as number);
      s += x * x;
    }
    return s;
  }
  let dot = 0;
  let norm = 0;
  for (let j = 0; j < dim; j++) {
    const x = v[j] as number;
    dot += x * (q[j] as number);
    norm += x * x;
  }
  if (space === 'ip') return 1 - dot;
  return 1 - dot / (Math.sqrt(norm) || 1);
}
