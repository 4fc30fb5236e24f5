// Child process for the crash tests: writes a deterministic sequence of
// upserts, deletes, flushes and a compaction through the built package, and
// prints one line per acknowledged operation ("u <i>", "d <i>", "f", "c").
// VECTORSEAL_CRASH_AT kills it with SIGKILL at a named step.
import { writeSync } from 'node:fs';
import { openStore } from '../../dist/index.js';

const [dir, keyDir, mode, marker, stagingDir] = process.argv.slice(2);
const ack = (line) => writeSync(1, `${line}\n`);

/** Vector of record i: distinctive, reproducible from i alone. */
export function vectorOf(i) {
  return Array.from({ length: 8 }, (_, j) => i + j / 8);
}

const store = await openStore({
  dir,
  create: true,
  keys: { provider: 'local', keyDir },
  maxSegments: 3,
  ...(stagingDir ? { stagingDir } : {}),
});
const col = store.listCollections().some((c) => c.name === 'c') ? store.collection('c') : await store.createCollection('c', { dim: 8 });
const meta = (i) => ({ i, tag: `${marker ?? 'secret'}-${i}` });

/**
 * Vector of record i in the 'grow' sequence: spread over the space. The
 * points of vectorOf lie on one line, where HNSW (built on several threads)
 * now and then misses an exact match among thousands of equidistant
 * neighbours; a few dozen, as in 'sequence', it never does.
 */
export function spreadOf(i) {
  return Array.from({ length: 8 }, (_, j) => Math.fround(Math.sin((i + 1) * (j + 1) * 12.9898) * 43.758));
}

let next = 0;
async function upserts(n, per = 5, vector = vectorOf) {
  for (let b = 0; b < n; b += per) {
    const batch = [];
    for (let k = 0; k < per; k++, next++) batch.push({ id: `id-${next}`, vector: vector(next), metadata: meta(next) });
    await col.upsert(batch);
    for (const r of batch) ack(`u ${r.metadata.i}`);
  }
}
async function del(i) {
  await col.delete([`id-${i}`]);
  ack(`d ${i}`);
}

if (mode === 'sequence') {
  await upserts(20);
  await del(3);
  await col.flush();
  ack('f');
  await upserts(20);
  await del(25);
  await del(4);
  await col.flush();
  ack('f');
  await upserts(10);
  await col.flush();
  ack('f');
  await upserts(10);
  // Masks id-1 in the oldest group: the background compaction of the two newest groups carries this tombstone.
  await del(1);
  await col.flush(); // 4 groups > maxSegments 3: a background compaction merges two
  ack('f');
  await col.whenIdle();
  // A full compaction too: every group into one (its own graph build, files and manifest commit).
  await col.compact();
  ack('c');
  await upserts(10);
  await del(61);
  ack('end');
  // Die with the last writes only in the WAL.
  process.kill(process.pid, 'SIGKILL');
}

if (mode === 'grow') {
  // Memtables large enough for a background graph (memtable-graph.ts: a batch per 1000 waiting records).
  await upserts(2500, 50, spreadOf);
  await col.waitForIndex();
  // Too few for a batch of their own: the flush catches up on them.
  await upserts(50, 50, spreadOf);
  // No record died: this flush takes the grown graph, catching up on the last records.
  await col.flush();
  ack('f');
  await upserts(1500, 50, spreadOf);
  await del(2700);
  // A record died: this flush drops the grown graph (its batch finishes first) and builds one.
  await col.flush();
  ack('f');
  await upserts(1200, 50, spreadOf);
  ack('end');
  process.kill(process.pid, 'SIGKILL');
}
