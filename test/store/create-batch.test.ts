import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { storeDirs } from '../helpers/store.js';

/**
 * createCollections over more collections than one group (256) of the
 * batched file creation (src/store/create-batch.ts): every collection is
 * there and usable after a reopen, STATE is written a bounded number of
 * times per call (not once per few collections), and a create killed
 * part-way leaves a store whose catalog, keys and files agree.
 */

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, 'create-batch-child.mjs');
const COUNT = 300;

/** The generation STATE's body records (its first line is the JSON body; the MAC follows). */
async function stateGeneration(dir: string): Promise<number> {
  const text = await fs.readFile(join(dir, 'STATE'), 'utf8');
  return (JSON.parse(text.slice(0, text.indexOf('\n'))) as { generation: number }).generation;
}

/** Every collection with live keys is in the catalog and the reverse, each is open and empty, and a sample takes a write. */
async function consistent(store: Store): Promise<number> {
  const live = Object.entries(store.keys.keyring.collections)
    .filter(([, c]) => c.deks.some((d) => d.state !== 'destroyed'))
    .map(([id]) => id)
    .sort();
  const listed = store.listCollections();
  expect(live).toEqual(listed.map((c) => c.id).sort());
  for (const [i, c] of listed.entries()) {
    const col = store.collection(c.name);
    expect(col.isLoaded).toBe(true);
    // A write costs a WAL file (and a STATE write) each: a sample, the first and last included.
    if (i % 50 !== 0 && i !== listed.length - 1) continue;
    await col.upsert({ id: 'x', vector: [1, 2, 3, 4] });
    expect(col.get('x')).toBeTruthy();
  }
  return listed.length;
}

describe('createCollections in groups', () => {
  const d = storeDirs();
  const options = () => ({ dir: d.dir, keys: { provider: 'local' as const, keyDir: d.keyDir }, maintainOnOpen: false });

  it(`creates ${COUNT} collections in one call with a bounded number of STATE writes; all reopen and take writes`, async () => {
    const store = await openStore({ ...options(), create: true });
    await store.createCollection('first', { dim: 4 });
    const before = await stateGeneration(d.dir);
    const made = await store.createCollections(Array.from({ length: COUNT }, (_, i) => ({ name: `b${i}`, dim: 4 })));
    const writes = (await stateGeneration(d.dir)) - before;
    expect(made.map((c) => c.name)).toEqual(Array.from({ length: COUNT }, (_, i) => `b${i}`));
    // Two CATALOG announcements and one STATE write per group of 256 (two groups): not one per collection.
    expect(writes).toBeGreaterThanOrEqual(4);
    expect(writes).toBeLessThanOrEqual(6);
    for (const c of made) {
      const dir = join(d.dir, 'collections', c.info.id);
      expect((await fs.readdir(dir)).sort()).toEqual(['MANIFEST', 'seg', 'wal']);
    }
    await store.close();

    const again = await openStore(options());
    try {
      expect(await consistent(again)).toBe(COUNT + 1);
    } finally {
      await again.close();
    }
  });

  describe('killed part-way (SIGKILL at named points)', () => {
    beforeAll(async () => {
      // The child runs the built package: `npm run build` first.
      await fs.access(join(here, '../../dist/index.js'));
    });

    for (const point of ['create:catalog-marked', 'manifest:committed#100', 'manifest:committed#280', 'create:files-written']) {
      it(`at ${point}: the next open finishes or undoes each collection of the batch, and the store is consistent`, {
        timeout: 120_000,
      }, async () => {
        const dir = join(d.root, 'case');
        const s = await openStore({ ...options(), dir, create: true });
        await s.createCollection('first', { dim: 4 });
        await s.close();
        const r = spawnSync(process.execPath, [CHILD, dir, d.keyDir, String(COUNT)], {
          env: { ...process.env, VECTORSEAL_CRASH_AT: point },
          encoding: 'utf8',
          timeout: 100_000,
        });
        expect(r.stderr).toBe('');
        expect(r.signal).toBe('SIGKILL');
        const store = await openStore({ ...options(), dir });
        try {
          const n = await consistent(store);
          if (point === 'create:catalog-marked') expect(n).toBe(1);
          else if (point === 'create:files-written') expect(n).toBe(COUNT + 1);
          else expect(n).toBeGreaterThanOrEqual(1);
        } finally {
          await store.close();
        }
        // The repaired store opens again as it is.
        const again = await openStore({ ...options(), dir });
        await again.close();
      });
    }
  });
});
