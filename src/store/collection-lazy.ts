import type { CollectionMemory } from './collection-memory.js';
import { readCheckedManifest } from './collection-manifest.js';
import type { CollectionStats } from './collection-types.js';

/*
 * Lazy opening: a collection whose data is not needed yet (info, list,
 * stats, KEK rotation) reads only its sealed manifest, checked against the
 * catalog and the store state as a full load checks it; no segment payload,
 * HNSW graph, vector or WAL record is read. The first asynchronous operation
 * loads the rest (key-gate.ts admit), and so does Collection.load().
 */

/** Reads and checks the manifest of `s` and marks it as waiting for its load. */
export async function openLazily(s: CollectionMemory): Promise<void> {
  await s.withKeys(async (keyFor) => {
    // An older authentic manifest is a rollback here too: the figures shown must be the current ones.
    const { manifest: m } = await readCheckedManifest(s, keyFor);
    s.manifest = m;
    s.pendingLoad = true;
  });
}

/** What the manifest tells of a collection not loaded yet (see CollectionStats.loaded). */
export function lazyStats(s: CollectionMemory): CollectionStats {
  const groups = s.manifest.groups;
  const files = groups.flatMap((g) => g.files);
  return {
    name: s.info.name,
    id: s.info.id,
    dim: s.info.dim,
    space: s.info.space,
    tenant: s.info.tenant,
    count: groups.reduce((n, g) => n + g.count, 0),
    unflushed: 0,
    segments: groups.length,
    segmentFiles: files.length,
    segmentBytes: files.reduce((n, f) => n + f.length, 0),
    deadRecords: 0,
    generation: s.manifest.generation,
    dekVersion: s.ctx.keys.activeDekVersion(s.info.id),
    loaded: false,
  };
}
