// Opens a store for writing and reports the outcome: exit 0 and "opened", or
// exit 3 and the error code. With "hold", keeps the store open until killed.
import { openStore } from '../../dist/index.js';

const [dir, keyDir, hold] = process.argv.slice(2);
try {
  const store = await openStore({ dir, keys: { provider: 'local', keyDir } });
  process.stdout.write('opened\n');
  if (hold === 'hold') setInterval(() => undefined, 1000);
  else await store.close();
} catch (err) {
  process.stdout.write(`${err.code}\n`);
  process.exit(3);
}
