// Child process for the re-key crash tests: opens the store through the built
// package, re-keys collection "c", writes a few records under the new DEK
// (printing "u <id>" once each is acknowledged), then re-encrypts the older
// segments. VECTORSEAL_CRASH_AT kills it with SIGKILL at a named step.
import { writeSync } from 'node:fs';
import { openStore } from '../../dist/index.js';

const [dir, keyDir, stagingDir] = process.argv.slice(2);
const ack = (line) => writeSync(1, `${line}\n`);
const vectorOf = (i) => Array.from({ length: 8 }, (_, j) => i + j / 8);

const store = await openStore({ dir, keys: { provider: 'local', keyDir }, stagingDir, maxSegments: 100, principal: 'child' });
const col = store.collection('c');
await store.rekey('c');
ack('rekeyed');
for (let i = 1000; i < 1010; i += 5) {
  const batch = [0, 1, 2, 3, 4].map((k) => ({ id: `id-${i + k}`, vector: vectorOf(i + k), metadata: { i: i + k } }));
  await col.upsert(batch);
  for (const r of batch) ack(`u ${r.id}`);
}
await store.reencrypt('c', { onProgress: (p) => ack(`p ${p.done}/${p.total}`) });
ack('done');
await store.close();
