import { openStore } from '/work/wt-i12/dist/index.js';
import { rmSync } from 'node:fs';
const root = '/work/wt-i12/.prof/s'; rmSync(root, { recursive: true, force: true });
const s = await openStore({ dir: root + '/data', create: true, keys: { provider: 'local', keyDir: root + '/keys' }, maintainOnOpen: false });
for (let b = 0; b < 3; b++) {
  const t = performance.now();
  await s.createCollections(Array.from({ length: 1000 }, (_, i) => ({ name: `c${b * 1000 + i}`, dim: 8 })));
  console.log('batch', b, ((performance.now() - t) / 1000).toFixed(2), 's', 'rss', (process.memoryUsage().rss / 1e6).toFixed(0), 'MB');
}
let t = performance.now();
const r = await s.rotateKek();
console.log('rotate', ((performance.now() - t) / 1000).toFixed(3), 's', r.rewrapped);
await s.close();
rmSync(root, { recursive: true, force: true });
