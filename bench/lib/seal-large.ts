import { execFile } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { CHUNK_SIZE, SEALED_CHUNK_SIZE, TAG_SIZE, chunkNonce, sealedSize, type ChunkEngine } from '../../src/crypto/engine.js';
import { loadNativeEngine } from '../../src/crypto/native-engine.js';
import { nodeEngine } from '../../src/crypto/node-engine.js';
import type { Log } from './progress.js';
import { median, round } from './stats.js';

const run = promisify(execFile);
const MB = 1e6;

/**
 * Page sealing over a buffer far larger than the caches (64 MiB, 4,096 pages
 * of 16 KiB), so that every page comes from and goes to memory as a segment
 * flush's pages do, unlike a cache-resident set of a few pages. Contenders,
 * each verified against the others before it is timed:
 *   engine     vectorseal's page engine (native addon, or node:crypto without it), one thread
 *   cipheriv   createCipheriv / createDecipheriv per page, with no copy beyond what
 *              node:crypto's update() itself returns (no concatenation)
 *   openssl    `openssl speed -evp aes-256-gcm -bytes 16384` (cache-resident: the
 *              hardware limit, not a like-for-like pass over memory)
 * Each round times one pass of the engine and of createCipheriv over the
 * whole buffer, in rotating order; their ratio is taken per round and
 * reported as the median (paired rounds). openssl runs before and after the
 * rounds (see runSealLarge); its ratio is of medians.
 */
export interface SealLargeResult {
  bytes: number;
  pageSize: number;
  rounds: number;
  engine: string;
  /** MB/s per round, seal and open. */
  seal: { engine: number[]; cipheriv: number[]; openssl: number[] };
  open: { engine: number[]; cipheriv: number[]; openssl: number[] };
  /** Medians of the per-round ratios. */
  ratios: { sealToCipheriv: number; openToCipheriv: number; sealToOpenssl: number | undefined; openToOpenssl: number | undefined };
}

