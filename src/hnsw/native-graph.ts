import { CorruptDataError, GraphBusyError, IndexBuildError, InvalidArgumentError, UnsupportedOperationError } from '../errors.js';
import type { GraphIndex, GraphParams, LabelFilter, Space } from './graph.js';
import { loadHnswAddon, type AddonGraph } from './native-addon.js';

/** The typed error for an error the addon threw (its `code` says which kind). */
function typed(err: unknown, file?: string): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  const message = err.message;
  if (code === 'BUSY') return new GraphBusyError(message);
  if (code === 'FORMAT') {
    return new CorruptDataError(`HNSW index does not load: ${message}`, { reason: 'decode', ...(file === undefined ? {} : { file }) });
  }
  if (code === 'ARG') return new InvalidArgumentError(message);
  if (code === 'HNSW') return new IndexBuildError(`hnswlib: ${message}`, { cause: err });
  return err;
}

function call<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw typed(err);
  }
}

/** A streamed load of a serialized graph (see {@link NativeGraph.loader}). */
export interface GraphLoader {
  /** Copies the next bytes into the graph (in order; a malformed header or size throws CorruptDataError at once). */
  push(bytes: Uint8Array): void;
  /** Checks every level and link once all bytes are in; resolves to the graph. */
  end(): Promise<NativeGraph>;
  /** Drops what was loaded so far. */
  abort(): void;
}

/**
 * A graph held by vectorseal's own binding of hnswlib's headers
 * (native/graph.cc). Beside what hnswlib-node offers it adds points in
 * batches on several threads (off the JS thread), serializes to and from
 * memory in hnswlib's saveIndex format, and filters by a label bitmap tested
 * in C++.
 */
export class NativeGraph implements GraphIndex {
  readonly backend = 'native';
  private readonly g: AddonGraph;

  private constructor(
    readonly space: Space,
    readonly dim: number,
  ) {
    const found = loadHnswAddon();
    if (!found) throw new UnsupportedOperationError('the native HNSW addon is not built');
    this.g = call(() => new found.addon.Graph(space, dim));
  }

  /** Whether the addon is built and loads. */
  static available(): boolean {
    return loadHnswAddon() !== undefined;
  }

  /** An empty graph with room for `capacity` points (seed 100, as every graph of the store). */
  static create(p: GraphParams, capacity: number): NativeGraph {
    const graph = new NativeGraph(p.space, p.dim);
    call(() => graph.g.initIndex(Math.max(1, capacity), p.M, p.efConstruction, 100));
    return graph;
  }

  /**
   * A graph read from `bytes` (hnswlib's saveIndex format) on the thread pool,
   * every size and link checked against the buffer: a malformed one is a
   * CorruptDataError naming `file`. The caller must not change `bytes` until
   * this resolves (it may zero them after).
   */
  static async deserialize(p: Pick<GraphParams, 'space' | 'dim'>, bytes: Uint8Array, file?: string): Promise<NativeGraph> {
    const graph = new NativeGraph(p.space, p.dim);
    try {
      await graph.g.deserialize(bytes);
    } catch (err) {
      throw typed(err, file);
    }
    return graph;
  }

  /**
   * A graph read from its serialization (`total` bytes) pushed in pieces of
   * any size: each piece is copied at once into the graph's own memory (the
   * caller may reuse or zero its buffer), and nothing larger than `total`
   * declares is allocated. end() checks every size and link and resolves to
   * the graph; a malformed serialization is a CorruptDataError naming `file`.
   */
  static loader(p: Pick<GraphParams, 'space' | 'dim'>, total: number, file?: string): GraphLoader {
    const graph = new NativeGraph(p.space, p.dim);
    call(() => graph.g.loadBegin(total));
    return {
      push: (bytes) => {
        try {
          graph.g.loadPush(bytes);
        } catch (err) {
          throw typed(err, file);
        }
      },
      end: async () => {
        try {
          await graph.g.loadEnd();
        } catch (err) {
          throw typed(err, file);
        }
        return graph;
      },
      abort: () => call(() => graph.g.loadAbort()),
    };
  }

