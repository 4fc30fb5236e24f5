import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError } from '../errors.js';
import { segmentFile, type SegmentFileEntry, type SegmentGroup } from '../storage/manifest.js';
import { SEGMENT_HEADER_SIZE, decodeSegmentHeader, readSegment, writeSegment, type DekLookup } from '../storage/segment.js';
import { listWalFiles, readWalHeader, walFileName } from '../storage/wal.js';
import { crashPoint } from '../util/crash.js';

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
 * file is opened under its own version, its hash checked against the
 * manifest, and its exact plaintext sealed again into a new file. The caller
 * commits a manifest naming the new files, then removes the old ones; a crash
 * before that commit leaves orphans that opening the collection removes.
 */
export async function rewriteSegmentGroup(job: GroupRewrite): Promise<SegmentFileEntry[]> {
  const out: SegmentFileEntry[] = [];
  for (const f of job.group.files) {
    const path = segmentFile(job.collectionDir, job.group.id, f.kind);
    const plain = await readSegment(
      path,
      { storeId: job.storeId, collectionId: job.collectionId, kind: f.kind, segmentId: job.group.id, dekVersion: f.dekVersion, length: f.length },
      job.keyFor,
    );
    try {
      // An authentic but different file (an older copy) must not be carried over under a fresh hash.
      const sha256 = createHash('sha256').update(await fs.readFile(path)).digest('hex');
      if (sha256 !== f.sha256) throw new CorruptDataError('segment hash does not match the manifest (replaced by an older or foreign file)', { file: path, reason: 'hash' });
      const r = await writeSegment(
        segmentFile(job.collectionDir, job.newSegmentId, f.kind),
        { kind: f.kind, storeId: job.storeId, collectionId: job.collectionId, segmentId: job.newSegmentId, dekVersion: job.toVersion },
        job.toKey,
        plain,
      );
      out.push({ kind: f.kind, length: r.length, sha256: r.sha256, dekVersion: job.toVersion });
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
export async function dekVersionsInUse(collectionDir: string, storeId: string, collectionId: string, groups: SegmentGroup[]): Promise<Set<number>> {
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