function seconds(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function opensslMBps(decrypt: boolean, pageSize: number): Promise<number | undefined> {
  const args = [
    'speed',
    '-elapsed',
    '-mr',
    '-evp',
    'aes-256-gcm',
    ...(decrypt ? ['-decrypt'] : []),
    '-bytes',
    String(pageSize),
    '-seconds',
    '1',
  ];
  try {
    const { stdout } = await run('openssl', args, { timeout: 30_000 });
    const line = stdout.split('\n').find((l) => l.startsWith('+F:'));
    const v = line ? Number(line.split(':').at(-1)) : NaN;
    return Number.isFinite(v) ? v / MB : undefined;
  } catch {
    return undefined;
  }
}

export async function runSealLarge(options: { bytes?: number; rounds: number; log: Log }): Promise<SealLargeResult> {
  const bytes = options.bytes ?? 64 * 1024 * 1024;
  const pages = bytes / CHUNK_SIZE;
  const engine: ChunkEngine = loadNativeEngine() ?? nodeEngine;
  const key = randomBytes(32);
  const base = randomBytes(12);
  const plain = randomBytes(bytes);
  const sealed = Buffer.alloc(sealedSize(bytes));
  const opened = Buffer.alloc(bytes);
  const cipher = engine.cipher(key);
  const nonce = Buffer.alloc(12);
  // Kept alive as a user's code would keep them (written out, say): no concatenation into one buffer.
  let kept: Buffer[] = [];
  const engineSeal = (): void => {
    cipher.seal(base, 0, plain, sealed);
  };
  const engineOpen = (): void => {
    cipher.open(base, 0, sealed, opened);
  };
  const cipherivSeal = (): void => {
    kept = new Array<Buffer>(pages * 2);
    for (let p = 0; p < pages; p++) {
      const c = createCipheriv('aes-256-gcm', key, chunkNonce(base, p, nonce));
      kept[2 * p] = c.update(plain.subarray(p * CHUNK_SIZE, (p + 1) * CHUNK_SIZE));
      c.final();
      kept[2 * p + 1] = c.getAuthTag();
    }
  };
  const cipherivOpen = (): void => {
    kept = new Array<Buffer>(pages);
    for (let p = 0; p < pages; p++) {
      const at = p * SEALED_CHUNK_SIZE;
      const d = createDecipheriv('aes-256-gcm', key, chunkNonce(base, p, nonce));
      d.setAuthTag(sealed.subarray(at + CHUNK_SIZE, at + SEALED_CHUNK_SIZE));
      kept[p] = d.update(sealed.subarray(at, at + CHUNK_SIZE));
      d.final();
    }
  };
  try {
    // Verify: both contenders agree on every byte, both ways.
    engineSeal();
    cipherivSeal();
    for (let p = 0; p < pages; p += 257) {
      const at = p * SEALED_CHUNK_SIZE;
      const ct = kept[2 * p] as Buffer;
      const tag = kept[2 * p + 1] as Buffer;
      if (!ct.equals(sealed.subarray(at, at + CHUNK_SIZE)) || !tag.equals(sealed.subarray(at + CHUNK_SIZE, at + CHUNK_SIZE + TAG_SIZE))) {
        throw new Error('seal 64 MiB: createCipheriv and the engine disagree; refusing to report');
      }
    }
    engineOpen();
    if (!opened.equals(plain)) throw new Error('seal 64 MiB: the engine does not open its own pages; refusing to report');
    cipherivOpen();
    if (!(kept[pages - 1] as Buffer).equals(plain.subarray(bytes - CHUNK_SIZE)))
      throw new Error('seal 64 MiB: createDecipheriv disagrees; refusing to report');
    kept = [];

    const r: SealLargeResult['seal'] = { engine: [], cipheriv: [], openssl: [] };
    const o: SealLargeResult['open'] = { engine: [], cipheriv: [], openssl: [] };
    const mbps = (s: number): number => round(bytes / MB / s, 0);
    // openssl speed runs in a child process, before the paired rounds and after them, never between: spawning a child
    // forks this process, and the next pass that writes each large buffer then pays a copy-on-write fault per page
    // (measured here: a 64 MiB seal right after any child, even `true`, ran at about 250 MB/s against 2,500-4,000).
    // Its figures are a cache-resident reference, not a paired contender.
    const openssl = async (): Promise<void> => {
      const s = await opensslMBps(false, CHUNK_SIZE);
      const d = await opensslMBps(true, CHUNK_SIZE);
      if (s !== undefined) r.openssl.push(round(s, 0));
      if (d !== undefined) o.openssl.push(round(d, 0));
    };
    await openssl();
    // One unmeasured pass of each contender after the child, so that no timed pass pays the faults.
    engineSeal();
    engineOpen();
    cipherivSeal();
    kept = [];
    cipherivOpen();
    kept = [];
    for (let i = 0; i < options.rounds; i++) {
      const steps: (() => void)[] = [
        () => {
          r.engine.push(mbps(seconds(engineSeal)));
          o.engine.push(mbps(seconds(engineOpen)));
        },
        () => {
          r.cipheriv.push(mbps(seconds(cipherivSeal)));
          kept = [];
          o.cipheriv.push(mbps(seconds(cipherivOpen)));
          kept = [];
        },
      ];
      for (let j = 0; j < steps.length; j++) (steps[(i + j) % steps.length] as () => void)();
      options.log(
        `  seal 64 MiB round ${i + 1}: engine ${r.engine.at(-1)}/${o.engine.at(-1)} MB/s, ` +
          `createCipheriv ${r.cipheriv.at(-1)}/${o.cipheriv.at(-1)} (seal/open)`,
      );
    }
    await openssl();
    options.log(`  openssl speed (before, after the rounds): ${r.openssl.join(', ')} / ${o.openssl.join(', ')} MB/s (seal/open)`);
    const paired = (a: number[], b: number[]): number | undefined =>
      b.length === a.length && a.length > 0 ? round(median(a.map((x, i) => x / (b[i] as number))), 2) : undefined;
    return {
      bytes,
      pageSize: CHUNK_SIZE,
      rounds: options.rounds,
      engine: engine.name,
      seal: r,
      open: o,
      ratios: {
        sealToCipheriv: paired(r.engine, r.cipheriv) ?? 0,
        openToCipheriv: paired(o.engine, o.cipheriv) ?? 0,
        sealToOpenssl: r.openssl.length > 0 ? round(median(r.engine) / median(r.openssl), 2) : undefined,
        openToOpenssl: o.openssl.length > 0 ? round(median(o.engine) / median(o.openssl), 2) : undefined,
      },
    };
  } finally {
    cipher.dispose();
    key.fill(0);
  }
}
