// Child process for the reader tests: the writer. Holds the store (its LOCK)
// and, until it reads "stop" on stdin (or after a bounded number of
// batches), upserts batches of records, flushes and compacts, printing one
// line per acknowledged step: "u <n>" (records 0..n-1 are durable), "f"
// (a flush committed), "c" (a compaction committed). Records are upserted
// again now and then (superseded copies give compactions work), always with
// the same vector, so a reader can check every one from its index alone.
import { writeSync } from 'node:fs';
import { openStore } from '../../dist/index.js';

const [dir, keyDir, stagingDir] = process.argv.slice(2);
const say = (line) => writeSync(1, `${line}\n`);

/** Vector of record i: distinctive, reproducible from i alone. */
export function vectorOf(i) {
  return Array.from({ length: 8 }, (_, j) => Math.sin(i * 7.3 + j * 1.9) * 10 + j);
}

const keys = { provider: 'local', keyDir };
const store = await openStore({ dir, create: true, keys, maxSegments: 3, autoFlushRecords: 0, ...(stagingDir ? { stagingDir } : {}) });
const col = store.listCollections().some((c) => c.name === 'c') ? store.collection('c') : await store.createCollection('c', { dim: 8 });
// A backup key in the keyring, so that readers can take backups (a reader never writes the keyring).
(await store.keys.systemKey('backup')).release();
say('ready');

let stop = false;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  if (String(d).includes('stop')) stop = true;
});

const MAX_BATCHES = 4000;
let next = 0;
for (let b = 0; b < MAX_BATCHES && !stop; b++) {
  const batch = [];
  for (let k = 0; k < 10; k++, next++) batch.push({ id: `id-${next}`, vector: vectorOf(next), metadata: { i: next } });
  // Every fourth batch also rewrites five older records (same vector and metadata; distinct ids, none of this batch's).
  const older = next - 10;
  if (b % 4 === 3) {
    for (let k = 0; k < 5; k++) {
      const i = (b * 13 + k) % older;
      batch.push({ id: `id-${i}`, vector: vectorOf(i), metadata: { i } });
    }
  }
  await col.upsert(batch);
  say(`u ${next}`);
  if (b % 3 === 2) {
    await col.flush();
    say('f');
  }
  if (b % 10 === 9) {
    await col.compact();
    say('c');
  }
}
await store.close();
say('closed');
process.stdin.destroy();
