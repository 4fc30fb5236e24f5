import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { backupStore, restoreBackup } from '../../src/backup/index.js';
import { registerBackupCommands } from '../../src/cli/commands/backup.js';
import { SegmentReader } from '../../src/storage/segment.js';
import { listWalFiles, walFileName } from '../../src/storage/wal.js';
import { openStore } from '../../src/store/index.js';
import type { Metadata } from '../../src/store/metadata.js';
import { runCommands } from '../helpers/cli-in-process.js';
import { openTestStore, storeDirs, type TestStoreDirs } from '../helpers/store.js';
import { prng } from '../store/helpers.js';

const N = 4000;
const DIM = 32;
const TAIL = 100;

type Row = { vector: number[]; metadata: unknown };

/**
 * A store with a flushed collection of N records (two segment groups), then,
 * only in its WAL: TAIL new records, a delete and a metadata update; and a
 * small second collection. Returns what each collection should hold.
 */
async function bigStore(d: TestStoreDirs): Promise<Map<string, Map<string, Row>>> {
  const r = prng(11);
  const want = new Map<string, Map<string, Row>>([
    ['big', new Map()],
    ['small', new Map()],
  ]);
  const store = await openTestStore(d, { autoFlushRecords: 0, stagingDir: d.stagingDir });
  const big = await store.createCollection('big', { dim: DIM });
  const small = await store.createCollection('small', { dim: 4 });
  const put = async (name: string, c: typeof big, rows: { id: string; vector: number[]; metadata?: unknown }[]): Promise<void> => {
    await c.upsert(
      rows.map((x) => ({ id: x.id, vector: x.vector, ...(x.metadata === undefined ? {} : { metadata: x.metadata as Metadata }) })),
    );
    for (const x of rows) want.get(name)!.set(x.id, { vector: x.vector, metadata: x.metadata });
  };
  const vec = (dim: number): number[] => Array.from({ length: dim }, () => Math.fround(r() * 2 - 1));
  for (let at = 0; at < N; at += 1000) {
    await put(
      'big',
      big,
      Array.from({ length: 1000 }, (_, i) => ({ id: `r${at + i}`, vector: vec(DIM), metadata: { n: at + i, tag: `t${(at + i) % 5}` } })),
    );
    if (at === N / 2 - 1000 || at === N - 1000) await big.flush();
  }
  await put('small', small, [{ id: 's1', vector: vec(4) }]);
  await small.flush();
  await put(
    'big',
    big,
    Array.from({ length: TAIL }, (_, i) => ({ id: `w${i}`, vector: vec(DIM) })),
  );
  await big.delete('r5');
  want.get('big')!.delete('r5');
  await big.updateMetadata({ id: 'r6', metadata: { n: -6 } });
  want.get('big')!.get('r6')!.metadata = { n: -6 };
  await put('small', small, [{ id: 's2', vector: vec(4), metadata: { k: 'v' } }]);
  await store.close({ flush: false });
  return want;
}

/** Every record of every collection of the store in `dir`, as plain data. */
async function contents(dir: string, keyDir: string, stagingDir: string): Promise<Map<string, Map<string, Row>>> {
  const s = await openStore({ dir, keys: { provider: 'local', keyDir }, stagingDir });
  try {
    const out = new Map<string, Map<string, Row>>();
    for (const { name } of s.listCollections()) {
      const c = s.collection(name);
      const rows = new Map<string, Row>();
      for (const id of c.ids().sort()) {
        const rec = c.get(id)!;
        rows.set(id, { vector: [...rec.vector], metadata: rec.metadata === undefined ? undefined : structuredClone(rec.metadata) });
      }
      out.set(name, rows);
    }
    return out;
  } finally {
    await s.close({ flush: false });
  }
}

/** Calls that decrypt segment files under a collection's seg/ (SegmentReader.open is the one way a segment is read). */
function watchSegmentReads(): { paths: string[] } {
  const seen = { paths: [] as string[] };
  const real = SegmentReader.open.bind(SegmentReader);
  vi.spyOn(SegmentReader, 'open').mockImplementation((path, ...rest) => {
    if (path.includes('/seg/')) seen.paths.push(path);
    return real(path, ...rest);
  });
  return seen;
}

