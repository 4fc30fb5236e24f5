import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VectorsealError, openStore, type Store } from '../../src/index.js';
import { recordSection } from './harness/report.js';
import { Rng } from './harness/rng.js';
import { sizes } from './harness/sizes.js';

/**
 * A full disk during a flush and during a KEK rotation: a 4 MiB tmpfs holds
 * the store's data directory (staging stays in /dev/shm, keys elsewhere), a
 * filler file takes the space left but a little, and the operation must fail
 * with a typed error; once the filler is gone the store reopens with every
 * acknowledged record and takes writes again. Needs permission to mount; skipped
 * with a message where there is none.
 */

const root = mkdtempSync(join(tmpdir(), 'vs-rel-disk-'));
const mountPoint = join(root, 'mnt');
const keyDir = join(root, 'keys');
const DIM = 32;
let mounted = false;
const s = sizes();
const tally = {
  cases: 0,
  failedTyped: 0,
  codes: {} as Record<string, number>,
  reopened: 0,
  writableAfter: 0,
  acknowledgedRecords: 0,
  lostAcknowledgedWrites: 0,
  wrongResults: 0,
  skipped: false as boolean | string,
};

beforeAll(() => {
  mkdirSync(mountPoint, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mountPoint], { stdio: 'pipe' });
    mounted = true;
  } catch (err) {
    tally.skipped = `mount failed: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`;
    console.log(`full-disk tests SKIPPED: cannot mount a 4 MiB tmpfs at ${mountPoint} (${tally.skipped}); they need root or CAP_SYS_ADMIN`);
  }
});

afterAll(async () => {
  if (mounted) {
    try {
      execFileSync('umount', [mountPoint], { stdio: 'pipe' });
    } catch {
      // A store a failed case left open keeps the mount busy: detach it anyway.
      execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' });
    }
  }
  await recordSection('disk-full', tally, s);
  rmSync(root, { recursive: true, force: true });
});

