// Child for the catalog-recovery test: runs one createCollection or
// dropCollection through the built package while VECTORSEAL_CRASH_AT (set by
// the parent) kills it part-way. Prints "done" if it was not killed.
import { writeSync } from 'node:fs';
import { openStore } from '../../../dist/index.js';

const [dir, keyDir, action, name] = process.argv.slice(2);
const store = await openStore({ dir, keys: { provider: 'local', keyDir } });
if (action === 'create') await store.createCollection(name, { dim: 4 });
else if (action === 'drop') await store.dropCollection(name);
else throw new Error(`unknown action ${action}`);
await store.close();
writeSync(1, 'done\n');
