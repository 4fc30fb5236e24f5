import { resolve } from 'node:path';
import { openStore, type OpenStoreOptions, type Store } from '../store/store.js';

/**
 * The open stores of this process, by directory, shared by reference count.
 *
 * A store directory has one writer (its LOCK), while host libraries expect to
 * build a vector store, "save" it and `load` it again in the same process:
 * a second open of the same directory shares the store already open instead
 * of failing with VS_STORE_LOCKED. The store closes when its last user
 * releases it. The options of the first open are the ones in effect (the
 * keys were checked then; a later caller's options cannot change them).
 */
interface Entry {
  store: Promise<Store>;
  users: number;
}

const open = new Map<string, Entry>();

/** A handle on a shared open store; `release` closes it with its last user. */
export interface StoreHandle {
  store: Store;
  release(options?: { flush?: boolean }): Promise<void>;
}

/** Opens `options.dir` (or shares the store already open there). */
export async function acquireStore(options: OpenStoreOptions): Promise<StoreHandle> {
  const dir = resolve(options.dir);
  let entry = open.get(dir);
  if (!entry) {
    const store = openStore({ ...options, dir });
    entry = { store, users: 0 };
    open.set(dir, entry);
    store.catch(() => {
      if (open.get(dir) === entry) open.delete(dir);
    });
  }
  entry.users += 1;
  let store: Store;
  try {
    store = await entry.store;
  } catch (err) {
    entry.users -= 1;
    throw err;
  }
  let released = false;
  const e = entry;
  return {
    store,
    async release(opts: { flush?: boolean } = {}): Promise<void> {
      if (released) return;
      released = true;
      e.users -= 1;
      if (e.users > 0) return;
      if (open.get(dir) === e) open.delete(dir);
      await store.close(opts);
    },
  };
}
