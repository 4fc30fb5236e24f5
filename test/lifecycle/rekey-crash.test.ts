import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { collectionDir } from '../../src/store/collection.js';
import { dekVersionsInUse } from '../../src/store/reencrypt.js';
import type { Store } from '../../src/store/index.js';
import { storeDirs, type TestStoreDirs } from '../helpers/store.js';
import { openLifecycleStore } from './helpers.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'rekey-child.mjs');
const vectorOf = (i: number) => Array.from({ length: 8 }, (_, j) => i + j / 8);

interface ChildRun {
  signal: NodeJS.Signals | null;
  code: number | null;
  acks: string[];
  stderr: string;
}

function runChild(d: TestStoreDirs, crashAt?: string): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['VECTORSEAL_CRASH_AT'];
    if (crashAt) env['VECTORSEAL_CRASH_AT'] = crashAt;
    const child = spawn(process.execPath, [CHILD, d.dir, d.keyDir, d.stagingDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, acks: out.split('\n').filter(Boolean), stderr: err }));
  });
}

/** Five flushed segment groups and ten records left in the WAL, all under DEK version 1. */
async function setUp(d: TestStoreDirs): Promise<string[]> {
  const store = await openLifecycleStore(d, { maxSegments: 100 });
  const col = await store.createCollection('c', { dim: 8 });
  const ids: string[] = [];
  for (let g = 0; g < 6; g++) {
    const batch = Array.from({ length: g < 5 ? 20 : 10 }, (_, k) => g * 20 + k).map((i) => ({
      id: `id-${i}`,
      vector: vectorOf(i),
      metadata: { i },
    }));
    await col.upsert(batch);
    ids.push(...batch.map((r) => r.id));
    if (g < 5) await col.flush();
  }
  await store.close({ flush: false });
  return ids;
}

function checkAll(store: Store, ids: string[]): void {
  const col = store.collection('c');
  for (const id of ids) {
    const i = Number(id.slice(3));
    const r = col.get(id);
    expect(r, id).toBeDefined();
    expect(Array.from(r!.vector)).toEqual(vectorOf(i));
    expect(r!.metadata).toEqual({ i });
  }
  const probe = ids[Math.floor(ids.length / 2)]!;
  expect(col.search(vectorOf(Number(probe.slice(3))), 1)[0]!.id).toBe(probe);
}

const POINTS = [
  'rekey:keyring-written',
  'rekey:wal-rotated',
  'reencrypt:wal-retired',
  'reencrypt:file-written#2',
  'reencrypt:group-written#2',
  'manifest:committed#3',
  'reencrypt:group-committed#3',
  'reencrypt:group-done#1',
  'reencrypt:group-done#5',
  'reencrypt:version-destroyed',
];

describe('DEK re-keying with background re-encryption', () => {
  beforeAll(async () => {
    // The child runs the built package: `npm run build` first.
    await fs.access(join(dirname(CHILD), '../../dist/index.js'));
  });

  it('re-encrypts group by group with every record readable between steps, then destroys the old version', async () => {
    const d = storeDirs('vs-life-');
    const ids = await setUp(d);
    const store = await openLifecycleStore(d, { maxSegments: 100 });
    const col = store.collection('c');
    expect(await store.rekey('c')).toBe(2);
    // New writes use the new version at once; old segments still read under theirs.
    await col.upsert({ id: 'id-5000', vector: vectorOf(5000), metadata: { i: 5000 } });
    ids.push('id-5000');
    checkAll(store, ids);
    const seen: string[] = [];
    const report = await store.reencrypt('c', {
      onProgress: (p) => {
        seen.push(`${p.done}/${p.total}`);
        checkAll(store, ids);
      },
    });
    expect(seen).toEqual(['0/5', '1/5', '2/5', '3/5', '4/5', '5/5']);
    expect(report).toEqual({ groups: 5, dekVersion: 2, destroyedVersions: [1] });
    expect(store.keys.collectionKeys(col.info.id).deks.map((x) => [x.version, x.state])).toEqual([
      [1, 'destroyed'],
      [2, 'active'],
    ]);
    expect([...(await dekVersionsInUse(collectionDir(d.dir, col.info.id), store.storeId, col.info.id, []))]).toEqual([2]);
    checkAll(store, ids);
    await store.close();
    const again = await openLifecycleStore(d, { maxSegments: 100 });
    checkAll(again, ids);
  });

  it.each(POINTS)('killed at %s: reopens with every record, resumes to completion, old version destroyed', async (point) => {
    const d = storeDirs('vs-life-');
    const ids = await setUp(d);
    const run = await runChild(d, point);
    expect(run.stderr).toBe('');
    expect(run.signal).toBe('SIGKILL');
    const acked = run.acks.filter((a) => a.startsWith('u ')).map((a) => a.slice(2));
    const all = [...ids, ...acked];

    const store = await openLifecycleStore(d, { maxSegments: 100 });
    const col = store.collection('c');
    checkAll(store, all);
    if (store.keys.activeDekVersion(col.info.id) === 1) await store.rekey('c');
    const report = await store.reencrypt('c', { onProgress: () => checkAll(store, all) });
    expect(report.dekVersion).toBe(2);
    const deks = store.keys.collectionKeys(col.info.id).deks;
    expect(deks.find((x) => x.version === 1)!.state).toBe('destroyed');
    expect([...(await dekVersionsInUse(collectionDir(d.dir, col.info.id), store.storeId, col.info.id, []))]).toEqual([2]);
    const m = store.collection('c').stats();
    expect(m.dekVersion).toBe(2);
    checkAll(store, all);
    await store.close();
    const again = await openLifecycleStore(d, { maxSegments: 100 });
    checkAll(again, all);
  });

  it('runs to completion in a child without a crash', async () => {
    const d = storeDirs('vs-life-');
    await setUp(d);
    const run = await runChild(d);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.acks.filter((a) => a.startsWith('p '))).toEqual(['p 0/5', 'p 1/5', 'p 2/5', 'p 3/5', 'p 4/5', 'p 5/5']);
    expect(run.acks.at(-1)).toBe('done');
  });
});
