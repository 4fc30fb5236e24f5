import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError, RollbackError } from '../errors.js';
import type { KeyManager } from '../keys/key-manager.js';
import { MANIFEST_FILE } from '../storage/manifest.js';
import { exists, removeTree } from '../util/durable.js';
import { CATALOG_FILE, type CollectionInfo } from './catalog.js';
import { collectionDir } from './collection.js';
import type { Logger } from './logger.js';

/**
 * Checks the CATALOG against the two other records of which collections
 * exist, the keyring (every collection with live DEKs) and
 * `collections/<id>/`, when a store opens.
 *
 * createCollection writes keys, then a catalog entry marked 'creating', then
 * the collection's files, then the entry unmarked; dropCollection marks the
 * entry 'dropping' before it destroys keys and files. So every crash leaves
 * a state this function can finish or undo, and a collection with live keys
 * and files but no catalog entry at all can only be a deleted or rolled-back
 * CATALOG: that is refused with a typed error naming CATALOG rather than
 * opening a store in which the collection silently went missing.
 */
export async function recoverCatalog(
  host: {
    dir: string;
    keys: KeyManager;
    logger: Logger;
    /** Replaces CATALOG (through the store state, which records its hash). */
    writeCatalog: (collections: CollectionInfo[]) => Promise<void>;
    /** Drops a collection from the store state (written with the next CATALOG). */
    forget: (collectionId: string) => void;
  },
  catalog: CollectionInfo[],
  catalogPresent: boolean,
): Promise<CollectionInfo[]> {
  const { dir, keys, logger, writeCatalog, forget } = host;
  // Checked before anything is changed, so a refused open leaves every file as it was.
  const interruptedCreates = await checkCatalogEntries(dir, keys, catalog, catalogPresent);

  let changed = false;
  const kept: CollectionInfo[] = [];
  for (const info of catalog) {
    const finished = info.state === 'creating' && (await exists(join(collectionDir(dir, info.id), MANIFEST_FILE)));
    if (info.state === undefined || finished) {
      if (finished) changed = true;
      const { state: _state, ...plain } = info;
      kept.push(plain);
      continue;
    }
    // A create that never wrote its manifest is undone; a drop is finished. Either way: no keys, no files, no entry.
    await keys.destroyCollection(info.id);
    await removeTree(collectionDir(dir, info.id));
    forget(info.id);
    logger.warn({ collection: info.name, step: info.state }, 'interrupted collection change completed on open');
    changed = true;
  }
  for (const id of interruptedCreates) {
    await keys.destroyCollection(id);
    await removeTree(collectionDir(dir, id));
    forget(id);
    changed = true;
    logger.warn({ collectionKeys: 'unused', step: 'creating' }, 'keys of an interrupted collection create removed on open');
  }
  if (changed) await writeCatalog(kept);
  return kept;
}

/**
 * The read-only part of {@link recoverCatalog}: throws the typed error for a
 * collection with keys and files but no catalog entry (also used to say how
 * a CATALOG that differs from the store state differs); returns the ids of
 * interrupted creates (keys, no files, no entry).
 */
export async function checkCatalogEntries(
  dir: string,
  keys: KeyManager,
  catalog: CollectionInfo[],
  catalogPresent: boolean,
): Promise<string[]> {
  const listed = new Set(catalog.map((c) => c.id));
  const interruptedCreates: string[] = [];
  for (const [id, col] of Object.entries(keys.keyring.collections)) {
    if (listed.has(id)) continue;
    // Shredded collections keep their (destroyed) key records; their files are garbage.
    if (col.deks.every((d) => d.state === 'destroyed')) continue;
    if (!(await holdsFiles(collectionDir(dir, id)))) {
      // Keys written, catalog entry not yet: a createCollection that never returned.
      interruptedCreates.push(id);
      continue;
    }
    throw missingEntry(dir, id, col.deks, catalog, catalogPresent);
  }
  return interruptedCreates;
}

/** True when the directory exists and holds at least one file (empty subdirectories do not count). */
async function holdsFiles(path: string): Promise<boolean> {
  let entries;
  try {
    entries = await fs.readdir(path, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  for (const e of entries) {
    if (!e.isDirectory()) return true;
    if (await holdsFiles(join(path, e.name))) return true;
  }
  return false;
}

/**
 * The error for a collection with keys and files but no catalog entry. A
 * catalog whose every entry predates the collection's first DEK looks like an
 * older copy of itself (RollbackError); otherwise an entry was removed.
 */
function missingEntry(
  dir: string,
  id: string,
  deks: readonly { createdAt: string }[],
  catalog: CollectionInfo[],
  catalogPresent: boolean,
): CorruptDataError {
  const file = join(dir, CATALOG_FILE);
  if (!catalogPresent) {
    return new CorruptDataError(`CATALOG is missing, but collection ${id} has keys and files`, { file, reason: 'missing' });
  }
  const keyedAt = Math.min(...deks.map((d) => Date.parse(d.createdAt)));
  const newestEntry = Math.max(-Infinity, ...catalog.map((c) => Date.parse(c.createdAt)));
  if (Number.isFinite(keyedAt) && keyedAt >= newestEntry) {
    return new RollbackError(`CATALOG predates collection ${id}, which has keys and files: an older copy of CATALOG`, {
      file,
      reason: 'rollback',
    });
  }
  return new CorruptDataError(`CATALOG has no entry for collection ${id}, which has keys and files`, { file, reason: 'missing-entry' });
}
