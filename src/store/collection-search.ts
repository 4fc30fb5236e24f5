import { NativeGraph } from '../hnsw/index.js';
import { InvalidArgumentError } from '../errors.js';
import type { CollectionMemory } from './collection-memory.js';
import type { SearchOptions, SearchResult } from './collection-types.js';
import { equalityConditions, onlyEquality } from './filter-plan.js';
import { compileFilter, readFilter, type Filter, type ReadFilter } from './filter.js';
import { type FilterPlan, searchLayerFiltered } from './filtered-search.js';
import type { Layer, LayerHits } from './layer.js';
import { readOnly, type Metadata } from './metadata.js';
import { checkPositiveInt, toVector } from './validate.js';

/*
 * Search over every layer of a collection (segment groups, the frozen
 * memtable, the memtable): each layer's hits merged, closest first.
 */

const MAX_K = 10_000;

/**
 * The k nearest live records, closest first, across every segment and the
 * memtable. Runs entirely in memory (no file, no key); the caller has
 * admitted the read.
 */
export function searchLayers<M extends object>(
  s: CollectionMemory,
  vector: Float32Array | number[],
  k: number,
  options: SearchOptions<M>,
): SearchResult<M>[] {
  const q = queryOf(vector, s.info.dim, s.info.space);
  checkPositiveInt(k, 'k', MAX_K);
  const ef = options.ef === undefined ? Math.max(64, k) : checkPositiveInt(options.ef, 'ef', 100_000);
  // The filter and the predicate are read once: the plan and the test both use these (filter.ts readFilter).
  const filter = options.filter === undefined ? undefined : readFilter(options.filter);
  const where = options.where;
  const accept = acceptOf(filter, where);
  // A filtered layer is planned on its own: exact scan of the few matches, or a filtered walk with a raised ef (filtered-search.ts).
  const conditions = filter === undefined ? [] : equalityConditions(filter.tree);
  const plan: FilterPlan = {
    conditions,
    indexDecides: where === undefined && filter !== undefined && onlyEquality(filter.tree),
  };
  const space = s.info.space;
  const searchLayer = (layer: Layer): LayerHits =>
    accept ? searchLayerFiltered(layer, q, k, ef, space, accept, plan) : layer.search(q, k, ef);
  const similarity = s.info.space !== 'l2';
  const segs = s.segments;
  const frozen = s.frozen;
  const memtable = s.memtable;
  const nLayers = segs.length + (frozen ? 2 : 1);
  const layerAt = (i: number): Layer => (i < segs.length ? (segs[i] as Layer) : i === segs.length && frozen ? frozen : memtable);
  // Usually one layer holds every live record (a reopened or compacted collection): no merge.
  let only = -1;
  let several = false;
  for (let i = 0; i < nLayers; i++) {
    if (layerAt(i).live === 0) continue;
    if (only >= 0) several = true;
    else only = i;
  }
  const out: SearchResult<M>[] = [];
  if (only < 0) return out;
  const hit = (layer: Layer, label: number, distance: number): void => {
    out.push({
      id: layer.ids[label] as string,
      score: similarity ? 1 - distance : distance,
      metadata: readOnly(layer.metadata[label]) as M | undefined,
    });
  };
  if (!several) {
    const layer = layerAt(only);
    const res = searchLayer(layer);
    rethrowPredicateError(accept);
    const { ids, metadata } = layer;
    for (let j = 0; j < res.neighbors.length && out.length < k; j++) {
      const label = res.neighbors[j] as number;
      if (layer.isDead(label)) continue;
      const distance = res.distances[j] as number;
      out.push({
        id: ids[label] as string,
        score: similarity ? 1 - distance : distance,
        metadata: readOnly(metadata[label]) as M | undefined,
      });
    }
    return out;
  }
  // Each layer's hits come closest first: merge them, k at most.
  const results: LayerHits[] = new Array<LayerHits>(nLayers);
  const at = new Array<number>(nLayers).fill(0);
  // Unfiltered, over two or more groups large enough to be worth a thread each: their graph walks run at once.
  if (!accept) searchGroupsAtOnce(layerAt, nLayers, q, k, ef, results);
  for (let i = 0; i < nLayers; i++) results[i] ??= searchLayer(layerAt(i));
  rethrowPredicateError(accept);
  while (out.length < k) {
    let best = -1;
    let bestDistance = Infinity;
    for (let i = 0; i < nLayers; i++) {
      const r = results[i] as LayerHits;
      const j = at[i] as number;
      if (j < r.neighbors.length && (best < 0 || (r.distances[j] as number) < bestDistance)) {
        best = i;
        bestDistance = r.distances[j] as number;
      }
    }
    if (best < 0) break;
    const r = results[best] as LayerHits;
    const j = at[best] as number;
    at[best] = j + 1;
    const layer = layerAt(best);
    const label = r.neighbors[j] as number;
    if (!layer.isDead(label)) hit(layer, label, bestDistance);
  }
  return out;
}