/** How often each segment file is opened at all (a raw copy opens it once). */
function watchSegmentOpens(): Map<string, number> {
  const counts = new Map<string, number>();
  const real = fs.open.bind(fs);
  vi.spyOn(fs, 'open').mockImplementation((path, ...rest) => {
    const p = String(path);
    if (p.includes('/seg/')) counts.set(p, (counts.get(p) ?? 0) + 1);
    return real(path, ...rest);
  });
  return counts;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('backup of a lazily opened store', () => {
  it('decrypts no segment, leaves the collections unloaded, and restores exactly what an eager backup restores', async () => {
    const d = storeDirs();
    const want = await bigStore(d);
    const opts = { dir: d.dir, keys: { provider: 'local' as const, keyDir: d.keyDir }, autoFlushRecords: 0, stagingDir: d.stagingDir };

    // A torn append after the last whole record (a crash mid-write): a load would cut it off, the cut leaves it out.
    const probe = await openStore({ ...opts, lazy: true });
    const bigDir = probe.collection('big').dir;
    await probe.close();
    const newest = (await listWalFiles(join(bigDir, 'wal'))).at(-1)!;
    const torn = Buffer.alloc(4 + 40);
    torn.writeUInt32BE(500, 0);
    await fs.appendFile(join(bigDir, 'wal', walFileName(newest)), torn);

    const store = await openStore({ ...opts, lazy: true });
    const reads = watchSegmentReads();
    const opens = watchSegmentOpens();
    const lazyDir = join(d.root, 'lazy-backup');
    const report = await backupStore(store, { to: lazyDir });
    expect(report.skipped).toEqual([]);
    expect(report.collections.map((c) => c.name).sort()).toEqual(['big', 'small']);
    expect(report.collections.find((c) => c.name === 'big')).toMatchObject({ segmentFiles: 6 });
    // Nothing decoded: no segment went through the segment reader, the collections are still not loaded.
    expect(reads.paths).toEqual([]);
    for (const name of ['big', 'small']) {
      expect(store.collection(name).awaitsLoad).toBe(true);
      expect(store.collection(name).stats().loaded).toBe(false);
    }
    // Each segment file was opened once, by the copy of its ciphertext.
    expect(opens.size).toBe(report.collections.reduce((n, c) => n + c.segmentFiles, 0));
    for (const [p, n] of opens) expect(n, p).toBe(1);

    // An incremental backup reads no segment file at all: all are stored already (checked by their manifest hash).
    opens.clear();
    const again = await backupStore(store, { to: lazyDir });
    expect(again.reused).toBeGreaterThanOrEqual(8);
    expect(opens.size).toBe(0);
    expect(reads.paths).toEqual([]);
    await store.close();
    vi.restoreAllMocks();

    // The same store backed up the way it was before (every collection loaded).
    const eager = await openStore(opts);
    const eagerDir = join(d.root, 'eager-backup');
    await backupStore(eager, { to: eagerDir });
    await eager.close({ flush: false });

    const fromLazy = join(d.root, 'restored-lazy');
    const fromEager = join(d.root, 'restored-eager');
    await restoreBackup({ from: lazyDir, dir: fromLazy, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    await restoreBackup({ from: eagerDir, dir: fromEager, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    const lazyData = await contents(fromLazy, d.keyDir, d.stagingDir);
    const eagerData = await contents(fromEager, d.keyDir, d.stagingDir);
    expect(lazyData.get('big')!.size).toBe(N - 1 + TAIL);
    expect(lazyData).toEqual(eagerData);
    expect(lazyData).toEqual(want);
    // The WAL-only records are there, the delete and the metadata update applied.
    expect(lazyData.get('big')!.has('w99')).toBe(true);
    expect(lazyData.get('big')!.has('r5')).toBe(false);
    expect(lazyData.get('big')!.get('r6')!.metadata).toEqual({ n: -6 });
  });

  it('writes racing the backup: acknowledged before it are in it, the one admitted during it waits and is not', async () => {
    const d = storeDirs();
    await bigStore(d);
    const store = await openStore({ dir: d.dir, keys: { provider: 'local', keyDir: d.keyDir }, autoFlushRecords: 0, lazy: true });
    const big = store.collection('big');
    const small = store.collection('small');
    // A writer on "small" (its first write loads it) runs before and through the backup.
    const acked: string[] = [];
    let stop = false;
    let i = 0;
    const writer = (async () => {
      while (!stop && i < 5000) {
        const id = `x${i++}`;
        await small.upsert({ id, vector: [1, i, 2, 3] });
        acked.push(id);
        await new Promise((r) => setImmediate(r));
      }
    })();
    while (acked.length < 50) await new Promise((r) => setTimeout(r, 2));
    const ackedAtStart = new Set(acked);
    let late: Promise<void> | undefined;
    const to = join(d.root, 'backup');
    const report = await backupStore(store, {
      to,
      onProgress: () => {
        // Every cut is held by the first file copied: this write loads "big", so it waits for the backup.
        late ??= big.upsert({ id: 'late', vector: new Array<number>(DIM).fill(0.25) });
      },
    });
    const ackedAtEnd = new Set(acked);
    stop = true;
    await writer;
    await late;
    expect(ackedAtEnd.size).toBeGreaterThan(ackedAtStart.size);
    expect(report.collections).toHaveLength(2);
    expect(big.get('late')).toBeDefined();
    expect(big.count).toBe(N - 1 + TAIL + 1);
    await store.close({ flush: false });

    const restored = join(d.root, 'restored');
    await restoreBackup({ from: to, dir: restored, localKeyDir: d.keyDir });
    const data = await contents(restored, d.keyDir, d.stagingDir);
    const smallIds = new Set([...data.get('small')!.keys()].filter((id) => id.startsWith('x')));
    for (const id of ackedAtStart) expect(smallIds.has(id), id).toBe(true);
    for (const id of smallIds) expect(ackedAtEnd.has(id), id).toBe(true);
    // A prefix of the writer's sequence: one point in time.
    const max = Math.max(...[...smallIds].map((id) => Number(id.slice(1))));
    for (let k = 0; k <= max; k++) expect(smallIds.has(`x${k}`), `x${k}`).toBe(true);
    expect(data.get('big')!.has('late')).toBe(false);
    expect(data.get('big')!.size).toBe(N - 1 + TAIL);
  });

  it('`vectorseal backup` opens lazily, as the writer and as a reader beside a running writer', async () => {
    const d = storeDirs();
    const want = await bigStore(d);
    const reads = watchSegmentReads();
    const to = join(d.root, 'cli-backup');
    const args = ['backup', '--dir', d.dir, '--key-dir', d.keyDir, '--staging-dir', d.stagingDir, '--to', to, '--json'];
    // The first backup adds the backup key, so it opens the store for writing (nobody holds it).
    const first = await runCommands(registerBackupCommands, args);
    expect(first.exitCode).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ snapshot: 1, skipped: [] });
    expect(reads.paths).toEqual([]);

    // Later ones read a snapshot beside the writer, which has written more (only in its WAL) meanwhile.
    const writer = await openStore({ dir: d.dir, keys: { provider: 'local', keyDir: d.keyDir }, autoFlushRecords: 0 });
    try {
      await writer.collection('big').upsert({ id: 'more', vector: new Array<number>(DIM).fill(0.5), metadata: { m: 1 } });
      want.get('big')!.set('more', { vector: new Array<number>(DIM).fill(0.5), metadata: { m: 1 } });
      reads.paths.length = 0;
      const second = await runCommands(registerBackupCommands, args);
      expect(second.exitCode).toBe(0);
      expect(JSON.parse(second.stdout)).toMatchObject({ snapshot: 2, skipped: [] });
      expect(reads.paths).toEqual([]);
    } finally {
      await writer.close({ flush: false });
    }
    vi.restoreAllMocks();
    const restored = join(d.root, 'restored');
    await restoreBackup({ from: to, dir: restored, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    expect(await contents(restored, d.keyDir, d.stagingDir)).toEqual(want);
  });
});
