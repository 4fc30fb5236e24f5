// Runs with the optional peers unresolvable (see block-optional-peers.mjs):
// the default path (local KEK) must work in full, and each provider that needs
// a missing peer must fail with a typed error naming the package.
import { join } from 'node:path';
import { openStore, Pkcs11KekProvider } from '../../dist/index.js';

const [root] = process.argv.slice(2);
const out = {};
const store = await openStore({ dir: join(root, 'data'), create: true, keys: { provider: 'local', keyDir: join(root, 'keys') } });
const col = await store.createCollection('c', { dim: 3 });
await col.upsert([
  { id: 'a', vector: [1, 0, 0] },
  { id: 'b', vector: [0, 1, 0] },
]);
await col.flush();
await store.rotateKek();
out.local = col.search([1, 0, 0], 1)[0].id;
await store.close();

const errorOf = async (fn) => {
  try {
    await fn();
    return { code: 'none' };
  } catch (err) {
    return { code: err.code, message: err.message };
  }
};
out.awsKms = await errorOf(() =>
  openStore({
    dir: join(root, 'kms-data'),
    create: true,
    keys: { provider: 'aws-kms', keyId: 'alias/x', config: { endpoint: 'http://127.0.0.1:48017', region: 'us-east-1' } },
  }),
);
process.env.VS_TEST_PIN = '1234';
out.pkcs11 = await errorOf(() =>
  Pkcs11KekProvider.init({ module: '/usr/lib/softhsm/libsofthsm2.so', token: 'none', pinEnv: 'VS_TEST_PIN', keyLabel: 'k' }),
);
process.stdout.write(`${JSON.stringify(out)}\n`);
