// Child for the batch-create crash test: one createCollections call of many
// collections through the built package while VECTORSEAL_CRASH_AT (set by the
// parent) kills it part-way. Prints "done" if it was not killed.
import { writeSync } from 'node:fs';
import { openStore } from '../../dist/index.js';

const [dir, keyDir, count] = process.argv.slice(2);
const store = await openStore({ dir, keys: { provider: 'local', keyDir }, maintainOnOpen: false });
await store.createCollections(Array.from({ length: Number(count) }, (_, i) => ({ name: `b${i}`, dim: 4 })));
await store.close();
writeSync(1, 'done\n');
