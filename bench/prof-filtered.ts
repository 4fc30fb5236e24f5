import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../src/index.js';
import { bruteForce, makeClusteredDataset } from './lib/clustered.js';
import { makeQueries, vectorOf } from './lib/dataset.js';
import { LeanCollection } from './lib/lean-store.js';
import { percentile } from './lib/stats.js';

const dir = process.env.PROF_DIR ?? '/tmp/i13f/prof';
const mode = process.argv[2] ?? 'all';
const rounds = Number(process.argv[3] ?? 1);
const count = 20_000,
  dim = 768;
const params = { dim, M: 16, efConstruction: 64 };
const d = makeClusteredDataset(count, dim);
const storeOptions = { dir: join(dir, 'store'), keys: { provider: 'local' as const, keyDir: join(dir, 'keys') }, autoFlushRecords: 0 };
if (!existsSync(join(dir, 'lean', 'index.hnsw'))) {
  mkdirSync(join(dir, 'lean'), { recursive: true });
  const store = await openStore({ ...storeOptions, create: true });
  const c = await store.createCollection('bench', { dim, space: 'l2', M: 16, efConstruction: 64 });
  for (let at = 0; at < count; at += 1000) {
    const b: { id: string; vector: Float32Array; metadata: Record<string, unknown> }[] = [];
    for (let i = at; i < at + 1000; i++)
      b.push({ id: d.ids[i] as string, vector: vectorOf(d, i), metadata: d.metadata[i] as Record<string, unknown> });
    await c.upsert(b);
  }
  await c.flush();
  await store.close({ flush: false });
  const l = LeanCollection.empty(params);
  for (let i = 0; i < count; i++) l.add(d.ids[i] as string, vectorOf(d, i), d.metadata[i]);
  await l.flush(join(dir, 'lean'));
  console.log('built');
}
const store = await openStore(storeOptions);
const c = store.collection('bench');
c.search(vectorOf(d, 0), 10);
console.log(JSON.stringify(c.stats()));
const l = await LeanCollection.open(join(dir, 'lean'), params);
const qs = makeQueries(d, 500, 23);
const cases: [
  string,
  (i: number) => Record<string, unknown> | undefined,
  (i: number) => ((m: Record<string, unknown> | undefined) => boolean) | undefined,
][] = [
  ['unfiltered', () => undefined, () => undefined],
  ['1%', (i) => ({ s1: i % 100 }), (i) => (m) => m?.s1 === i % 100],
  ['2%in', (i) => ({ s1: { $in: [i % 100, (i + 1) % 100] } }), (i) => (m) => m?.s1 === i % 100 || m?.s1 === (i + 1) % 100],
  ['10%', (i) => ({ s10: i % 10 }), (i) => (m) => m?.s10 === i % 10],
  ['50%', (i) => ({ s50: i % 2 }), (i) => (m) => m?.s50 === i % 2],
];
for (let r = 0; r < rounds; r++) {
  for (const [name, f, acc] of cases) {
    if (mode !== 'all' && !mode.split(',').includes(name)) continue;
    const a: number[] = [],
      b: number[] = [];
    let rec = 0;
    qs.forEach((q, i) => {
      const filter = f(i);
      const t0 = process.hrtime.bigint();
      const got = c.search(q, 10, { ef: 64, ...(filter ? { filter } : {}) });
      const t1 = process.hrtime.bigint();
      l.search(q, 10, 64, acc(i));
      const t2 = process.hrtime.bigint();
      a.push(Number(t1 - t0) / 1e6);
      b.push(Number(t2 - t1) / 1e6);
      if (i < 50) {
        const ac = acc(i);
        const truth = new Set(bruteForce(d, q, 10, ac ? (j) => ac(d.metadata[j]) : undefined).map((j) => d.ids[j]));
        rec += got.filter((h) => truth.has(h.id)).length / truth.size;
      }
    });
    console.log(
      `${name}: vs p50 ${percentile(a, 50).toFixed(4)} lean p50 ${percentile(b, 50).toFixed(4)} ` +
        `ratio ${(percentile(a, 50) / percentile(b, 50)).toFixed(3)} recall ${(rec / 50).toFixed(4)}`,
    );
  }
}
await store.close({ flush: false });
