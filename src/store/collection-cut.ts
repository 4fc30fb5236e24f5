import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError, RollbackError, SnapshotBusyError } from '../errors.js';
import { MANIFEST_FILE } from '../storage/manifest.js';
import { sha256Hex } from '../storage/state-file.js';
import { listWalFiles, readWalHeader, walFileName, walRecordsEnd } from '../storage/wal.js';
import type { CollectionMemory } from './collection-memory.js';
import type { CollectionCut } from './collection-types.js';
import { STATE_FILE, type WalSeal } from './state.js';

/*
 * The backup cut of a collection opened lazily and not loaded yet. A backup
 * copies ciphertext: the manifest, the segment files it lists (immutable,
 * each with the SHA-256 the manifest records) and the WAL files from the
 * manifest's first one on. None of that needs the data in memory, so the cut
 * is taken from the files and the store state alone: no segment payload,
 * HNSW graph, vector or WAL record is read or decrypted. What a full load
 * would check first is checked here from the same authenticated facts: the
 * manifest is the one the state records, every sealed WAL file is there with
 * its sealed record count (its hash is checked as it is copied), none is
 * newer than the state names, and a torn tail (which a load would cut off)
 * is left out by copying each file only up to the end of its whole records.
 * A restore of this cut therefore holds exactly what a restore of a loaded
 * collection's cut holds.
 *
 * The caller keeps the cut stable: a writer's collection stays unloaded while
 * the backup holds its exclusive queue (a load waits there), and a reader's
 * writer only appends to its newest WAL file, which is copied up to the
 * length measured here.
 */

/** The cut of a lazily opened, not yet loaded collection (see above). */
export async function lazyCut(s: CollectionMemory): Promise<CollectionCut> {
  const m = s.manifest;
  const ro = s.ctx.readOnly === true;
  const manifestFile = join(s.dir, MANIFEST_FILE);
  const stateFile = join(s.ctx.storeDir, STATE_FILE);
  const entry = s.ctx.state.find(s.info.id);
  const manifestBytes = await fs.readFile(manifestFile);
  const ref = entry?.manifest;
  if (entry === undefined || ref === undefined || ref.generation !== m.generation || ref.sha256 !== sha256Hex(manifestBytes)) {
    // A reader's writer may have committed a newer manifest since the snapshot was read.
    if (ro) throw new SnapshotBusyError(`${manifestFile} changed after this snapshot was read: refresh() and back up again`);
    throw new CorruptDataError('the manifest is not the one the store state records (it changed after the collection was opened)', {
      file: manifestFile,
      reason: 'state',
    });
  }
  const seals = new Map<number, WalSeal>();
  for (const x of entry.sealed) if (x.seq >= m.firstWalSeq) seals.set(x.seq, x);
  if (entry.closed !== undefined && entry.closed.seq >= m.firstWalSeq) seals.set(entry.closed.seq, entry.closed);
  const onDisk = await listWalFiles(s.walDir);
  for (const n of onDisk) {
    // A reader's writer creates newer files (named in a newer state); a writer's own state names every file first.
    if (n > entry.liveSeq && !ro) {
      throw new RollbackError(`WAL file ${walFileName(n)} is newer than any the store state names: an older copy of STATE`, {
        file: stateFile,
        reason: 'rollback',
      });
    }
  }
  const seqs = onDisk.filter((n) => n >= m.firstWalSeq && n <= entry.liveSeq);
  const missing = (n: number, why: string): Error => {
    const file = join(s.walDir, walFileName(n));
    if (ro) return new SnapshotBusyError(`${file} was removed by the writer after this snapshot was read: refresh() and back up again`);
    return new CorruptDataError(`WAL file ${walFileName(n)} is missing${why}`, { file, reason: 'missing' });
  };
  for (const seal of seals.values()) {
    if (!seqs.includes(seal.seq)) throw missing(seal.seq, `: the store state sealed it with ${seal.records} records`);
  }
  seqs.forEach((n, i) => {
    if (n !== m.firstWalSeq + i) throw missing(m.firstWalSeq + i, '');
  });
  const walLengths = new Map<number, number>();
  const walHashes = new Map<number, { sha256: string; length: number }>();
  for (const n of seqs) {
    const path = join(s.walDir, walFileName(n));
    const h = await readWalHeader(path, { storeId: s.ctx.storeId, collectionId: s.info.id, walSeq: n });
    if (h.generation > m.generation) {
      throw new RollbackError(`manifest generation ${m.generation} is older than WAL file ${walFileName(n)} proves (${h.generation})`, {
        file: manifestFile,
        reason: 'rollback',
      });
    }
    const seal = seals.get(n);
    const end = await walRecordsEnd(path, seal?.records);
    if (seal) {
      if (end.records !== seal.records) {
        throw new CorruptDataError(
          `WAL file ${walFileName(n)} holds ${end.records} whole records; the store state sealed it with ${seal.records} (cut or emptied)`,
          { file: path, reason: 'sealed' },
        );
      }
      walHashes.set(n, { sha256: seal.sha256, length: end.length });
    }
    walLengths.set(n, end.length);
  }
  return {
    dir: s.dir,
    manifest: structuredClone(m),
    firstWalSeq: m.firstWalSeq,
    lastWalSeq: Math.max(m.firstWalSeq - 1, ...seqs),
    manifestBytes,
    walLengths,
    walHashes,
  };
}
