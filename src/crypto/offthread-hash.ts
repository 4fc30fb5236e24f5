import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { copyToShared } from './pool.js';

/*
 * SHA-256 of a large segment file, computed on a worker thread while the
 * calling thread seals or opens the same bytes. A segment's hash (pinned by
 * the manifest) costs as much as its decryption; on the caller's thread the
 * two ran one after the other. The bytes are handed over in place, in
 * SharedArrayBuffer-backed buffers (no copy); the caller leaves each buffer
 * unchanged until its update resolves. What the worker sees is ciphertext
 * (and the plaintext segment header): no key and no plaintext record crosses.
 */

/** An incremental SHA-256 whose updates may run elsewhere. */
export interface SegmentHash {
  /** Adds `bytes` (in order with earlier updates); resolves once they are hashed, after which the caller may reuse them. */
  update(bytes: Uint8Array): Promise<void>;
  /** The hex digest of everything added. */
  digest(): Promise<string>;
}

/** Files smaller than this are hashed on the caller's thread: the hand-over would cost more than it saves. */
export const OFFTHREAD_MIN_BYTES = 8 * 1024 * 1024;

const WORKER_SOURCE = String.raw`
'use strict';
Promise.all([import('node:worker_threads'), import('node:crypto')]).then(([threads, nodeCrypto]) => {
  const hashes = new Map();
  threads.parentPort.on('message', (m) => {
    try {
      if (m.op === 'update') {
        let h = hashes.get(m.id);
        if (!h) {
          h = nodeCrypto.createHash('sha256');
          hashes.set(m.id, h);
        }
        h.update(new Uint8Array(m.buffer, m.offset, m.length));
        threads.parentPort.postMessage({ id: m.id });
      } else if (m.op === 'digest') {
        const h = hashes.get(m.id) ?? nodeCrypto.createHash('sha256');
        hashes.delete(m.id);
        threads.parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
      }
    } catch (err) {
      hashes.delete(m.id);
      threads.parentPort.postMessage({ id: m.id, error: String(err && err.message) });
    }
  });
});
`;

type Waiter = { resolve: (hex: string | undefined) => void; reject: (err: Error) => void };

/** The one hashing worker of the process: started on first use, never keeping the process alive. */
class HashWorker {
  private readonly worker: Worker;
  /** Per hash, the replies awaited, in the order the messages were posted (the worker answers in order). */
  private readonly waiting = new Map<number, Waiter[]>();
  private outstanding = 0;
  failed: Error | undefined;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.unref();
    this.worker.on('message', (m: { id: number; hex?: string; error?: string }) => {
      const w = this.waiting.get(m.id)?.shift();
      if (!w) return;
      this.settle();
      if (m.error !== undefined) w.reject(new Error(`hash worker: ${m.error}`));
      else w.resolve(m.hex);
    });
    const fail = (err: Error): void => {
      this.failed = err;
      for (const list of this.waiting.values()) for (const w of list.splice(0)) w.reject(err);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', () => fail(this.failed ?? new Error('hash worker exited')));
  }

  post(id: number, message: object): Promise<string | undefined> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      let list = this.waiting.get(id);
      if (!list) {
        list = [];
        this.waiting.set(id, list);
      }
      list.push({ resolve, reject });
      // Referenced while a reply is awaited: a caller awaiting it must not see the process exit under it.
      if (this.outstanding++ === 0) this.worker.ref();
      this.worker.postMessage({ id, ...message });
    });
  }

  forget(id: number): void {
    this.waiting.delete(id);
  }

  private settle(): void {
    if (--this.outstanding === 0) this.worker.unref();
  }
}

let shared: HashWorker | undefined;
let nextId = 1;

class WorkerHash implements SegmentHash {
  private readonly id = nextId++;
  private done = false;

  constructor(private readonly worker: HashWorker) {}

  async update(bytes: Uint8Array): Promise<void> {
    // A buffer of the caller's own (a header) is copied into shared memory: only shared memory crosses in place.
    const view = bytes.buffer instanceof SharedArrayBuffer ? bytes : copyToShared(bytes);
    await this.worker.post(this.id, { op: 'update', buffer: view.buffer, offset: view.byteOffset, length: view.byteLength });
  }

  async digest(): Promise<string> {
    if (this.done) throw new Error('digest already taken');
    this.done = true;
    try {
      return (await this.worker.post(this.id, { op: 'digest' })) as string;
    } finally {
      this.worker.forget(this.id);
    }
  }
}

class LocalHash implements SegmentHash {
  private readonly hash: Hash = createHash('sha256');

  async update(bytes: Uint8Array): Promise<void> {
    this.hash.update(bytes);
  }

  async digest(): Promise<string> {
    return this.hash.digest('hex');
  }
}

/**
 * A SHA-256 for a file of `bytes`: on the hashing worker when the file is
 * large (its updates should then be SharedArrayBuffer-backed, see
 * pool.ts sharedBuffer), else on the caller's thread. Where the worker
 * cannot start, the caller's thread hashes.
 */
export function segmentHash(bytes: number): SegmentHash {
  if (bytes < OFFTHREAD_MIN_BYTES) return new LocalHash();
  try {
    if (!shared || shared.failed) shared = new HashWorker();
    return new WorkerHash(shared);
  } catch {
    return new LocalHash();
  }
}
