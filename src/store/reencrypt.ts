import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { MANIFEST_FILE, filePins, segmentFile, type ManifestData, type SegmentFileEntry, type SegmentGroup } from '../storage/manifest.js';
import { SEGMENT_HEADER_SIZE, decodeSegmentHeader, readSegment, writeSegment, type DekLookup } from '../storage/segment.js';
import { listWalFiles, readWalHeader, walFileName } from '../storage/wal.js';
import { crashPoint } from '../util/crash.js';
import { commit, endWalFile, removeWalBefore, retire } from './collection-files.js';
import { flushLocked } from './collection-flush.js';
import type { CollectionMemory } from './collection-memory.js';
import { authorize } from './key-gate.js';

/** Progress of a background re-encryption, in segment groups. */
export interface ReencryptionProgress {
  done: number;
  total: number;
}

/** What a re-encryption run did. */
export interface ReencryptionReport {
  /** Segment groups rewritten under the active DEK version by this run. */
  groups: number;
  /** The DEK version everything is now sealed under. */
  dekVersion: number;
  /** Older DEK versions destroyed because no file uses them any more. */
  destroyedVersions: number[];
}

export interface GroupRewrite {
  collectionDir: string;
  storeId: string;
  collectionId: string;
  group: SegmentGroup;
  /** Segment id of the rewritten group (a fresh one, so the old files stay live until the manifest moves). */
  newSegmentId: number;
  keyFor: DekLookup;
  toVersion: number;
  toKey: Uint8Array;
}

/**
 * Rewrites the files of one segment group under another DEK version: each
 * file is opened under its own version, checked against the manifest's
 * seal (or hash), and its exact plaintext sealed again into a new file. The caller
 * commits a manifest naming the new files, then removes the old ones; a crash
 * before that commit leaves orphans that opening the collection removes.
 */
export async function rewriteSegmentGroup(job: GroupRewrite): Promise<SegmentFileEntry[]> {
  const out: SegmentFileEntry[] = [];
  for (const f of job.group.files) {
    const path = segmentFile(job.collectionDir, job.group.id, f.kind);
    const plain = await readSegment(
      path,
      {
        storeId: job.storeId,
        collectionId: job.collectionId,
        kind: f.kind,
        segmentId: job.group.id,
        dekVersion: f.dekVersion,
        // An authentic but different file (an older copy) must not be carried over under a fresh seal:
        // its seal (or, for an older manifest, its hash over the bytes decrypted) must be the manifest's.
        ...filePins(f),
      },
      job.keyFor,
    );
    try {
      const r = await writeSegment(
        segmentFile(job.collectionDir, job.newSegmentId, f.kind),
        { kind: f.kind, storeId: job.storeId, collectionId: job.collectionId, segmentId: job.newSegmentId, dekVersion: job.toVersion },
        job.toKey,
        plain,
      );
      out.push({ kind: f.kind, length: r.length, sha256: r.sha256, seal: r.seal, dekVersion: job.toVersion });
    } finally {
      plain.fill(0);
    }
    crashPoint('reencrypt:file-written');
  }
  return out;
}

/** The DEK version a segment file's plaintext header names. */
export async function segmentDekVersion(path: string): Promise<number> {
  const handle = await fs.open(path, 'r');
  try {
    const b = Buffer.alloc(SEGMENT_HEADER_SIZE);
    const { bytesRead } = await handle.read(b, 0, b.length, 0);
    return decodeSegmentHeader(b.subarray(0, bytesRead), path).dekVersion;
  } finally {
    await handle.close();
  }
}

/**
 * Every DEK version some file of a collection is sealed under: the live
 * segments (as the manifest lists them), the MANIFEST itself and every WAL
 * file on disk. A version outside this set can be destroyed.
 */
export async function dekVersionsInUse(
  collectionDir: string,
  storeId: string,
  collectionId: string,
  groups: SegmentGroup[],
): Promise<Set<number>> {
  const used = new Set<number>();
  for (const g of groups) for (const f of g.files) used.add(f.dekVersion);
  used.add(await segmentDekVersion(join(collectionDir, 'MANIFEST')));
  const walDir = join(collectionDir, 'wal');
  for (const s of await listWalFiles(walDir)) {
    used.add((await readWalHeader(join(walDir, walFileName(s)), { storeId, collectionId, walSeq: s })).dekVersion);
  }
  return used;
}

/** DEK versions of the live WAL files (sequence at or after `firstWalSeq`). */
export async function walDekVersions(collectionDir: string, storeId: string, collectionId: string, firstWalSeq: number): Promise<number[]> {
  const walDir = join(collectionDir, 'wal');
  const out: number[] = [];
  for (const s of await listWalFiles(walDir)) {
    if (s < firstWalSeq) continue;
    out.push((await readWalHeader(join(walDir, walFileName(s)), { storeId, collectionId, walSeq: s })).dekVersion);
  }
  return out;
}