/**
 * Live records a segment group needs before its walk gets a thread of its
 * own: below it, starting and joining the thread costs more than the walk.
 */
export const PARALLEL_WALK_MIN = 10_000;

/**
 * Fills `results` for the segment groups of at least PARALLEL_WALK_MIN live
 * records, searched at once (NativeGraph.searchEach) when there are two or
 * more; the same walks, at the same ef, as one by one.
 */
function searchGroupsAtOnce(
  layerAt: (i: number) => Layer,
  nLayers: number,
  q: number[],
  k: number,
  ef: number,
  results: LayerHits[],
): void {
  const picked: number[] = [];
  const graphs: NativeGraph[] = [];
  const ks: number[] = [];
  for (let i = 0; i < nLayers; i++) {
    const layer = layerAt(i);
    const g = layer.live >= PARALLEL_WALK_MIN ? layer.graphForSearch(k, ef) : undefined;
    if (!g) continue;
    picked.push(i);
    graphs.push(g.graph);
    ks.push(g.n);
  }
  if (picked.length < 2) return;
  const hits = NativeGraph.searchEach(graphs, Float32Array.from(q), ks);
  picked.forEach((i, j) => {
    results[i] = hits[j] as LayerHits;
  });
}

/** Ids of the live records whose metadata matches `filter` (every id without one). */
export function matchingIds<M extends object>(s: CollectionMemory, filter: Filter<M> | undefined): string[] {
  const accept = filter === undefined ? undefined : compileFilter(filter);
  const out: string[] = [];
  for (const [id, loc] of s.current) if (!accept || accept(loc.layer.metadata[loc.label])) out.push(id);
  return out;
}

/**
 * The search's record test: the compiled filter and the caller's predicate.
 * hnswlib calls it from native code, which must not see a JavaScript
 * exception: the first error is kept, every later candidate refused, and the
 * error is thrown by {@link rethrowPredicateError} once the search returns.
 */
function acceptOf(
  filter: ReadFilter | undefined,
  where: SearchOptions['where'],
): ((m: Metadata | undefined, id: string) => boolean) | undefined {
  const compiled = filter?.test;
  if (where === undefined) return compiled;
  if (typeof where !== 'function')
    throw new InvalidArgumentError(`"where" expected a function, got ${where === null ? 'null' : typeof where}`);
  const state: { error?: { value: unknown } } = {};
  const test = (m: Metadata | undefined, id: string): boolean => {
    if (state.error) return false;
    if (compiled && !compiled(m)) return false;
    try {
      return where(m, id) === true;
    } catch (err) {
      state.error = { value: err };
      return false;
    }
  };
  predicateErrors.set(test, state);
  return test;
}

const predicateErrors = new WeakMap<object, { error?: { value: unknown } }>();

function rethrowPredicateError(accept: object | undefined): void {
  const e = accept === undefined ? undefined : predicateErrors.get(accept)?.error;
  if (e) throw e.value;
}

/**
 * A query as hnswlib takes it. A Float32Array of the right dimension is only
 * checked for non-finite components; anything else goes through the full
 * conversion (and its error messages).
 */
function queryOf(vector: Float32Array | number[], dim: number, space: string): number[] {
  if (vector instanceof Float32Array && vector.length === dim) {
    let finite = true;
    let zero = true;
    for (let i = 0; i < dim; i++) {
      const x = vector[i] as number;
      if (!Number.isFinite(x)) {
        finite = false;
        break;
      }
      if (x !== 0) zero = false;
    }
    if (finite && !(zero && space === 'cosine')) return Array.from(vector);
  }
  return Array.from(toVector(vector, dim, 'search', space));
}
