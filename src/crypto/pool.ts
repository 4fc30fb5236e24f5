import { randomBytes, timingSafeEqual } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ClosedError, CorruptDataError, InvalidArgumentError, LimitExceededError } from '../errors.js';
import {
  COMMITMENT_SIZE,
  MESSAGE_HEADER_SIZE,
  SALT_SIZE,
  deriveMessageKeys,
  messageLength,
  sealedLength,
  type SealOptions,
} from './chunked.js';
import {
  AEAD_KEY_SIZE,
  CHUNK_SIZE,
  MAX_CHUNKS,
  NONCE_SIZE,
  PageAuthFailure,
  TAG_SIZE,
  type ChunkCipher,
  type ChunkEngine,
} from './engine.js';
import { defaultEngine } from './engines.js';
import { loadNativeAddon } from './native-engine.js';
import { POOL_WORKER_SOURCE } from './pool-worker-source.js';

/**
 * A pool of worker threads that seal and open large runs of pages on every
 * core. Chunks are independent given (AEAD key, base nonce, counter), so a
 * run is cut into contiguous ranges: the calling thread does the first range
 * itself while the workers do the others, all writing into one output buffer.
 *
 * Zero copies when the buffers are backed by a SharedArrayBuffer (see
 * {@link sharedBuffer}); otherwise the workers' ranges are copied into and
 * out of shared scratch memory, which costs a memcpy per byte.
 *
 * Key hygiene trade-off: to use more than one core, the per-message AEAD key
 * (derived from the DEK; never the DEK itself) must be in more than one
 * thread. It is written into a per-worker 32-byte shared slot just before a
 * job is posted, loaded by the worker into its own cipher context, and the
 * slot is zeroed at once (and again by the caller when the job ends); the
 * worker frees, and OpenSSL cleanses, that context when the job ends. So
 * while a job runs, the key schedule exists once per busy thread instead of
 * once; between jobs no worker holds key material. Process memory is outside
 * the threat model (DESIGN.md), but callers who want the key in one thread
 * only should use the synchronous engines, which is also what small inputs do.
 */

export interface PoolOptions {
  /** Worker threads; default availableParallelism() - 1 (the caller's thread works too). */
  workers?: number;
  /** Inputs smaller than this are processed on the calling thread. Default 512 KiB. */
  minParallelBytes?: number;
  /** Engine used on the calling thread; default {@link defaultEngine}. */
  engine?: ChunkEngine;
  /** Workers use node:crypto even when the native addon is built (tests, fallback). */
  forceNodeWorkers?: boolean;
}

export interface PageRunOptions {
  /**
   * Plaintext bytes per independent page (default 16 KiB): page p is sealed
   * on its own, numbered from counter + p × ceil(pageSize / 16 KiB). With a
   * multiple of 16 KiB this is the same as one run of consecutive chunks.
   */
  pageSize?: number;
}

interface Job {
  id: number;
  op: 'seal' | 'open';
  base: Uint8Array;
  counter: number;
  input: Uint8Array;
  out: Uint8Array;
  pageSize: number;
}

interface PoolWorker {
  worker: Worker;
  keySlot: Uint8Array;
  busy: boolean;
}

interface Pending {
  job: Job;
  key: Uint8Array;
  resolve: (n: number) => void;
  reject: (err: Error) => void;
}

/** A Buffer backed by a SharedArrayBuffer: workers read and write it without copies. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

const isShared = (b: Uint8Array): boolean => b.buffer instanceof SharedArrayBuffer;

/** A copy of `b` in shared memory (for a worker to read in place). */
export function copyToShared(b: Uint8Array): Buffer {
  const copy = sharedBuffer(b.length);
  copy.set(b);
  return copy;
}

function sealedPageSize(pageSize: number): number {
  return pageSize + Math.ceil(pageSize / CHUNK_SIZE) * TAG_SIZE;
}

/** The calling thread's share: the same page loop the workers run. */
function runPages(
  cipher: ChunkCipher,
  op: 'seal' | 'open',
  base: Uint8Array,
  counter: number,
  input: Uint8Array,
  out: Uint8Array,
  pageSize: number,
): number {
  if (pageSize % CHUNK_SIZE === 0 || input.length === 0) {
    return op === 'seal' ? cipher.seal(base, counter, input, out) : cipher.open(base, counter, input, out);
  }
  const chunksPerPage = Math.ceil(pageSize / CHUNK_SIZE);
  const inPage = op === 'seal' ? pageSize : sealedPageSize(pageSize);
  const outPage = op === 'seal' ? sealedPageSize(pageSize) : pageSize;
  let written = 0;
  for (let p = 0, at = 0; at < input.length; p++, at += inPage) {
    const page = input.subarray(at, Math.min(input.length, at + inPage));
    const target = out.subarray(p * outPage);
    const c = counter + p * chunksPerPage;
    written += op === 'seal' ? cipher.seal(base, c, page, target) : cipher.open(base, c, page, target);
  }
  return written;
}