/**
 * Rewrites every file of a collection sealed under an older DEK version under
 * the active one: unflushed WAL records first (by a flush), then one segment
 * group at a time, each committed by a new manifest, so a run cut short
 * resumes from what the manifest says. When no file uses an older version any
 * more, those versions are destroyed in the keyring. The caller admitted it.
 */
export async function reencryptCollection(
  s: CollectionMemory,
  options: { onProgress?: (p: ReencryptionProgress) => void },
): Promise<ReencryptionReport> {
  const id = s.info.id;
  const active = (): number => s.ctx.keys.activeDekVersion(id);
  await s.exclusive(() => retireOldWalLocked(s));
  crashPoint('reencrypt:wal-retired');
  const stale = (): SegmentGroup[] => s.manifest.groups.filter((g) => g.files.some((f) => f.dekVersion !== active()));
  const total = stale().length;
  let done = 0;
  options.onProgress?.({ done, total });
  // Bounded: a concurrent compaction rewrites groups under the active version, which only shortens the work.
  for (let round = 0; round < total; round++) {
    const more = await s.exclusive(async () => {
      authorize(s, 'reencrypt');
      const g = stale()[0];
      if (!g) return false;
      await rewriteGroupLocked(s, g);
      return true;
    });
    if (!more) break;
    done += 1;
    options.onProgress?.({ done, total });
  }
  const destroyedVersions = await s.exclusive(async () => {
    const version = active();
    if (stale().length > 0) return [];
    if ((await segmentDekVersion(join(s.dir, MANIFEST_FILE))) !== version) {
      await commit(s, { ...s.manifest, generation: s.manifest.generation + 1 });
      crashPoint('reencrypt:manifest-rewritten');
    }
    // Files kept only for readers' grace period would hold a version in use: they go first (no manifest lists them).
    await s.ctx.removeRetiredUnder?.(s.dir);
    const used = await dekVersionsInUse(s.dir, s.ctx.storeId, id, s.manifest.groups);
    const old = s.ctx.keys.collectionKeys(id).deks.filter((d) => d.state === 'retired' && d.version !== version && !used.has(d.version));
    const destroyed: number[] = [];
    for (const d of old) {
      await s.ctx.keys.destroyDekVersion(id, d.version);
      crashPoint('reencrypt:version-destroyed');
      destroyed.push(d.version);
    }
    return destroyed;
  });
  s.ctx.logger.info({ collection: s.info.name, groups: done, destroyed: destroyedVersions.length }, 'collection re-encrypted');
  return { groups: done, dekVersion: active(), destroyedVersions };
}

/** Moves WAL records sealed under an older DEK version into segments (or past the WAL) under the active one. */
async function retireOldWalLocked(s: CollectionMemory): Promise<void> {
  const version = s.ctx.keys.activeDekVersion(s.info.id);
  const versions = await walDekVersions(s.dir, s.ctx.storeId, s.info.id, s.manifest.firstWalSeq);
  if (versions.every((v) => v === version)) return;
  // With an empty memtable the older WAL files hold nothing the segments lack: start the WAL past them.
  const seq = await s.journal.control(async (j) => {
    if (s.frozen || s.memtable.size > 0 || s.memtable.tombstones.size > 0) return undefined;
    await endWalFile(s, j);
    return s.walNext;
  });
  if (seq === undefined) {
    await flushLocked(s);
    return;
  }
  await commit(s, { ...s.manifest, generation: s.manifest.generation + 1, firstWalSeq: seq });
  await removeWalBefore(s, seq);
}

/** Rewrites one segment group under the active DEK version and commits it. */
async function rewriteGroupLocked(s: CollectionMemory, g: SegmentGroup): Promise<void> {
  const version = s.ctx.keys.activeDekVersion(s.info.id);
  const newId = s.takeSegmentId();
  const files = await s.withKeys((keyFor) =>
    s.ctx.keys.withDek(s.info.id, version, (toKey) =>
      rewriteSegmentGroup({
        collectionDir: s.dir,
        storeId: s.ctx.storeId,
        collectionId: s.info.id,
        group: g,
        newSegmentId: newId,
        keyFor,
        toVersion: version,
        toKey,
      }),
    ),
  );
  crashPoint('reencrypt:group-written');
  const next: ManifestData = {
    ...s.manifest,
    generation: s.manifest.generation + 1,
    nextSegmentId: Math.max(s.manifest.nextSegmentId, newId + 1),
    groups: s.manifest.groups.map((x) => (x === g ? { id: newId, count: g.count, files } : x)),
  };
  await commit(s, next);
  crashPoint('reencrypt:group-committed');
  const layer = s.segments.find((l) => l.segmentId === g.id);
  if (layer) layer.segmentId = newId;
  await retire(
    s,
    g.files.map((f) => segmentFile(s.dir, g.id, f.kind)),
  );
  crashPoint('reencrypt:group-done');
}
