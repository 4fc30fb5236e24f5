import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { IndexBuildError } from '../errors.js';
import { crashPoint } from '../util/crash.js';
import { HnswlibGraph, NativeGraph } from '../hnsw/index.js';
import type { IndexParams } from './layer.js';

/*
 * HNSW graphs for new segments are built off the caller's path (upserts and
 * searches on the main thread never wait for graph work), on both cores.
 *
 * With vectorseal's own addon ({@link buildGraph}) the graph is built in this
 * process by BUILD_THREADS native threads inside async work, and the built
 * graph is the layer's index: nothing is serialized to build it.
 *
 * The hnswlib-node fallback ({@link buildGraphFile}) builds on a worker
 * thread; hnswlib-node index objects cannot cross threads, so the worker
 * serializes its graph to a staging file (RAM-backed, 0600, unlinked once
 * read, as every serialized graph) and the main thread reads it back.
 */

/** Threads adding points to a new segment's graph: the machine's two cores (the JS thread waits meanwhile). */
export const BUILD_THREADS = 2;

/**
 * Builds the HNSW graph of `rows` (label i is rows[i]) with the native addon
 * on {@link BUILD_THREADS} threads, reading each row where it is (no flat
 * copy of the vectors is made). The rows must not change until this resolves.
 */
export async function buildGraph(params: IndexParams, rows: readonly Float32Array[]): Promise<NativeGraph> {
  const graph = NativeGraph.create(params, rows.length);
  try {
    crashPoint('graph:started');
    await graph.addBatch(rows, 0, BUILD_THREADS);
  } catch (err) {
    if (!graph.busy) graph.free();
    throw err;
  }
  crashPoint('graph:built');
  return graph;
}

// The module is resolved by this code, never named by anything in the data directory.
const HNSWLIB = createRequire(import.meta.url).resolve('hnswlib-node');

// Plain CommonJS evaluated in the worker: no separate file, so the source and the built package share it.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { HierarchicalNSW } = require(workerData.module);
const { space, dim, M, efConstruction, n, path, vectors } = workerData;
const index = new HierarchicalNSW(space, dim);
index.initIndex({ maxElements: Math.max(1, n), m: M, efConstruction, randomSeed: 100 });
for (let i = 0; i < n; i++) index.addPoint(Array.from(vectors.subarray(i * dim, (i + 1) * dim)), i);
vectors.fill(0);
index.writeIndexSync(path);
parentPort.postMessage('built');
`;

/** The parent's flags a worker accepts: without --input-type and the V8 flags only a process takes. */
export function workerExecArgv(argv: readonly string[]): string[] {
  return argv.filter((a) => !a.startsWith('--input-type') && !/^--expose[-_]gc$/.test(a));
}

/**
 * Builds the HNSW graph of `vectors` (count × dim, label i at i × dim) on a
 * worker thread, which serializes it into `path` (a staging file): that one
 * serialization is both what the segment seals and what
 * {@link loadGraph} reads into this thread. `vectors` is moved to the
 * worker (and zeroed there): the caller must not use it afterwards.
 */
export async function buildGraphFile(params: IndexParams, vectors: Float32Array, path: string): Promise<void> {
  const n = vectors.length / params.dim;
  await new Promise<void>((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // A worker inherits the process's flags: under --input-type=module (node -e of an ES module) the CommonJS
      // source above would not run, and a worker refuses per-process V8 flags such as --expose-gc (V8 flags
      // apply to the whole process anyway). The other flags (memory limits, loaders) are kept.
      execArgv: workerExecArgv(process.execArgv),
      workerData: {
        module: HNSWLIB,
        space: params.space,
        dim: params.dim,
        M: params.M,
        efConstruction: params.efConstruction,
        n,
        path,
        vectors,
      },
      transferList: [vectors.buffer as ArrayBuffer],
    });
    let built = false;
    worker.once('message', () => {
      built = true;
    });
    worker.once('error', (err) => reject(new IndexBuildError('the HNSW graph build failed', { cause: err })));
    worker.once('exit', (code) => {
      if (built) resolve();
      else reject(new IndexBuildError(`the HNSW graph build ended without a graph (exit code ${code})`));
    });
    crashPoint('graph:started');
  });
  crashPoint('graph:built');
}

/**
 * Loads a serialized graph with hnswlib's asynchronous load, which runs on
 * the libuv thread pool: the caller's thread seals and writes the same
 * file meanwhile instead of blocking on the load.
 */
export async function loadGraph(params: IndexParams, path: string): Promise<HnswlibGraph> {
  const index = HnswlibGraph.empty(params);
  try {
    await index.raw.readIndex(path, false);
  } catch (err) {
    throw new IndexBuildError('the built HNSW graph does not load', { cause: err });
  }
  return index;
}
