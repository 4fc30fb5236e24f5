import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { KEYRING_FILE, KeyManager, type KeyManagerOptions } from '../../src/keys/key-manager.js';
import type { KeyringData } from '../../src/keys/keyring-file.js';
import { applyOps, type KeyringOp } from '../../src/keys/keyring-log.js';

/** The verified keyring state of a store, read-only (needs the store's KEK configuration). */
export async function readRing(dir: string, options: Omit<KeyManagerOptions, 'dir'> = {}): Promise<KeyringData> {
  const km = await KeyManager.open({ dir, file: join(dir, KEYRING_FILE), ...options });
  try {
    return structuredClone(km.keyring) as KeyringData;
  } finally {
    await km.close();
  }
}

/** The keyring's state as its bytes claim, without the MAC key (what an attacker can read). */
export async function claimedRing(dir: string): Promise<KeyringData> {
  const lines = (await fs.readFile(join(dir, KEYRING_FILE), 'utf8')).split('\n').filter((l) => l.length > 0);
  const parse = (l: string) => JSON.parse(`{${l.replace(/^\{"m":"[0-9a-f]{64}",/, '')}`) as { state?: KeyringData; ops?: KeyringOp[] };
  const state = parse(lines[0] as string).state as KeyringData;
  for (const l of lines.slice(1)) applyOps(state, parse(l).ops ?? []);
  return state;
}

/**
 * What an attacker who can write the data directory can do to a keyring:
 * rewrite it as one checkpoint of an edited state, with a MAC they can
 * compute (an unkeyed hash: they do not have the MAC key).
 */
export async function forgeRing(dir: string, edit: (state: KeyringData) => void): Promise<void> {
  const state = await claimedRing(dir);
  edit(state);
  const { generation: _g, ...rest } = state;
  const body = JSON.stringify({ t: 'cp', seq: state.generation + 1, state: rest });
  const mac = createHash('sha256').update(body).digest('hex');
  await fs.writeFile(join(dir, KEYRING_FILE), `{"m":"${mac}",${body.slice(1)}\n`);
}