  /**
   * Adds the points of `vectors` (one Float32Array of count × dim, or count
   * rows of dim each, read where they are) with labels firstLabel.. on
   * `threads` threads, off the JS thread. Until it resolves, `vectors` must
   * stay unchanged, and resize, serialize, delete marks, addPoint and free
   * throw GraphBusyError; searches may run meanwhile.
   */
  async addBatch(vectors: Float32Array | readonly Float32Array[], firstLabel: number, threads: number): Promise<void> {
    let pending: Promise<void>;
    try {
      pending = this.g.addBatch(vectors, firstLabel, threads);
    } catch (err) {
      throw typed(err);
    }
    await pending.catch((err: unknown) => {
      throw typed(err);
    });
  }

  /** Whether a batch or a load is running on this graph. */
  get busy(): boolean {
    return this.g.busy();
  }

  addPoint(point: Float32Array, label: number): void {
    call(() => this.g.addPoint(point, label));
  }

  /**
   * The unfiltered k nearest of several graphs for one query (ks[i] for
   * graphs[i], each at its own ef): the first graph on the calling thread,
   * the others meanwhile on the addon's one helper thread, all done before
   * this returns. The graphs must be distinct and none of them loading.
   */
  static searchEach(
    graphs: readonly NativeGraph[],
    query: Float32Array,
    ks: readonly number[],
  ): { neighbors: Uint32Array; distances: Float32Array }[] {
    const found = loadHnswAddon();
    if (!found) throw new UnsupportedOperationError('the native HNSW addon is not built');
    return call(() =>
      found.addon.Graph.searchEach(
        graphs.map((g) => g.g),
        query,
        [...ks],
      ),
    );
  }

  searchKnn(query: number[] | Float32Array, k: number, filter?: LabelFilter): { neighbors: Uint32Array; distances: Float32Array } {
    return call(() => (filter === undefined ? this.g.searchKnn(query, k) : this.g.searchKnn(query, k, filter)));
  }

  /**
   * The exact k nearest among `labels` (every one must be in the graph),
   * closest first, with searchKnn's distances: computed in C++ on the
   * graph's own copy of each vector, so nothing is copied out to scan it.
   */
  scanLabels(query: Float32Array, k: number, labels: Uint32Array): { neighbors: Uint32Array; distances: Float32Array } {
    return call(() => this.g.scanLabels(query, k, labels));
  }

  markDelete(label: number): void {
    call(() => this.g.markDelete(label));
  }

  unmarkDelete(label: number): void {
    call(() => this.g.unmarkDelete(label));
  }

  getPoint(label: number): Float32Array {
    return call(() => this.g.getPoint(label));
  }

  getIdsList(): number[] {
    return call(() => this.g.getIdsList());
  }

  getCurrentCount(): number {
    return this.g.getCurrentCount();
  }

  getMaxElements(): number {
    return this.g.getMaxElements();
  }

  resizeIndex(maxElements: number): void {
    call(() => this.g.resizeIndex(maxElements));
  }

  setEf(ef: number): void {
    call(() => this.g.setEf(ef));
  }

  /** Bytes {@link serializeInto} writes: what hnswlib's saveIndex would write to a file. */
  serializedSize(): number {
    return call(() => this.g.serializedSize());
  }

  /** Writes the graph into `out` (at least serializedSize() bytes) in hnswlib's saveIndex format; returns the bytes written. */
  serializeInto(out: Uint8Array): number {
    return call(() => this.g.serializeInto(out));
  }

  /**
   * Writes bytes [offset, offset + out.length) of what {@link serializeInto}
   * writes into `out`; returns how many (fewer at the end, 0 past it): the
   * serialization streams through one reused buffer.
   */
  serializeRange(out: Uint8Array, offset: number): number {
    return call(() => this.g.serializeRange(out, offset));
  }

  /**
   * The stored vector of every label 0..n-1, in one flat copy (n × dim);
   * exact for 'l2' and 'ip', normalized for 'cosine'.
   */
  copyVectors(n: number): Float32Array {
    const out = new Float32Array(n * this.dim);
    call(() => this.g.copyVectors(out));
    return out;
  }

  /** Whether the graph's labels are exactly 0..count-1. */
  labelsDense(): boolean {
    return call(() => this.g.labelsDense());
  }

  /** Frees the graph's memory now (not at garbage collection); the object is unusable afterwards. */
  free(): void {
    call(() => this.g.free());
  }
}
