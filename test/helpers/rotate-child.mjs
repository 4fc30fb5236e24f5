// Child process for the rotation crash tests: opens a store's keyring from the
// built package and rotates its KEK; VECTORSEAL_CRASH_AT kills it on the way.
import { KeyManager } from '../../dist/index.js';

const [dir, localKeyDir] = process.argv.slice(2);
const km = await KeyManager.open({ dir, localKeyDir });
const report = await km.rotateKek();
await km.close();
process.stdout.write(JSON.stringify(report));
