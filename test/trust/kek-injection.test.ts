import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptDataError, KekNotConfiguredError, KeyDestroyedError, VectorsealError } from '../../src/errors.js';
import { Keyring } from '../../src/keys/keyring.js';
import type { KeyringData, StoredWrap } from '../../src/keys/keyring-file.js';
import { KEYRING_FILE } from '../../src/keys/keyring-log.js';
import { macKeyContext, toStored } from '../../src/keys/keyring-mac-key.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { openStore, type Store } from '../../src/store/index.js';
import { claimedRing, forgeRing } from '../helpers/keyring.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * An attacker who can write the data directory, and nothing else, tries to
 * make the store trust a KEK of their choosing: their own local key
 * directory, their own PKCS#11 module, their own KMS endpoint. Each planted
 * keyring is self-consistent (MACed under a key the attacker made); none of
 * the planted KEKs is contacted, and the open ends in a typed error.
 */

const opened: Store[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close({ flush: false }).catch(() => undefined);
});

async function victim(root: string): Promise<{ dir: string; keyDir: string; storeId: string; disabledId: string }> {
  const dir = join(root, 'data');
  const keyDir = join(root, 'keys');
  const s = await openStore({ dir, create: true, keys: { provider: 'local', keyDir }, maintainOnOpen: false });
  const c = await s.createCollection('docs', { dim: 4 });
  await c.upsert([{ id: 'a', vector: [1, 0, 0, 0], metadata: { secret: 'top' } }]);
  const paused = await s.createCollection('paused', { dim: 4 });
  await s.disableCollection('paused');
  const out = { dir, keyDir, storeId: s.storeId, disabledId: paused.info.id };
  await s.close();
  return out;
}

/**
 * Writes a keyring that says exactly what the attacker wants, MACed under an
 * attacker MAC key wrapped under the attacker's KEK (`wrap`), the way 0.1.0
 * keyrings recorded provider settings (`config`).
 */
async function plant(
  dir: string,
  kek: { name: string; provider: string; keyId: string; config: Record<string, string> },
  wrap: StoredWrap,
): Promise<void> {
  const state = (await claimedRing(dir)) as KeyringData & { keks: Record<string, unknown> };
  (state.keks as Record<string, unknown>)[kek.name] = {
    provider: kek.provider,
    keyId: kek.keyId,
    config: kek.config,
    createdAt: new Date().toISOString(),
  };
  state.defaultKeks = [kek.name];
  for (const col of Object.values(state.collections)) col.keks = [kek.name, ...col.keks];
  state.macKey = [wrap];
  const macKey = randomBytes(32);
  await fs.rm(join(dir, KEYRING_FILE));
  await (await Keyring.create(dir, state, macKey)).close();
}

function expectTyped(err: unknown): void {
  expect(err).toBeInstanceOf(VectorsealError);
  expect((err as VectorsealError).code).toMatch(/^VS_/);
}

