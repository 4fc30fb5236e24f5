import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { CorruptDataError, InvalidArgumentError, UnsupportedVersionError } from '../errors.js';
import { crashPoint } from '../util/crash.js';
import { SegmentKind, SegmentReader, segmentKindName, writeSegment, type DekLookup } from './segment.js';

/**
 * The manifest of a collection: which segment files are live (each with its
 * length, SHA-256 and DEK version), a generation counter, and the first WAL
 * file it does not cover. It is itself a segment of kind Manifest (sealed
 * under the collection's active DEK, header bound as context) and replaced by
 * write-temp → fsync → rename → fsync(dir).
 */

export const MANIFEST_FILE = 'MANIFEST';
export const MANIFEST_FORMAT = 1;

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** One live segment file. */
export interface SegmentFileEntry {
  kind: SegmentKind;
  length: number;
  /** SHA-256 of the file: backups address and verify the file by it. */
  sha256: string;
  /**
   * The sealed message's salt and key commitment (hex): an open checks it
   * instead of hashing the file (see SegmentExpectation.seal). Absent in
   * manifests written before it was recorded; their files are hashed.
   */
  seal?: string;
  dekVersion: number;
}

/** What a reader checks a live file against: its length and its seal (or, for older manifests, its SHA-256). */
export function filePins(f: SegmentFileEntry): { length: number; sha256: string; seal?: string } {
  return typeof f.seal === 'string' ? { length: f.length, sha256: f.sha256, seal: f.seal } : { length: f.length, sha256: f.sha256 };
}

/** The files one flush (or compaction) produced; they share a segment id. */
export interface SegmentGroup {
  id: number;
  /** Records in the group (for stats; the vector block is authoritative). */
  count: number;
  files: SegmentFileEntry[];
}

export interface ManifestData {
  format: number;
  collectionId: string;
  /** The collection's name and parameters, checked against the plaintext catalog on open. */
  name: string;
  params: Record<string, string | number>;
  generation: number;
  nextSegmentId: number;
  /** WAL files with a smaller sequence number are covered by the segments. */
  firstWalSeq: number;
  /** Oldest first: a later group's records supersede an earlier one's. */
  groups: SegmentGroup[];
}

/** Path of segment file `id` of `kind` under a collection directory. */
export function segmentFile(collectionDir: string, id: number, kind: SegmentKind): string {
  return join(collectionDir, 'seg', `${String(id).padStart(12, '0')}.${segmentKindName(kind).toLowerCase()}.vseg`);
}

/** Atomically replaces the MANIFEST of `collectionDir`. */
export async function writeManifest(
  collectionDir: string,
  storeId: string,
  data: ManifestData,
  dek: Uint8Array,
  dekVersion: number,
  beforeRename?: (ref: { generation: number; sha256: string }) => Promise<void>,
): Promise<void> {
  if (!Number.isSafeInteger(data.generation) || data.generation < 0) {
    throw new InvalidArgumentError(`manifest generation expected a non-negative integer, got ${data.generation}`);
  }
  crashPoint('manifest:before-write');
  await writeSegment(
    join(collectionDir, MANIFEST_FILE),
    { kind: SegmentKind.Manifest, storeId, collectionId: data.collectionId, segmentId: data.generation, dekVersion },
    dek,
    packr.pack(data),
    beforeRename === undefined ? {} : { beforeRename: (r) => beforeRename({ generation: data.generation, sha256: r.sha256 }) },
  );
  crashPoint('manifest:committed');
}

/** Reads and checks the MANIFEST of a collection. */
export async function readManifest(collectionDir: string, storeId: string, collectionId: string, keyFor: DekLookup): Promise<ManifestData> {
  const file = join(collectionDir, MANIFEST_FILE);
  try {
    await fs.access(file);
  } catch (err) {
    throw new CorruptDataError('collection manifest is missing', { file, reason: 'missing', cause: err });
  }
  const reader = await SegmentReader.open(file, { storeId, collectionId, kind: SegmentKind.Manifest }, keyFor);
  let plain: Buffer;
  try {
    plain = await reader.readAll();
  } finally {
    await reader.close();
  }
  let data: ManifestData;
  try {
    data = packr.unpack(plain) as ManifestData;
  } catch (err) {
    throw new CorruptDataError('manifest contents do not decode', { file, reason: 'decode', cause: err });
  } finally {
    plain.fill(0);
  }
  if (data?.format !== MANIFEST_FORMAT) {
    throw new UnsupportedVersionError(`manifest format ${String(data?.format)} is not supported (file ${file})`);
  }
  if (data.collectionId !== collectionId || !Array.isArray(data.groups)) {
    throw new CorruptDataError('manifest describes another collection', { file, reason: 'foreign' });
  }
  if (reader.header.segmentId !== data.generation) {
    throw new CorruptDataError('manifest header and contents disagree on the generation', { file, reason: 'header' });
  }
  return data;
}
