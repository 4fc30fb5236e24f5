import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { IndexBuildError } from '../errors.js';
import type { Staging } from '../storage/staging.js';
import { crashPoint } from '../util/crash.js';
import { emptyIndex, type HnswIndex, type IndexParams } from './layer.js';

/*
 * HNSW graphs for new segments are built on a worker thread, so the caller's
 * path (upserts, searches on the main thread) never waits for graph work and
 * a second core does it. hnswlib index objects cannot cross threads: the
 * worker serializes its graph to a staging file (RAM-backed, 0600, unlinked
 * once read, as every serialized graph) and the main thread reads it back.
 */

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

/**
 * Builds the HNSW graph of `vectors` (count × dim, label i at i × dim) on a
 * worker thread and returns it loaded in this thread. `vectors` is moved to
 * the worker (and zeroed there): the caller must not use it afterwards.
 */
export async function buildGraph(params: IndexParams, vectors: Float32Array, staging: Staging): Promise<HnswIndex> {
  const n = vectors.length / params.dim;
  return staging.withFile(async (path) => {
    await new Promise<void>((resolve, reject) => {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        // A worker inherits the process's flags: under --input-type=module (node -e of an ES module) the CommonJS
        // source above would not run, and a worker refuses V8-wide flags such as --expose-gc (npm run bench) outright.
        // The other flags (memory limits) are kept.
        execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type') && !/^--expose[-_]gc$/.test(a)),
        workerData: { module: HNSWLIB, space: params.space, dim: params.dim, M: params.M, efConstruction: params.efConstruction, n, path, vectors },
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
    const index = emptyIndex(params);
    index.readIndexSync(path, false);
    return index;
  });
}