export class CryptoPool {
  private readonly workerCount: number;
  private readonly minParallelBytes: number;
  private readonly engine: ChunkEngine | undefined;
  private readonly addonPath: string | undefined;
  private workers: PoolWorker[] = [];
  private readonly queue: Pending[] = [];
  private readonly inFlight = new Map<number, { pending: Pending; worker: PoolWorker }>();
  private nextId = 1;
  private closed = false;

  constructor(options: PoolOptions = {}) {
    const workers = options.workers ?? Math.max(1, availableParallelism() - 1);
    if (!Number.isInteger(workers) || workers < 0) {
      throw new InvalidArgumentError(`"workers" expected a non-negative integer, got ${String(workers)}`);
    }
    this.workerCount = workers;
    this.minParallelBytes = options.minParallelBytes ?? 512 * 1024;
    this.engine = options.engine;
    this.addonPath = options.forceNodeWorkers ? undefined : loadNativeAddon()?.path;
  }

  /** Threads that work on one large call: the workers and the caller. */
  get threads(): number {
    return this.workerCount + 1;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Which engine the workers run. */
  get workerEngine(): 'native' | 'node' {
    return this.addonPath ? 'native' : 'node';
  }

  /** Like ChunkCipher.seal under `key`, spread over the pool. Resolves to bytes written. */
  seal(
    key: Uint8Array,
    baseNonce: Uint8Array,
    counter: number,
    plaintext: Uint8Array,
    out: Uint8Array,
    options: PageRunOptions = {},
  ): Promise<number> {
    return this.run('seal', key, baseNonce, counter, plaintext, out, options.pageSize ?? CHUNK_SIZE);
  }

  /**
   * Like ChunkCipher.open under `key`, spread over the pool. Rejects with
   * {@link PageAuthFailure} naming the lowest failing chunk; `out` is then unspecified.
   */
  open(
    key: Uint8Array,
    baseNonce: Uint8Array,
    counter: number,
    ciphertext: Uint8Array,
    out: Uint8Array,
    options: PageRunOptions = {},
  ): Promise<number> {
    return this.run('open', key, baseNonce, counter, ciphertext, out, options.pageSize ?? CHUNK_SIZE);
  }

  /** Terminates the workers; pending jobs reject with ClosedError. */
  async close(): Promise<void> {
    this.closed = true;
    const err = new ClosedError('crypto pool closed');
    for (const p of this.queue.splice(0)) {
      p.key.fill(0);
      p.reject(err);
    }
    for (const { pending } of this.inFlight.values()) pending.reject(err);
    this.inFlight.clear();
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.worker.terminate()));
    for (const w of workers) w.keySlot.fill(0);
  }

  private async run(
    op: 'seal' | 'open',
    key: Uint8Array,
    base: Uint8Array,
    counter: number,
    input: Uint8Array,
    out: Uint8Array,
    pageSize: number,
  ): Promise<number> {
    if (this.closed) throw new ClosedError('crypto pool closed');
    if (!(key instanceof Uint8Array) || key.length !== AEAD_KEY_SIZE) {
      throw new InvalidArgumentError(
        `"key" expected Uint8Array of length ${AEAD_KEY_SIZE}, got ${key instanceof Uint8Array ? `length=${key.length}` : typeof key}`,
      );
    }
    if (!(base instanceof Uint8Array) || base.length !== NONCE_SIZE) {
      throw new InvalidArgumentError(`"baseNonce" expected Uint8Array of length ${NONCE_SIZE}`);
    }
    if (!Number.isInteger(pageSize) || pageSize <= 0) {
      throw new InvalidArgumentError(`"pageSize" expected a positive integer, got ${String(pageSize)}`);
    }
    const inPage = op === 'seal' ? pageSize : sealedPageSize(pageSize);
    const outPage = op === 'seal' ? sealedPageSize(pageSize) : pageSize;
    const pages = Math.ceil(input.length / inPage);
    const threads = Math.min(this.threads, Math.floor(input.length / Math.max(1, this.minParallelBytes / 2)), pages);
    const engine = this.engine ?? defaultEngine();
    if (threads < 2) {
      const cipher = engine.cipher(key);
      try {
        return runPages(cipher, op, base, counter, input, out, pageSize);
      } finally {
        cipher.dispose();
      }
    }

    // Contiguous page ranges; range 0 stays on this thread.
    const chunksPerPage = Math.ceil(pageSize / CHUNK_SIZE);
    const ranges: { first: number; input: Uint8Array; out: Uint8Array; counter: number }[] = [];
    for (let t = 0; t < threads; t++) {
      const first = Math.floor((pages * t) / threads);
      const end = Math.floor((pages * (t + 1)) / threads);
      const rangeIn = input.subarray(first * inPage, Math.min(input.length, end * inPage));
      const outBytes = op === 'seal' ? sealedSizeOfPages(rangeIn.length, pageSize) : openedSizeOfPages(rangeIn.length, pageSize);
      ranges.push({
        first,
        input: rangeIn,
        out: out.subarray(first * outPage, first * outPage + outBytes),
        counter: counter + first * chunksPerPage,
      });
    }
    const last = ranges[ranges.length - 1];
    if (last && last.out.length < (op === 'seal' ? sealedSizeOfPages(last.input.length, pageSize) : 0)) {
      throw new InvalidArgumentError('"out" is too small');
    }

    const jobs = ranges.slice(1).map((r) => {
      const sharedIn = isShared(r.input) ? r.input : copyToShared(r.input);
      const sharedOut = isShared(r.out) ? r.out : sharedBuffer(r.out.length);
      // Settled into a value at once, so that a rejection is never left unhandled while an earlier job is awaited.
      const done = this.submit({ id: 0, op, base, counter: r.counter, input: sharedIn, out: sharedOut, pageSize }, key).then(
        (n) => ({ n, err: undefined as unknown }),
        (err: unknown) => ({ n: 0, err }),
      );
      return { range: r, sharedIn, sharedOut, done };
    });

    let failure: number | undefined;
    let error: unknown;
    let total = 0;
    try {
      const range0 = ranges[0];
      if (range0) {
        const cipher = engine.cipher(key);
        try {
          total += runPages(cipher, op, base, range0.counter, range0.input, range0.out, pageSize);
        } finally {
          cipher.dispose();
        }
      }
    } catch (err) {
      if (err instanceof PageAuthFailure) failure = err.page;
      else error = err;
    }
    for (const j of jobs) {
      const { n, err } = await j.done;
      if (err !== undefined) {
        error ??= err;
      } else if (n < 0) {
        const page = j.range.counter - n - 1;
        if (failure === undefined || page < failure) failure = page;
      } else {
        total += n;
        if (j.sharedOut !== j.range.out) j.range.out.set(j.sharedOut.subarray(0, n));
      }
      // Scratch copies may hold plaintext: zero them before they go back to the GC.
      if (j.sharedOut !== j.range.out) j.sharedOut.fill(0);
      if (j.sharedIn !== j.range.input) j.sharedIn.fill(0);
    }
    if (error !== undefined) throw error;
    if (failure !== undefined) throw new PageAuthFailure(failure);
    return total;
  }

  private submit(job: Job, key: Uint8Array): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      job.id = this.nextId++;
      this.queue.push({ job, key: Uint8Array.from(key), resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const worker = this.idleWorker();
      if (!worker) return;
      const pending = this.queue.shift() as Pending;
      worker.busy = true;
      worker.keySlot.set(pending.key);
      pending.key.fill(0);
      this.inFlight.set(pending.job.id, { pending, worker });
      // Referenced only while busy: a job in flight keeps the process alive until it answers, an idle pool never does.
      worker.worker.ref();
      worker.worker.postMessage(pending.job);
    }
  }

  private idleWorker(): PoolWorker | undefined {
    const idle = this.workers.find((w) => !w.busy);
    if (idle) return idle;
    if (this.workers.length >= this.workerCount) return undefined;
    const keySlot = new Uint8Array(new SharedArrayBuffer(AEAD_KEY_SIZE));
    const worker = new Worker(POOL_WORKER_SOURCE, { eval: true, workerData: { addonPath: this.addonPath, keySlot: keySlot.buffer } });
    const entry: PoolWorker = { worker, keySlot, busy: false };
    worker.on('message', (msg: { id: number; result?: number; error?: string }) => {
      const flight = this.inFlight.get(msg.id);
      if (!flight) return;
      this.inFlight.delete(msg.id);
      entry.keySlot.fill(0);
      entry.busy = false;
      worker.unref();
      if (msg.error !== undefined) flight.pending.reject(new InvalidArgumentError(`crypto worker: ${msg.error}`));
      else flight.pending.resolve(msg.result as number);
      this.dispatch();
    });
    const fail = (err: Error): void => {
      entry.keySlot.fill(0);
      this.workers = this.workers.filter((w) => w !== entry);
      for (const [id, flight] of this.inFlight) {
        if (flight.worker !== entry) continue;
        this.inFlight.delete(id);
        flight.pending.reject(err);
      }
      if (!this.closed) this.dispatch();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new ClosedError(`crypto worker exited with code ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker again.
    worker.unref();
    this.workers.push(entry);
    return entry;
  }
}

function sealedSizeOfPages(length: number, pageSize: number): number {
  if (length === 0) return TAG_SIZE;
  const full = Math.floor(length / pageSize);
  const rest = length - full * pageSize;
  return full * sealedPageSize(pageSize) + (rest > 0 ? sealedPageSize(rest) : 0);
}

function openedSizeOfPages(length: number, pageSize: number): number {
  const sp = sealedPageSize(pageSize);
  const full = Math.floor(length / sp);
  const rest = length - full * sp;
  // A malformed short page is the cipher's to reject; size it generously.
  return full * pageSize + rest;
}

let shared: CryptoPool | undefined;

/** The process-wide pool, made on first use; its workers never keep the process alive. */
export function defaultPool(): CryptoPool {
  if (!shared || shared.isClosed) shared = new CryptoPool();
  return shared;
}

/** Terminates the process-wide pool's workers (a later call makes a new pool). */
export async function closeDefaultPool(): Promise<void> {
  const pool = shared;
  shared = undefined;
  await pool?.close();
}

export interface ParallelOptions extends SealOptions {
  pool?: CryptoPool;
}

/**
 * `chunked.seal` on every core: the same bytes (salt || commitment || chunks).
 * The result is backed by a SharedArrayBuffer; pass a plaintext that is too
 * ({@link sharedBuffer}) to avoid copying it.
 */
export async function sealParallel(
  key: Uint8Array,
  context: Uint8Array,
  plaintext: Uint8Array,
  options: ParallelOptions = {},
): Promise<Uint8Array> {
  if (!(plaintext instanceof Uint8Array)) throw new InvalidArgumentError(`"plaintext" expected Uint8Array, got ${typeof plaintext}`);
  const pool = options.pool ?? defaultPool();
  const salt = options.salt ?? randomBytes(SALT_SIZE);
  const keys = deriveMessageKeys(key, salt, context);
  try {
    const fullChunks = Math.floor(plaintext.length / CHUNK_SIZE);
    if (fullChunks + 1 > MAX_CHUNKS) throw new LimitExceededError('message exceeds 2^38 chunks');
    const out = sharedBuffer(sealedLength(plaintext.length));
    out.set(salt, 0);
    out.set(keys.commitment, SALT_SIZE);
    let off = MESSAGE_HEADER_SIZE;
    const fullBytes = fullChunks * CHUNK_SIZE;
    if (fullBytes > 0) off += await pool.seal(keys.aeadKey, keys.baseNonce, 0, plaintext.subarray(0, fullBytes), out.subarray(off));
    const cipher = (options.engine ?? defaultEngine()).cipher(keys.aeadKey);
    try {
      off += cipher.seal(keys.baseNonce, fullChunks, plaintext.subarray(fullBytes), out.subarray(off));
    } finally {
      cipher.dispose();
    }
    return out.subarray(0, off);
  } finally {
    keys.aeadKey.fill(0);
    keys.baseNonce.fill(0);
  }
}

/**
 * `chunked.open` on every core, with the same checks and errors: the
 * commitment before any chunk, CorruptDataError with `page` for the first
 * chunk that fails, never partial plaintext.
 */
export async function openParallel(
  key: Uint8Array,
  context: Uint8Array,
  ciphertext: Uint8Array,
  options: ParallelOptions = {},
): Promise<Uint8Array> {
  if (!(ciphertext instanceof Uint8Array)) throw new InvalidArgumentError(`"ciphertext" expected Uint8Array, got ${typeof ciphertext}`);
  if (ciphertext.length < MESSAGE_HEADER_SIZE) {
    throw new CorruptDataError(`sealed message of ${ciphertext.length} bytes is shorter than its header`, { reason: 'truncated' });
  }
  const pool = options.pool ?? defaultPool();
  const keys = deriveMessageKeys(key, ciphertext.subarray(0, SALT_SIZE), context);
  try {
    if (!timingSafeEqual(keys.commitment, ciphertext.subarray(SALT_SIZE, SALT_SIZE + COMMITMENT_SIZE))) {
      throw new CorruptDataError('key commitment mismatch: wrong key, wrong context or a modified header', { reason: 'commitment' });
    }
    const length = messageLength(ciphertext.length);
    if (Math.floor(length / CHUNK_SIZE) + 1 > MAX_CHUNKS)
      throw new CorruptDataError('message exceeds 2^38 chunks', { reason: 'truncated' });
    const out = sharedBuffer(length);
    try {
      await pool.open(keys.aeadKey, keys.baseNonce, 0, ciphertext.subarray(MESSAGE_HEADER_SIZE), out);
    } catch (err) {
      out.fill(0);
      if (err instanceof PageAuthFailure) {
        throw new CorruptDataError('chunk failed to authenticate', { page: err.page, reason: 'auth', cause: err });
      }
      throw err;
    }
    return out;
  } finally {
    keys.aeadKey.fill(0);
    keys.baseNonce.fill(0);
  }
}
