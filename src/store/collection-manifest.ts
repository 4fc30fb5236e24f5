import { join } from 'node:path';
import { CorruptDataError } from '../errors.js';
import { readManifest, type ManifestData } from '../storage/manifest.js';
import type { DekLookup } from '../storage/segment.js';
import type { CollectionMemory } from './collection-memory.js';
import { STATE_FILE, checkManifestState, type CollectionState, type WalSeal } from './state.js';

/** A collection's sealed manifest, checked against its catalog entry and the store state. */
export interface CheckedManifest {
  manifest: ManifestData;
  manifestFile: string;
  /** The store state's entry for the collection. */
  entry: CollectionState | undefined;
  /** The WAL seals the state records for it (see checkManifestState). */
  seals: Map<number, WalSeal>;
}

/**
 * Reads the manifest of `s` and checks it the one way both a full load and a
 * lazy open need: its name and parameters are the catalog's, and it is the
 * manifest the store state records or announced (an older authentic copy is
 * a rollback).
 */
export async function readCheckedManifest(s: CollectionMemory, keyFor: DekLookup): Promise<CheckedManifest> {
  const manifest = await readManifest(s.dir, s.ctx.storeId, s.info.id, keyFor);
  const manifestFile = join(s.dir, 'MANIFEST');
  const want = s.paramsRecord();
  if (manifest.name !== s.info.name || Object.entries(want).some(([k, v]) => manifest.params[k] !== v)) {
    throw new CorruptDataError(`the catalog entry "${s.info.name}" does not match the collection's sealed manifest`, {
      file: manifestFile,
      reason: 'catalog',
    });
  }
  const entry = s.ctx.state.find(s.info.id);
  const seals = await checkManifestState(entry, manifestFile, join(s.ctx.storeDir, STATE_FILE), manifest.generation, manifest.firstWalSeq);
  return { manifest, manifestFile, entry, seals };
}
