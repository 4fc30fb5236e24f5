import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { KeyManager } from '../../src/keys/key-manager.js';
import { readRing } from '../helpers/keyring.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { newId } from '../../src/util/ids.js';
import { tempDir } from '../helpers/tmp.js';

const here = dirname(fileURLToPath(import.meta.url));
const child = join(here, '../helpers/rotate-child.mjs');

/**
 * Every step of a KEK rotation at which a process can die. `#n` is the n-th
 * time the point is reached: the rotation marker is appended to the keyring
 * log, the new KEK version's key file written once, 6 DEKs rewrapped, and the
 * rewrapped keyring written as a new checkpoint.
 */
const CRASH_POINTS = [
  'keyring:appended#1',
  'rotate:marked',
  'atomic:create-temp-written#1', // the new KEK version's key file
  'atomic:create-linked#1',
  'rotate:kek-created',
  'rotate:rewrap-one#1',
  'rotate:rewrap-one#3',
  'rotate:rewrap-one#6',
  'rotate:rewrapped',
  'atomic:temp-written#1',
  'atomic:renamed#1',
  'rotate:committed',
];

describe('KEK rotation killed at every step', () => {
  let template: string;
  let deks: Map<string, Buffer>;

  beforeAll(async () => {
    // The child runs the built package: `npm test` builds first.
    await fs.access(join(here, '../../dist/index.js'));
    template = tempDir('vs-rot-template-');
    const storeId = newId();
    const keyId = `store-${storeId}`;
    const keyDir = join(template, 'keys');
    await fs.mkdir(join(template, 'data'));
    await LocalKekProvider.init({ keyId, keyDir });
    const km = await KeyManager.create({
      dir: join(template, 'data'),
      storeId,
      keks: { default: { provider: 'local', keyId, config: { keyDir } } },
    });
    deks = new Map();
    for (let i = 0; i < 6; i++) {
      const cid = newId();
      await km.addCollection(cid, { name: `c${i}` });
      deks.set(cid, await km.withDek(cid, 1, (k) => Buffer.from(k)));
    }
    await km.close();
  });

  async function checkEveryDek(km: KeyManager): Promise<void> {
    km.evict();
    for (const [cid, dek] of deks) {
      expect((await km.withDek(cid, 1, (k) => Buffer.from(k))).equals(dek), `DEK of ${cid}`).toBe(true);
    }
  }

  it.each(CRASH_POINTS)('killed at %s: no DEK is lost and rotating again completes', async (point) => {
    const root = tempDir('vs-rot-');
    await fs.cp(template, root, { recursive: true });
    // The keyring names no key directory: the caller's (the copy's) is passed to every open.
    const dir = join(root, 'data');
    const localKeyDir = join(root, 'keys');

    const run = spawnSync(process.execPath, [child, dir, localKeyDir], {
      env: { ...process.env, VECTORSEAL_CRASH_AT: point },
      encoding: 'utf8',
    });
    expect(run.signal, `child stderr: ${run.stderr}`).toBe('SIGKILL');

    // The keyring opens, and every DEK unwraps under whichever KEK version it names.
    const km = await KeyManager.open({ dir, localKeyDir });
    await checkEveryDek(km);
    await km.close();

    // Rotating again completes the interrupted rotation (or rotates anew if it had committed).
    const done = spawnSync(process.execPath, [child, dir, localKeyDir], { encoding: 'utf8' });
    expect(done.status, done.stderr).toBe(0);
    const finished = await readRing(dir, { localKeyDir });
    expect(finished.rotation).toBeUndefined();
    const current = finished.keks['default']?.currentVersion;
    for (const col of Object.values(finished.collections)) expect(col.deks[0]?.wraps[0]?.kekVersion).toBe(current);
    const versions = (await fs.readdir(join(root, 'keys', `store-${finished.storeId}`))).filter((n) => n.endsWith('.key'));
    // A resumed rotation reuses the version it created; only a committed one is followed by a fresh rotation.
    const committed = point === 'rotate:committed' || point === 'atomic:renamed#1';
    expect(versions.length).toBe(committed ? 3 : 2);
    const again = await KeyManager.open({ dir, localKeyDir });
    await checkEveryDek(again);
    await again.close();
  });
});
