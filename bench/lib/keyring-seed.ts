import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { KEYRING_FILE, KeyManager } from '../../src/keys/key-manager.js';
import { readKeyring, writeKeyring, type CollectionKeys } from '../../src/keys/keyring-file.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { newId } from '../../src/util/ids.js';
import { progress, type Log } from './progress.js';

/**
 * A keyring holding `count` collections under one local KEK, made in linear
 * time. KeyManager.addCollection rewrites and fsyncs the whole keyring per
 * call (25 ms each at 1,000 collections and growing: 10,000 would take the
 * better part of an hour), so only the first collection goes through it; its
 * entry is the template for the others, whose DEKs are generated and wrapped
 * by the same local provider under their own (store, collection, version)
 * context, and the keyring is written once with the keyring module's own
 * writer. The result opens, unwraps and rotates like any other.
 */
export interface SeededKeyring {
  dir: string;
  keyDir: string;
  storeId: string;
  collectionIds: string[];
  /** DEKs of a few collections (first, middle, last), to check after rotation that they still unwrap to the same bytes. */
  samples: Map<string, Buffer>;
}

export async function seedKeyring(root: string, count: number, log: Log): Promise<SeededKeyring> {
  const dir = join(root, 'data');
  const keyDir = join(root, 'keys');
  await fs.mkdir(dir, { recursive: true });
  const storeId = newId();
  const keyId = `store-${storeId}`;
  const provider = await LocalKekProvider.init({ keyId, keyDir });
  const km = await KeyManager.create({ dir, storeId, keks: { default: { provider: 'local', keyId, config: { keyDir } } } });
  const first = newId();
  await km.addCollection(first, { name: 'c0' });
  const samples = new Map<string, Buffer>();
  await km.withDek(first, 1, (dek) => void samples.set(first, Buffer.from(dek)));
  await km.close();

  const data = await readKeyring(join(dir, KEYRING_FILE));
  const template = data.collections[first] as CollectionKeys;
  const ids = [first];
  const sampleAt = new Set([count >> 1, count - 1]);
  const p = progress(log, `  seeding ${count} collections`, count);
  for (let i = 1; i < count; i++) {
    const id = newId();
    const generated = await provider.generateDataKey({ storeId, collectionId: id, dekVersion: 1 });
    if (sampleAt.has(i)) samples.set(id, Buffer.from(generated.plaintext));
    generated.plaintext.fill(0);
    const dek = template.deks[0];
    const wrap = dek?.wraps[0];
    if (!dek || !wrap) throw new Error('keyring template has no wrapped DEK');
    data.collections[id] = {
      ...template,
      name: `c${i}`,
      deks: [{ ...dek, wraps: [{ ...wrap, blob: Buffer.from(generated.wrapped.blob).toString('base64'), ...(generated.wrapped.kekVersion === undefined ? {} : { kekVersion: generated.wrapped.kekVersion }) }] }],
    };
    ids.push(id);
    if ((i & 255) === 0) p.tick(i);
  }
  await writeKeyring(join(dir, KEYRING_FILE), data);
  await provider.close();
  p.end();
  return { dir, keyDir, storeId, collectionIds: ids, samples };
}
