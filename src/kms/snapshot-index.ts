import type { KeyRecord, KeyStoreState } from './key-store.js';

/** What the request path derives from one snapshot of the key store. */
export interface SnapshotIndex {
  /** The earliest epoch ms at which a deletion, rotation or import expiry falls due; Infinity when none is scheduled. */
  nextDue: number;
  /** Alias names by target key id, in the snapshot's order. */
  aliasesOf: Map<string, string[]>;
}

/**
 * Per-snapshot indexes, so a request costs the same with ten thousand keys or
 * aliases as with one (the sweep check and a target's alias names otherwise
 * scan every record on every request). Stores replace the snapshot object on
 * every change and never edit one in place, so an index keyed by the snapshot
 * is invalidated by construction: a change, from this node or another, is a
 * new snapshot and gets a new index on its first request.
 */
const indexes = new WeakMap<object, SnapshotIndex>();

/** The index of `state`, built on first use. */
export function snapshotIndex(state: Readonly<KeyStoreState>, due: (key: KeyRecord) => number): SnapshotIndex {
  let index = indexes.get(state);
  if (index === undefined) {
    let nextDue = Infinity;
    for (const key of Object.values(state.keys)) nextDue = Math.min(nextDue, due(key));
    const aliasesOf = new Map<string, string[]>();
    for (const alias of Object.values(state.aliases)) {
      const list = aliasesOf.get(alias.targetKeyId);
      if (list === undefined) aliasesOf.set(alias.targetKeyId, [alias.name]);
      else list.push(alias.name);
    }
    index = { nextDue, aliasesOf };
    indexes.set(state, index);
  }
  return index;
}
