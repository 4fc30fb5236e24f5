import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptDataError, UnsupportedOperationError } from '../../src/errors.js';
import { openStore } from '../../src/store/index.js';
import { runCliSync } from '../helpers/cli.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { prng } from './helpers.js';

const N = 4000;
const DIM = 32;

/** A store with one flushed collection of N records and 100 more only in its WAL; returns the collection's directory. */
async function bigStore(d: ReturnType<typeof storeDirs>): Promise<string> {
  const r = prng(3);
  const store = await openTestStore(d, { autoFlushRecords: 0 });
  const c = await store.createCollection('big', { dim: DIM });
  for (let at = 0; at < N; at += 1000) {
    await c.upsert(
      Array.from({ length: 1000 }, (_, i) => ({ id: `r${at + i}`, vector: Array.from({ length: DIM }, r), metadata: { n: at + i } })),
    );
  }
  await c.flush();
  await c.upsert(Array.from({ length: 100 }, (_, i) => ({ id: `w${i}`, vector: Array.from({ length: DIM }, r) })));
  const dir = c.dir;
  await store.close({ flush: false });
  return dir;
}

describe('lazy opening', () => {
  it('info, list, stats and key lifecycle commands read no segment payload and no WAL, and work with both gone', async () => {
    const d = storeDirs();
    const dir = await bigStore(d);
    const opts = { dir: d.dir, keys: { provider: 'local' as const, keyDir: d.keyDir }, autoFlushRecords: 0 };
    // Hidden away: a read of any segment or WAL file would fail.
    await fs.rename(join(dir, 'seg'), join(dir, 'seg.away'));
    await fs.rename(join(dir, 'wal'), join(dir, 'wal.away'));
    // An eager open needs them (so their absence is noticed when they are read).
    await expect(openStore(opts)).rejects.toBeInstanceOf(CorruptDataError);

    const store = await openStore({ ...opts, lazy: true });
    const c = store.collection('big');
    const s = c.stats();
    expect(s).toMatchObject({ name: 'big', loaded: false, count: N, segments: 1, segmentFiles: 3, unflushed: 0 });
    expect(s.segmentBytes).toBeGreaterThan(N * DIM * 4);
    expect(store.listCollections()).toMatchObject([{ name: 'big', count: N }]);
    expect(() => c.search(new Float32Array(DIM), 3)).toThrow(UnsupportedOperationError);
    expect(() => c.get('r1')).toThrow(UnsupportedOperationError);
    const report = await store.rotateKek();
    expect(report.rewrapped).toBeGreaterThan(0);
    await store.close();

    // The CLI's info and collection list open lazily.
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
    const info = runCliSync(['info', '--json'], { env });
    expect(info.status, info.stderr).toBe(0);
    expect((JSON.parse(info.stdout) as { collections: { name: string; count: number; segments: number }[] }).collections).toMatchObject([
      { name: 'big', count: N, segments: 1 },
    ]);
    const list = runCliSync(['collection', 'list', '--json'], { env });
    expect(list.status, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: 'big', count: N }]);
    const rotate = runCliSync(['rotate-kek', '--json'], { env });
    expect(rotate.status, rotate.stderr).toBe(0);

    // The key lifecycle commands need no data either: disabling and enabling a collection, tenants, policies, KEKs.
    for (const args of [
      ['collection', 'disable', 'big'],
      ['collection', 'enable', 'big'],
      ['tenant', 'create', 't1'],
      ['tenant', 'disable', 't1'],
      ['tenant', 'enable', 't1'],
      ['policy', 'set', '--kek-rotation-days', '90'],
      ['kek', 'list'],
    ]) {
      const run = runCliSync([...args, '--json'], { env });
      expect(run.status, `${args.join(' ')}: ${run.stderr}`).toBe(0);
    }
    const enabled = await openStore({ ...opts, lazy: true });
    await enabled.enableCollection('big');
    expect(enabled.collection('big').stats()).toMatchObject({ loaded: false, count: N });
    await enabled.close();

    // Back in place, the data loads on first use: everything is there, the WAL replayed.
    await fs.rename(join(dir, 'seg.away'), join(dir, 'seg'));
    await fs.rename(join(dir, 'wal.away'), join(dir, 'wal'));
    const again = await openStore({ ...opts, lazy: true });
    const c2 = again.collection('big');
    await c2.load();
    expect(c2.stats()).toMatchObject({ loaded: true, count: N + 100, unflushed: 100 });
    expect(c2.search(new Float32Array(DIM), 3)).toHaveLength(3);
    await again.close({ flush: false });

    // An asynchronous operation loads it too, then writes as usual.
    const third = await openStore({ ...opts, lazy: true });
    const c3 = third.collection('big');
    await c3.upsert({ id: 'late', vector: new Float32Array(DIM).fill(0.5) });
    expect(c3.count).toBe(N + 101);
    expect(c3.get('r7')?.metadata).toEqual({ n: 7 });
    await third.close();
  });
});