/** Fills the file system with a filler file until `leave` bytes (about) are free. */
async function fill(dir: string, leave: number): Promise<string> {
  const file = join(dir, 'filler');
  const fh = await fs.open(file, 'w');
  const chunk = Buffer.alloc(4096, 0xee);
  try {
    for (let i = 0; i < 4096; i++) {
      const st = await fs.statfs(dir);
      if (st.bavail * st.bsize <= leave + chunk.length) break;
      await fh.write(chunk);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return file;
}

type Model = Map<string, number[]>;

async function openOnDisk(dir: string, create = false): Promise<Store> {
  return openStore({ dir, create, keys: { provider: 'local', keyDir }, maxSegments: 100 });
}

function records(r: Rng, prefix: string, n: number): { id: string; vector: number[]; metadata: { n: number; text: string } }[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${i}`,
    vector: Array.from({ length: DIM }, () => (r.int(20001) - 10000) / 64),
    metadata: { n: i, text: 'm'.repeat(40) },
  }));
}

/** Every acknowledged record is there with its vector; returns how many were checked. */
function expectModel(store: Store, model: Model): void {
  const col = store.collection('a');
  expect(col.count).toBe(model.size);
  for (const [id, v] of model) {
    const got = col.get(id);
    if (!got || !Array.from(got.vector).every((x, j) => x === v[j])) {
      tally.lostAcknowledgedWrites++;
      throw new Error(`acknowledged record ${id} lost or changed`);
    }
  }
  tally.acknowledgedRecords += model.size;
  const [firstId, firstVec] = [...model][0] as [string, number[]];
  const top = col.search(firstVec, 1)[0];
  if (top?.id !== firstId) tally.wrongResults++;
  expect(top?.id).toBe(firstId);
}

/** Runs `op` on a store whose disk is full, then frees the space and checks the store. */
async function fullDiskCase(
  name: string,
  leave: number,
  op: (store: Store, model: Model, r: Rng) => Promise<unknown>,
  options: { walFailed?: boolean } = {},
): Promise<void> {
  const dir = join(mountPoint, name);
  const r = new Rng(s.seed ^ name.length);
  const model: Model = new Map();
  let store = await openOnDisk(dir, true);
  const a = await store.createCollection('a', { dim: DIM });
  for (const rec of records(r, 'f', 300)) model.set(rec.id, rec.vector);
  await a.upsert(records(new Rng(s.seed ^ name.length), 'f', 300));
  await a.flush();
  // Unflushed, acknowledged writes sit in the WAL when the disk fills.
  const more = records(r, 'w', 200);
  await a.upsert(more);
  for (const rec of more) model.set(rec.id, rec.vector);
  const filler = await fill(mountPoint, leave);
  tally.cases++;
  let failure: unknown;
  try {
    try {
      await op(store, model, r);
    } catch (err) {
      failure = err;
    }
    expect(failure, `${name}: the operation was expected to fail on a full disk`).toBeDefined();
    if (!(failure instanceof VectorsealError))
      throw new Error(`${name}: untyped failure ${(failure as Error)?.name}: ${(failure as Error)?.message}`);
    tally.failedTyped++;
    tally.codes[failure.code] = (tally.codes[failure.code] ?? 0) + 1;
    await fs.rm(filler);
    const retry = records(r, 'retry', 10);
    if (options.walFailed) {
      // After a failed WAL append the journal refuses further appends to that file (its tail is
      // unknown) until the store is reopened: refused with a typed error, never half-applied.
      const again = await store
        .collection('a')
        .upsert(retry)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(again).toBeInstanceOf(VectorsealError);
    } else {
      // A full disk is often transient: once space is back, the same open store takes writes again.
      await store.collection('a').upsert(retry);
      for (const rec of retry) model.set(rec.id, rec.vector);
      await store.collection('a').flush();
    }
  } finally {
    await store.close({ flush: false }).catch(() => undefined);
    await fs.rm(filler, { force: true });
  }
  store = await openOnDisk(dir);
  try {
    tally.reopened++;
    expectModel(store, model);
    const after = records(r, 'after', 20);
    await store.collection('a').upsert(after);
    for (const rec of after) model.set(rec.id, rec.vector);
    await store.collection('a').flush();
    await store.rotateKek();
    tally.writableAfter++;
  } finally {
    await store.close();
  }
  store = await openOnDisk(dir);
  try {
    expectModel(store, model);
  } finally {
    await store.close();
  }
  await fs.rm(dir, { recursive: true, force: true });
}

describe('resource faults: a full disk', () => {
  for (const [label, leave] of [
    ['no space left', 0],
    ['space for part of the segment', 40 * 1024],
  ] as const) {
    it(`a flush with ${label} fails with a typed error; the store reopens with every acknowledged write and is writable`, {
      timeout: 120_000,
    }, async (ctx) => {
      if (!mounted) return ctx.skip();
      await fullDiskCase(`flush-${leave}`, leave, (store) => store.collection('a').flush());
    });
  }

  for (const [label, leave] of [
    ['no space left', 0],
    ['a few KiB left', 3 * 1024],
  ] as const) {
    it(`a KEK rotation with ${label} fails with a typed error; the store reopens with every acknowledged write and its keys`, {
      timeout: 120_000,
    }, async (ctx) => {
      if (!mounted) return ctx.skip();
      await fullDiskCase(`rotate-${leave}`, leave, async (store) => {
        // Rotate until the disk refuses: a rotation that fits is fine, the one that does not must fail cleanly.
        for (let i = 0; i < 50; i++) await store.rotateKek();
      });
    });
  }

  it('more writes on a full disk fail with a typed error, earlier ones survive', { timeout: 120_000 }, async (ctx) => {
    if (!mounted) return ctx.skip();
    await fullDiskCase(
      'upsert-0',
      0,
      async (store, model, r) => {
        for (let i = 0; i < 50; i++) {
          const batch = records(r, `x${i}-`, 50);
          await store.collection('a').upsert(batch);
          for (const rec of batch) model.set(rec.id, rec.vector);
        }
      },
      { walFailed: true },
    );
  });
});