describe('KEK injection through the data directory', () => {
  it('a local KEK whose key directory the attacker planted in the data directory is never used', async () => {
    const v = await victim(tempDir('vs-inject-local-'));
    // The attacker's own key, inside the data directory they control, and a keyring whose MAC key is wrapped under it.
    const evilDir = join(v.dir, 'evil-keys');
    const evil = await LocalKekProvider.init({ keyId: 'evil', keyDir: evilDir });
    const macKey = randomBytes(32);
    const wrap = toStored('evil', await evil.wrap(macKey, macKeyContext(v.storeId)));
    await plant(v.dir, { name: 'evil', provider: 'local', keyId: 'evil', config: { keyDir: evilDir } }, wrap);
    // Made under the attacker's key with their MAC key, so with 0.1.0's rules it would verify.
    const state = await claimedRing(v.dir);
    expect(state.defaultKeks).toEqual(['evil']);
    const err = await openStore({ dir: v.dir, keys: { provider: 'local', keyDir: v.keyDir }, maintainOnOpen: false }).catch(
      (e: unknown) => e,
    );
    // The local key id is looked up in the caller's key directory only, where there is no such key.
    expectTyped(err);
    expect(err).toBeInstanceOf(KeyDestroyedError);
    expect(String((err as Error).message)).not.toContain(evilDir);
  });

  it('a PKCS#11 module path planted in the keyring is never loaded: the marker its constructor writes stays absent', async () => {
    const root = tempDir('vs-inject-p11-');
    const v = await victim(root);
    const marker = join(root, 'planted-module-was-loaded');
    const src = join(root, 'planted.c');
    const so = join(v.dir, 'planted.so');
    writeFileSync(
      src,
      `#include <stdio.h>\n__attribute__((constructor)) static void planted(void) ` +
        `{ FILE *f = fopen(${JSON.stringify(marker)}, "w"); if (f) { fputs("loaded", f); fclose(f); } }\n`,
    );
    execFileSync('gcc', ['-shared', '-fPIC', '-o', so, src]);
    await plant(
      v.dir,
      { name: 'hsm', provider: 'pkcs11', keyId: 'store-kek', config: { module: so, token: 'any', pinEnv: 'PATH' } },
      {
        kek: 'hsm',
        provider: 'pkcs11',
        keyId: 'store-kek',
        kekVersion: '1',
        blob: randomBytes(81).toString('base64'),
      },
    );
    const err = await openStore({ dir: v.dir, keys: { provider: 'local', keyDir: v.keyDir }, maintainOnOpen: false }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KekNotConfiguredError);
    expect(existsSync(marker)).toBe(false);
    // The control: the planted library does write the marker when something loads it.
    expect(() => process.dlopen({ exports: {} } as NodeJS.Module, so)).toThrow();
    expect(existsSync(marker)).toBe(true);
  });

  it('an AWS KMS endpoint planted in the keyring is never contacted', async () => {
    const v = await victim(tempDir('vs-inject-kms-'));
    let connections = 0;
    const server: Server = createServer((sock) => {
      connections += 1;
      sock.destroy();
    });
    await new Promise<void>((r) => server.listen(45017, '127.0.0.1', r));
    try {
      const arn = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000';
      await plant(
        v.dir,
        { name: 'kms', provider: 'aws-kms', keyId: arn, config: { endpoint: 'http://127.0.0.1:45017', region: 'us-east-1' } },
        {
          kek: 'kms',
          provider: 'aws-kms',
          keyId: arn,
          blob: randomBytes(64).toString('base64'),
        },
      );
      const err = await openStore({ dir: v.dir, keys: { provider: 'local', keyDir: v.keyDir }, maintainOnOpen: false }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KekNotConfiguredError);
      // Even when the caller does use that KMS key, the endpoint is the caller's, not the keyring's.
      const err2 = await openStore({
        dir: v.dir,
        keys: { provider: 'local', keyDir: v.keyDir },
        keks: { kms: { provider: 'aws-kms', keyId: arn, config: { endpoint: 'http://127.0.0.1:45018', region: 'us-east-1' } } },
        maintainOnOpen: false,
      }).catch((e: unknown) => e);
      expectTyped(err2);
      expect(connections).toBe(0);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('an edited keyring', () => {
  it('re-enabling a disabled collection is a CorruptDataError naming KEYRING', async () => {
    const v = await victim(tempDir('vs-edit-'));
    await forgeRing(v.dir, (state) => {
      const c = state.collections[v.disabledId];
      if (!c) throw new Error('no disabled collection');
      delete c.disabled;
    });
    const err = await openStore({ dir: v.dir, keys: { provider: 'local', keyDir: v.keyDir }, maintainOnOpen: false }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CorruptDataError);
    expect((err as CorruptDataError).file).toBe(join(v.dir, KEYRING_FILE));
    expect((err as CorruptDataError).message).toContain('KEYRING');
  });

  it('any edited, dropped or reordered record is detected; a torn last record is dropped', async () => {
    const v = await victim(tempDir('vs-log-'));
    const file = join(v.dir, KEYRING_FILE);
    const good = await fs.readFile(file, 'utf8');
    const lines = good.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(3);
    const open = () => openStore({ dir: v.dir, keys: { provider: 'local', keyDir: v.keyDir }, maintainOnOpen: false });
    const variants: [string, string][] = [
      ['a middle record dropped', [...lines.slice(0, 1), ...lines.slice(2)].join('\n') + '\n'],
      ['two records swapped', [lines[0], lines[2], lines[1], ...lines.slice(3)].join('\n') + '\n'],
      ['a byte of a record changed', good.replace('"disabled":true', '"disabled":fals')],
      ['garbage between records', [lines[0], 'x', ...lines.slice(1)].join('\n') + '\n'],
    ];
    for (const [what, text] of variants) {
      await fs.writeFile(file, text);
      const err = await open().catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(CorruptDataError);
      expect((err as CorruptDataError).file, what).toBe(file);
    }
    // A crash mid-append leaves a torn last line: dropped, and the store opens with what was committed before it.
    await fs.writeFile(file, `${good}{"m":"00`);
    const s = await open();
    opened.push(s);
    expect(
      s
        .listCollections()
        .map((c) => c.name)
        .sort(),
    ).toEqual(['docs', 'paused']);
    // The next change cuts the torn line off before appending.
    await s.createCollection('after', { dim: 4 });
    await s.close();
    const again = await open();
    opened.push(again);
    expect(
      again
        .listCollections()
        .map((c) => c.name)
        .sort(),
    ).toEqual(['after', 'docs', 'paused']);
  });

  it('with several KEKs, any one of them verifies the keyring', async () => {
    const root = tempDir('vs-two-');
    const v = await victim(root);
    const escrowDir = join(root, 'escrow');
    const s = await openStore({ dir: v.dir, keys: { provider: 'local', keyDir: v.keyDir }, maintainOnOpen: false });
    await LocalKekProvider.init({ keyId: 'escrow', keyDir: escrowDir });
    await s.keys.addKek('escrow', { provider: 'local', keyId: 'escrow', config: { keyDir: escrowDir } });
    await s.keys.attachKek('escrow');
    await s.close();
    await fs.rm(join(v.keyDir, `store-${v.storeId}`), { recursive: true });
    const again = await openStore({
      dir: v.dir,
      keys: { provider: 'local', keyDir: v.keyDir },
      keks: { escrow: { provider: 'local', keyId: 'escrow', config: { keyDir: escrowDir } } },
      maintainOnOpen: false,
    });
    opened.push(again);
    expect((await again.collection('docs').get('a'))?.metadata).toEqual({ secret: 'top' });
  });
});
