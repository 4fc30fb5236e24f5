import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CorruptDataError, UnsupportedVersionError } from '../errors.js';
import { writeFileAtomic } from '../util/durable.js';
import { emptyState, KeyStore, type KeyStoreState } from './key-store.js';
import type { RootKeyProtector } from './root-key.js';
import { SerialQueue } from '../util/serial-queue.js';

const STATE_FILE = 'kms-state.json';
const STATE_VERSION = 1;

/**
 * The embedded key store for one machine: one JSON file holding key metadata,
 * aliases, grants and root-key-wrapped material, replaced atomically on every
 * change. `mutate` serialises writers in this process. Access keys stay in the
 * configuration file (reloaded on SIGHUP), not here.
 */
export class FileKeyStore extends KeyStore {
  private state: KeyStoreState;
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly file: string,
    protector: RootKeyProtector,
    state: KeyStoreState,
  ) {
    super(protector);
    this.state = state;
  }

  /** Loads the state from `dataDir`, or starts empty. */
  static async open(dataDir: string, protector: RootKeyProtector): Promise<FileKeyStore> {
    const file = join(dataDir, STATE_FILE);
    const state = emptyState();
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as { version?: number } & Partial<KeyStoreState>;
      if (parsed.version !== STATE_VERSION) {
        throw new UnsupportedVersionError(`key service state ${file} has version ${String(parsed.version)}, expected ${STATE_VERSION}`);
      }
      if (typeof parsed.keys !== 'object' || typeof parsed.aliases !== 'object' || !parsed.keys || !parsed.aliases) {
        throw new CorruptDataError('key service state is malformed', { file, reason: 'header' });
      }
      if (parsed.grants !== undefined && (typeof parsed.grants !== 'object' || parsed.grants === null)) {
        throw new CorruptDataError('key service state is malformed', { file, reason: 'header' });
      }
      // Records are copied into prototype-less maps so an own "__proto__" id stays a plain entry.
      Object.assign(state.keys, parsed.keys);
      Object.assign(state.aliases, parsed.aliases);
      Object.assign(state.grants, parsed.grants ?? {});
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        if (err instanceof SyntaxError)
          throw new CorruptDataError('key service state is not valid JSON', { file, reason: 'header', cause: err });
        throw err;
      }
    }
    return new FileKeyStore(file, protector, state);
  }

  get snapshot(): Readonly<KeyStoreState> {
    return this.state;
  }

  mutate<T>(change: (draft: KeyStoreState) => T | Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const draft = cloneState(this.state);
      const result = await change(draft);
      const body = JSON.stringify({ version: STATE_VERSION, keys: draft.keys, aliases: draft.aliases, grants: draft.grants });
      await writeFileAtomic(this.file, Buffer.from(body, 'utf8'));
      this.state = draft;
      this.published();
      return result;
    };
    return this.queue.run(run);
  }
}

/** A deep copy that keeps the maps prototype-less. */
export function cloneState(state: Readonly<KeyStoreState>): KeyStoreState {
  const out = emptyState();
  for (const name of ['keys', 'aliases', 'grants', 'principals'] as const) {
    for (const [k, v] of Object.entries(state[name])) (out[name] as Record<string, unknown>)[k] = structuredClone(v);
  }
  return out;
}
