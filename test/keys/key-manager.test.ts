import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptDataError, KeyDestroyedError, NotFoundError, WrongKeyError } from '../../src/errors.js';
import { KEYRING_FILE, KeyManager, type KeyAuditEvent } from '../../src/keys/key-manager.js';
import { forgeRing, readRing } from '../helpers/keyring.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { SegmentKind, readSegment, writeSegment } from '../../src/storage/segment.js';
import { newId } from '../../src/util/ids.js';
import { tempDir } from '../helpers/tmp.js';

async function newStore(root: string, audit?: (e: KeyAuditEvent) => void) {
  const storeId = newId();
  const dir = join(root, 'data');
  const keyDir = join(root, 'keys');
  await fs.mkdir(dir);
  const keyId = `store-${storeId}`;
  await LocalKekProvider.init({ keyId, keyDir });
  const km = await KeyManager.create({
    dir,
    storeId,
    keks: { default: { provider: 'local', keyId, config: { keyDir } } },
    ...(audit ? { audit } : {}),
  });
  return { km, dir, keyDir, keyId, storeId };
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('KeyManager with the local provider', () => {
  it('creates a master key file of mode 0600 in a 0700 directory outside the data directory', async () => {
    const root = tempDir();
    const { keyDir, keyId, dir } = await newStore(root);
    const file = join(keyDir, keyId, 'v1.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(keyDir, keyId)).mode & 0o777).toBe(0o700);
    expect(statSync(file).size).toBe(32);
    expect((await fs.readdir(dir)).sort()).toEqual([KEYRING_FILE]);
  });

  it('creates, caches and unwraps collection DEKs, each 32 random bytes, never stored in plaintext', async () => {
    const root = tempDir();
    const events: KeyAuditEvent[] = [];
    const { km, dir } = await newStore(root, (e) => events.push(e));
    const a = newId();
    const b = newId();
    await km.addCollection(a, { name: 'a' });
    await km.addCollection(b, { name: 'b' });
    const dekA = Buffer.from(await km.withDek(a, 1, (k) => Buffer.from(k)));
    const dekB = Buffer.from(await km.withDek(b, 1, (k) => Buffer.from(k)));
    expect(dekA.length).toBe(32);
    expect(dekA.equals(dekB)).toBe(false);
    const keyring = await fs.readFile(join(dir, KEYRING_FILE));
    expect(keyring.includes(dekA)).toBe(false);
    expect(keyring.includes(Buffer.from(dekA.toString('base64')))).toBe(false);
    expect(keyring.includes(Buffer.from(dekA.toString('hex')))).toBe(false);
    // A reopened manager unwraps to the same key with one provider call.
    await km.close();
    expect(events.filter((e) => e.action === 'generate')).toHaveLength(2);
    const reopened: KeyAuditEvent[] = [];
    const again = await KeyManager.open({ localKeyDir: join(dir, '..', 'keys'), dir, audit: (e) => reopened.push(e) });
    const leases = await Promise.all([again.leaseDek(a, 1), again.leaseDek(a, 1)]);
    for (const l of leases) expect(Buffer.from(l.key).equals(dekA)).toBe(true);
    expect(Buffer.from(await again.withDek(a, 1, (k) => Buffer.from(k))).equals(dekA)).toBe(true);
    for (const l of leases) l.release();
    await again.close();
    // One unwrap for the keyring's own MAC key, one for the DEK (cached after).
    expect(reopened.filter((e) => e.action === 'unwrap')).toEqual([
      expect.objectContaining({ outcome: 'ok', collectionId: 'vectorseal-keyring' }),
      expect.objectContaining({ outcome: 'ok', collectionId: a }),
    ]);
  });

  it('zeroes cached DEKs on eviction', async () => {
    const { km } = await newStore(tempDir());
    const c = newId();
    await km.addCollection(c, { name: 'c' });
    const lease = await km.leaseDek(c, 1);
    const view = lease.key;
    lease.release();
    km.evict();
    expect(Buffer.from(view).equals(Buffer.alloc(32))).toBe(true);
  });

  it('fails to unwrap a wrapped DEK copied to another collection', async () => {
    const { km, dir } = await newStore(tempDir());
    const a = newId();
    const b = newId();
    await km.addCollection(a, { name: 'a' });
    await km.addCollection(b, { name: 'b' });
    await km.close();
    // Copy A's wrapped DEK over B's: the keyring's MAC no longer verifies (the attacker has no MAC key).
    await forgeRing(dir, (data) => {
      const colA = data.collections[a];
      const colB = data.collections[b];
      if (!colA || !colB) throw new Error('missing');
      colB.deks = structuredClone(colA.deks);
    });
    const err = await KeyManager.open({ localKeyDir: join(dir, '..', 'keys'), dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptDataError);
    expect((err as CorruptDataError).file).toBe(join(dir, KEYRING_FILE));
  });

  it('reports a wrong master key as a wrong key, not as corruption', async () => {
    const root = tempDir();
    const { km, dir, keyDir, keyId } = await newStore(root);
    const c = newId();
    await km.addCollection(c, { name: 'c' });
    await km.close();
    await fs.writeFile(join(keyDir, keyId, 'v1.key'), randomBytes(32));
    // The keyring's MAC key is the first thing unwrapped: a wrong master key fails the open.
    const err = await KeyManager.open({ localKeyDir: join(dir, '..', 'keys'), dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrongKeyError);
    expect((err as WrongKeyError).code).toBe('VS_WRONG_KEY');
    // A master key given in the environment that is not the store's: also a wrong key.
    await expect(
      KeyManager.open({
        dir,
        providers: { local: (e) => new LocalKekProvider({ keyId: e.keyId, masterKeys: new Map([[1, randomBytes(32)]]) }) },
      }),
    ).rejects.toBeInstanceOf(WrongKeyError);
  });

  it('names a damaged keyring file', async () => {
    const { km, dir } = await newStore(tempDir());
    await km.addCollection(newId(), { name: 'x' });
    await km.close();
    const file = join(dir, KEYRING_FILE);
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, text.replace('"active"', '"retired"'));
    const err = await KeyManager.open({ localKeyDir: join(dir, '..', 'keys'), dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptDataError);
    expect((err as CorruptDataError).file).toBe(file);
    await fs.writeFile(file, text.slice(0, 100));
    await expect(KeyManager.open({ localKeyDir: join(dir, '..', 'keys'), dir })).rejects.toBeInstanceOf(CorruptDataError);
    await fs.rm(file);
    await expect(KeyManager.open({ localKeyDir: join(dir, '..', 'keys'), dir })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('destroys a collection so that its segments can no longer be opened', async () => {
    const { km } = await newStore(tempDir());
    const c = newId();
    await km.addCollection(c, { name: 'c' });
    await km.destroyCollection(c);
    await expect(km.leaseDek(c, 1)).rejects.toBeInstanceOf(NotFoundError);
    await km.close();
  });
});

describe('KEK rotation', () => {
  it('rewraps every DEK under a new KEK version and leaves data files byte-identical', async () => {
    const root = tempDir();
    const { km, dir, keyDir, keyId, storeId } = await newStore(root);
    const ids = Array.from({ length: 25 }, () => newId());
    const files: string[] = [];
    const deks = new Map<string, Buffer>();
    for (const [i, cid] of ids.entries()) {
      await km.addCollection(cid, { name: `c${i}` });
      const dek = Buffer.from(await km.withDek(cid, 1, (k) => Buffer.from(k)));
      deks.set(cid, dek);
      const file = join(dir, `${cid}.vseg`);
      await writeSegment(
        file,
        { kind: SegmentKind.Vectors, storeId, collectionId: cid, segmentId: 1, dekVersion: 1 },
        dek,
        randomBytes(40000),
      );
      files.push(file);
    }
    const before = await Promise.all(files.map(async (f) => ({ sha: sha(await fs.readFile(f)), mtime: (await fs.stat(f)).mtimeMs })));
    const progress: number[] = [];
    const report = await km.rotateKek({ onProgress: (p) => progress.push(p.done) });
    expect(report).toMatchObject({ fromVersion: '1', toVersion: '2', rewrapped: 25, alreadyCurrent: 0, resumed: false, collections: 25 });
    expect(progress.at(-1)).toBe(25);
    const after = await Promise.all(files.map(async (f) => ({ sha: sha(await fs.readFile(f)), mtime: (await fs.stat(f)).mtimeMs })));
    expect(after).toEqual(before);
    const ring = await readRing(dir, { localKeyDir: keyDir });
    expect(ring.rotation).toBeUndefined();
    expect(ring.keks['default']?.currentVersion).toBe('2');
    for (const c of Object.values(ring.collections)) expect(c.deks[0]?.wraps[0]?.kekVersion).toBe('2');
    // The old KEK version is kept; the data still opens through the new wraps after a reopen.
    expect((await fs.readdir(join(keyDir, keyId))).sort()).toEqual(['v1.key', 'v2.key']);
    await km.close();
    const again = await KeyManager.open({ localKeyDir: join(dir, '..', 'keys'), dir });
    for (const [i, cid] of ids.entries()) {
      const dek = await again.withDek(cid, 1, (k) => Buffer.from(k));
      expect(dek.equals(deks.get(cid) as Buffer)).toBe(true);
      await readSegment(files[i] as string, { storeId, collectionId: cid }, () => dek);
    }
    // Once rewrapped, destroying the old version loses nothing.
    await new LocalKekProvider({ keyId, keyDir }).destroyVersion(1);
    again.evict();
    for (const cid of ids) await again.withDek(cid, 1, () => undefined);
    await again.close();
  });

  it('makes destroyed KEK versions fatal for DEKs still wrapped only under them', async () => {
    const { km, dir, keyDir, keyId } = await newStore(tempDir());
    const c = newId();
    await km.addCollection(c, { name: 'c' });
    await km.close();
    await new LocalKekProvider({ keyId, keyDir }).destroyVersion(1);
    // The keyring MAC key was wrapped under that version too: the keyring itself no longer opens.
    await expect(KeyManager.open({ localKeyDir: join(dir, '..', 'keys'), dir })).rejects.toBeInstanceOf(KeyDestroyedError);
  });
});
