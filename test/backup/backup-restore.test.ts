import { readRing } from '../helpers/keyring.js';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupStore, restoreBackup, verifyBackup } from '../../src/backup/index.js';
import { openStore } from '../../src/store/index.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { prng, randomVectors } from '../store/helpers.js';
import { bruteForce, listFiles, searchAll } from './helpers.js';

const DIM = 8;

describe('backup and restore', () => {
  it('backs up while a writer runs; the restore holds every acknowledged record, with identical search results', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir, maxSegments: 4 });
    const docs = await store.createCollection('docs', { dim: DIM, space: 'l2' });
    const notes = await store.createCollection('notes', { dim: DIM, space: 'cosine' });
    const vectors = randomVectors(3000, DIM, 7);
    const written = new Map<string, Float32Array>();
    const acked: string[] = [];
    const deleted = new Set<string>();
    let stop = false;
    let n = 0;
    // The writer: upserts in small batches, deletes now and then, flushes every so often.
    const writer = (async () => {
      while (!stop && n < vectors.length) {
        const batch = Array.from({ length: 10 }, () => {
          const i = n++;
          return { id: `r${i}`, vector: vectors[i] as Float32Array, metadata: { i, tag: `t${i % 7}` } };
        });
        const target = batch[0]!.metadata.i % 2 === 0 ? docs : notes;
        await target.upsert(batch);
        for (const b of batch) {
          written.set(b.id, b.vector);
          acked.push(b.id);
        }
        if (n % 200 === 0) {
          deleted.add(`r${n - 15}`);
          await target.delete(`r${n - 15}`);
        }
        if (n % 300 === 0) await target.flush();
        await new Promise((r) => setImmediate(r));
      }
    })();
    while (acked.length < 800) await new Promise((r) => setTimeout(r, 5));

    const backupDir = join(d.root, 'backup');
    const ackedAtStart = new Set(acked);
    const report = await backupStore(store, { to: backupDir });
    const ackedAtEnd = new Set(acked);
    expect(ackedAtEnd.size).toBeGreaterThan(ackedAtStart.size); // the writer really ran during the backup
    stop = true;
    await writer;

    expect(report.snapshot).toBe(1);
    expect(report.collections.map((c) => c.name).sort()).toEqual(['docs', 'notes']);
    const verified = await verifyBackup(backupDir, { withKeys: true, localKeyDir: d.keyDir });
    expect(verified.mac).toBe('verified');
    // WAL files exist only once something was appended after a flush (none are created empty): the cut may hold none.
    expect(verified.opened!.walFiles).toBe(report.collections.reduce((n, c) => n + c.walFiles, 0));

    const restoredDir = join(d.root, 'restored');
    const r = await restoreBackup({ from: backupDir, dir: restoredDir, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    expect(r.storeId).toBe(store.storeId);
    const restored = await openStore({ dir: restoredDir, keys: { provider: 'local', keyDir: d.keyDir }, stagingDir: d.stagingDir });
    try {
      const all = new Map<string, Float32Array>();
      for (const name of ['docs', 'notes']) {
        const c = restored.collection(name);
        for (const id of c.ids()) all.set(id, c.get(id)!.vector);
      }
      // Every record acknowledged before the backup started is there, unchanged (unless the writer deleted it).
      for (const id of ackedAtStart) {
        if (deleted.has(id)) continue;
        expect(all.get(id), id).toEqual(written.get(id));
      }
      // Nothing that was not acknowledged by the end of the backup.
      for (const id of all.keys()) expect(ackedAtEnd.has(id), id).toBe(true);
      // The restore is a prefix of the writer's sequence: a point in time.
      const maxIndex = Math.max(...[...all.keys()].map((id) => Number(id.slice(1))));
      for (let i = 0; i <= maxIndex; i++) if (!all.has(`r${i}`)) expect(deleted.has(`r${i}`), `r${i}`).toBe(true);
      // Search over the restored collection is exact on this small set.
      const docsR = restored.collection('docs');
      const docsSet = new Map(docsR.ids().map((id) => [id, docsR.get(id)!.vector]));
      const queries = randomVectors(20, DIM, 99);
      for (const q of queries) expect(docsR.search(q, 10, { ef: 4000 }).map((h) => h.id)).toEqual(bruteForce(docsSet, q, 10));
    } finally {
      await restored.close({ flush: false });
    }

    // Quiescent: a second (incremental) backup restores to exactly the live store, search results identical.
    const second = await backupStore(store, { to: backupDir });
    expect(second.snapshot).toBe(2);
    const restored2Dir = join(d.root, 'restored2');
    await restoreBackup({ from: backupDir, dir: restored2Dir, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    const again = await openStore({ dir: restored2Dir, keys: { provider: 'local', keyDir: d.keyDir }, stagingDir: d.stagingDir });
    try {
      const queries = randomVectors(50, DIM, 5);
      for (const name of ['docs', 'notes']) {
        const live = store.collection(name);
        const back = again.collection(name);
        expect(back.count).toBe(live.count);
        expect(searchAll(back, queries)).toEqual(searchAll(live, queries));
        expect(back.search(queries[0]!, 5, { filter: { tag: 't3' } })).toEqual(live.search(queries[0]!, 5, { filter: { tag: 't3' } }));
      }
    } finally {
      await again.close({ flush: false });
    }
  });

  it('is incremental: a later backup into the same directory stores only new segments (and the WAL since)', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir });
    const c = await store.createCollection('c', { dim: DIM });
    const v = randomVectors(600, DIM, 3);
    await c.upsert(v.slice(0, 300).map((vector, i) => ({ id: `a${i}`, vector })));
    await c.flush();
    const to = join(d.root, 'b');
    const first = await backupStore(store, { to });
    expect(first.copied).toBeGreaterThanOrEqual(3); // index, vectors, metadata (+ WAL)
    expect(first.reused).toBe(0);
    const objectsAfterFirst = (await listFiles(to)).filter((f) => f.startsWith('objects/'));

    // Nothing changed: nothing new stored but the (empty) WAL file the cut closed.
    const idle = await backupStore(store, { to });
    expect(idle.reused).toBeGreaterThanOrEqual(3);
    expect(idle.copied).toBeLessThanOrEqual(1);

    await c.upsert(v.slice(300).map((vector, i) => ({ id: `b${i}`, vector })));
    await c.flush();
    const third = await backupStore(store, { to });
    const segFiles = third.collections[0]!.segmentFiles;
    expect(segFiles).toBe(6); // two segment groups of three files each
    expect(third.reused).toBeGreaterThanOrEqual(3); // the first group's segments were not copied again
    const objects = (await listFiles(to)).filter((f) => f.startsWith('objects/'));
    for (const o of objectsAfterFirst) expect(objects).toContain(o);
    const newSegs = third.copied - third.collections[0]!.walFiles;
    expect(newSegs).toBeLessThanOrEqual(3);
    expect(third.copiedBytes).toBeLessThan(third.bytes);

    // Every snapshot stays restorable on its own.
    await verifyBackup(to, { withKeys: true, localKeyDir: d.keyDir, snapshot: 1 });
    const old = join(d.root, 'old');
    const r = await restoreBackup({ from: to, dir: old, snapshot: 1, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    expect(r.collections).toEqual([expect.objectContaining({ name: 'c', count: 300 })]);
    const now = join(d.root, 'now');
    const r3 = await restoreBackup({ from: to, dir: now, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    expect(r3.snapshot).toBe(3);
    expect(r3.collections).toEqual([expect.objectContaining({ name: 'c', count: 600 })]);
  });

  it('backs up and restores chosen collections only', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir });
    const a = await store.createCollection('a', { dim: DIM });
    const b = await store.createCollection('b', { dim: DIM });
    const r = prng(4);
    await a.upsert([{ id: 'x', vector: Array.from({ length: DIM }, r) }]);
    await b.upsert([{ id: 'y', vector: Array.from({ length: DIM }, r) }]);
    const to = join(d.root, 'b');
    const rep = await backupStore(store, { to, collections: ['b'] });
    expect(rep.collections.map((c) => c.name)).toEqual(['b']);
    const files = await listFiles(to);
    expect(files.some((f) => f.includes(a.info.id))).toBe(false);
    const out = join(d.root, 'out');
    const res = await restoreBackup({ from: to, dir: out, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    expect(res.collections.map((c) => c.name)).toEqual(['b']);
    const ring = await readRing(out, { localKeyDir: d.keyDir });
    expect(Object.keys(ring.collections)).toEqual([b.info.id]);

    // A full backup restored partially.
    const full = join(d.root, 'full');
    await backupStore(store, { to: full });
    const part = join(d.root, 'part');
    const pr = await restoreBackup({ from: full, dir: part, collections: ['a'], localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    expect(pr.collections.map((c) => [c.name, c.count])).toEqual([['a', 1]]);
  });
});
