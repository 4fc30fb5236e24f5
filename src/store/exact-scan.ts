import type { Space } from './layer.js';

/** An exact scan's hits: plain arrays (a subtype of the layer's LayerHits). */
interface ScanHits {
  neighbors: number[];
  distances: number[];
}

/**
 * The exact k-nearest scan shared by every path that does not walk a graph:
 * a tail layer (records not yet indexed) and a selective filter's matching
 * records. One tight loop per space over Float32Array rows, a fixed-size
 * max-heap of the best k (typed arrays, no allocation per candidate), and,
 * for squared L2, early abandoning: a row's partial sum that already passes
 * the k-th best distance cannot enter the heap, so the rest of the row is
 * skipped. The result is the same as a full scan; only the work differs.
 *
 * Distances are the ones hnswlib reports (squared L2; 1 - dot for 'ip';
 * 1 - cosine for 'cosine', the query normalized here), so scan hits merge
 * with graph hits.
 */

/** Where a scan reads row vectors: one flat block (row i at i × dim) or one array per row. */
export type ScanRows = { flat: Float32Array; dim: number } | { perRow: readonly Float32Array[]; dim: number };

/** Components summed between two early-abandon checks. */
const BLOCK = 64;

/** The k best (smallest distance) labels seen so far: a max-heap on typed arrays, worst on top. */
export class TopK {
  private readonly labels: Int32Array;
  private readonly dists: Float64Array;
  private size = 0;

  constructor(private readonly k: number) {
    this.labels = new Int32Array(k);
    this.dists = new Float64Array(k);
  }

  /** A distance must be below this to enter (Infinity until k are held). */
  get bound(): number {
    return this.size < this.k ? Infinity : (this.dists[0] as number);
  }

  /** Adds a candidate whose distance is below {@link bound}. */
  push(label: number, d: number): void {
    const labels = this.labels;
    const dists = this.dists;
    if (this.size < this.k) {
      let c = this.size++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if ((dists[p] as number) >= d) break;
        dists[c] = dists[p] as number;
        labels[c] = labels[p] as number;
        c = p;
      }
      dists[c] = d;
      labels[c] = label;
      return;
    }
    // Replace the worst, sift down.
    const n = this.k;
    let p = 0;
    for (;;) {
      const l = 2 * p + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && (dists[r] as number) > (dists[l] as number) ? r : l;
      if ((dists[m] as number) <= d) break;
      dists[p] = dists[m] as number;
      labels[p] = labels[m] as number;
      p = m;
    }
    dists[p] = d;
    labels[p] = label;
  }

  /** The held candidates, closest first. */
  sorted(): ScanHits {
    const order = Array.from({ length: this.size }, (_, i) => i).sort((a, b) => (this.dists[a] as number) - (this.dists[b] as number));
    return { neighbors: order.map((i) => this.labels[i] as number), distances: order.map((i) => this.dists[i] as number) };
  }
}

/**
 * Exact k nearest among `lists` (label lists, or every label below `count`
 * when undefined), closest first. `dead` labels are skipped, and so are
 * those `admit` refuses (asked before the distance: a metadata test costs
 * far less than a distance over hundreds of components).
 */
export function scanNearest(
  rows: ScanRows,
  query: readonly number[],
  k: number,
  space: Space,
  dead: Uint8Array,
  lists: readonly (readonly number[])[] | undefined,
  count: number,
  admit?: (label: number) => boolean,
  /** Without `lists`: the first label scanned (the labels before it are answered elsewhere). */
  first = 0,
): ScanHits {
  const dim = rows.dim;
  const q = new Float64Array(dim);
  for (let j = 0; j < dim; j++) q[j] = query[j] as number;
  if (space === 'cosine') {
    let norm = 0;
    for (let j = 0; j < dim; j++) norm += (q[j] as number) * (q[j] as number);
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < dim; j++) q[j] = (q[j] as number) / norm;
  }
  const top = new TopK(k);
  const flat = 'flat' in rows ? rows.flat : undefined;
  const perRow = 'perRow' in rows ? rows.perRow : undefined;
  // One loop for both forms of candidates (label lists, or every label), with the distance inlined: a closure per row costs a fifth.
  const sources: readonly (readonly number[] | undefined)[] = lists ?? [undefined];
  for (const list of sources) {
    const n = list ? list.length : count;
    for (let i = list ? 0 : first; i < n; i++) {
      const label = list ? (list[i] as number) : i;
      if (dead[label] === 1 || (admit !== undefined && !admit(label))) continue;
      const v = flat ?? (perRow as readonly Float32Array[])[label];
      if (v === undefined) continue;
      const at = flat ? label * dim : 0;
      const bound = top.bound;
      const d = space === 'l2' ? l2Bounded(v, at, q, dim, bound) : angular(v, at, q, dim, space);
      if (d < bound) top.push(label, d);
    }
  }
  return top.sorted();
}

/** Squared L2 of the row at v[at..at+dim) from q; stops early (returning a partial sum ≥ bound) once the sum passes bound. */
function l2Bounded(v: Float32Array, at: number, q: Float64Array, dim: number, bound: number): number {
  let s = 0;
  const whole = dim - (dim & 3);
  for (let j0 = 0; j0 < whole; j0 += BLOCK) {
    const end = Math.min(j0 + BLOCK, whole);
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let j = j0, o = at + j0; j < end; j += 4, o += 4) {
      const a = (v[o] as number) - (q[j] as number);
      const b = (v[o + 1] as number) - (q[j + 1] as number);
      const c = (v[o + 2] as number) - (q[j + 2] as number);
      const e = (v[o + 3] as number) - (q[j + 3] as number);
      s0 += a * a;
      s1 += b * b;
      s2 += c * c;
      s3 += e * e;
    }
    s += s0 + s1 + s2 + s3;
    if (s >= bound) return s;
  }
  for (let j = whole; j < dim; j++) {
    const a = (v[at + j] as number) - (q[j] as number);
    s += a * a;
  }
  return s;
}

/** 1 - dot ('ip') or 1 - cosine ('cosine', q already normalized) of the row at v[at..at+dim). */
function angular(v: Float32Array, at: number, q: Float64Array, dim: number, space: Space): number {
  let d0 = 0;
  let d1 = 0;
  let n0 = 0;
  let n1 = 0;
  let j = 0;
  for (; j + 1 < dim; j += 2) {
    const x = v[at + j] as number;
    const y = v[at + j + 1] as number;
    d0 += x * (q[j] as number);
    d1 += y * (q[j + 1] as number);
    n0 += x * x;
    n1 += y * y;
  }
  if (j < dim) {
    const x = v[at + j] as number;
    d0 += x * (q[j] as number);
    n0 += x * x;
  }
  const dot = d0 + d1;
  if (space === 'ip') return 1 - dot;
  return 1 - dot / (Math.sqrt(n0 + n1) || 1);
}
