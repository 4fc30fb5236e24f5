import { removeFile } from '../util/durable.js';
import { join } from 'node:path';
import { CHUNK_SIZE } from '../crypto/chunked.js';
import { fsyncDir } from '../storage/fsutil.js';
import { segmentFile, writeManifest, type ManifestData, type SegmentFileEntry } from '../storage/manifest.js';
import { SegmentKind, writeSegment } from '../storage/segment.js';
import { WalWriter, listWalFiles, walFileName } from '../storage/wal.js';
import { crashPoint } from '../util/crash.js';
import { encodeList, encodeVectorBlock } from './blocks.js';
import type { CollectionMemory } from './collection-memory.js';
import { readStaged } from './index-io.js';
import type { Journal } from './journal.js';
import type { Layer } from './layer.js';

/*
 * The collection's file operations: manifest commits, WAL file rotation and
 * removal, and the writing of one segment group.
 */

/**
 * Replaces the manifest: named in the store state (as pending) before it is renamed into place.
 *
 * The fsyncs of a commit, each one the durability promise needs (test/store/fsync-count.test.ts counts them):
 * - the manifest's temp file: its bytes must be durable before a rename can make them the collection's manifest;
 * - the STATE's temp file and the store directory: the state must name the new manifest (generation and hash)
 *   before the rename, or an open after a power cut would take the new manifest for a swapped-in file;
 * - the collection directory after the rename: the next state write marks this manifest committed, and an older
 *   manifest found after that is a rollback (the store would refuse to open).
 */
export async function commit(s: CollectionMemory, next: ManifestData): Promise<void> {
  const version = s.ctx.keys.activeDekVersion(s.info.id);
  let ref: { generation: number; sha256: string } | undefined;
  await s.ctx.keys.withDek(s.info.id, version, (dek) =>
    writeManifest(s.dir, s.ctx.storeId, next, dek, version, async (r) => {
      ref = r;
      await s.ctx.state.announceManifest(s.info.id, r);
    }),
  );
  s.manifest = next;
  if (ref) s.ctx.state.manifestCommitted(s.info.id, ref, next.firstWalSeq);
}

/**
 * Starts a new WAL file recording the current manifest generation, so that
 * a manifest rolled back to an older generation is caught on open.
 */
export async function rotateWal(s: CollectionMemory): Promise<void> {
  await s.journal.control((j) => endWalFile(s, j));
}

/** Ends the current WAL file (control step): its seal goes to the state with the next file's announcement. */
export async function endWalFile(s: CollectionMemory, j: Journal): Promise<void> {
  const { ended, seal } = await j.endFile();
  if (!ended) return;
  if (seal) s.unannounced.push(seal);
  s.walNext += 1;
}

/**
 * Creates the next WAL file on the first append after one ended: the
 * state names it first (with the seals of the files it supersedes), so a
 * file the state does not know of is never legitimate.
 */
export async function openNextWal(s: CollectionMemory): Promise<WalWriter> {
  const seq = s.walNext;
  await s.ctx.state.announceWal(s.info.id, seq, s.unannounced);
  s.unannounced = [];
  return newWal(s, seq, s.manifest.generation);
}

/**
 * Removes the WAL files numbered below `seq` (covered by segments): `now` at
 * open (leftovers), otherwise after the readers' grace period.
 */
export async function removeWalBefore(s: CollectionMemory, seq: number, now = false): Promise<void> {
  const old = (await listWalFiles(s.walDir)).filter((n) => n < seq).map((n) => join(s.walDir, walFileName(n)));
  if (now) for (const p of old) await removeFile(p);
  else await retire(s, old);
}

/** Files a committed manifest no longer lists: kept for the readers' grace period, then removed (see retired-files.ts). */
export async function retire(s: CollectionMemory, paths: string[]): Promise<void> {
  if (s.ctx.retire) await s.ctx.retire(paths);
  else for (const p of paths) await removeFile(p);
}

async function newWal(s: CollectionMemory, walSeq: number, generation: number): Promise<WalWriter> {
  const version = s.ctx.keys.activeDekVersion(s.info.id);
  return s.ctx.keys.withDek(s.info.id, version, (dek) =>
    WalWriter.create(s.walDir, { storeId: s.ctx.storeId, collectionId: s.info.id, walSeq, dekVersion: version, generation }, dek, {
      sync: s.ctx.durability === 'batch',
    }),
  );
}

/**
 * A layer to write and its serialized graph: in memory (the native build), or
 * in a staging file (the hnswlib-node worker's, see graph-build.ts).
 */
export type GroupGraph = { layer: Layer; bytes: Uint8Array | AsyncIterable<Uint8Array>; size?: number } | { layer: Layer; file: string };

/** Chunks sealed per write of the index segment: 4 MiB batches for the native one-shot sealer. */
const INDEX_BATCH_CHUNKS = 256;

/**
 * Writes the segment files of one group; returns their manifest entries.
 * Each file is written and fsynced on its own handle (its bytes must be
 * durable before the manifest names its hash); then the group's directory is
 * fsynced once (the files' names), before the manifest names any of them.
 * One fsync per file plus one per group is the least that promise allows:
 * no file is renamed twice, no directory fsynced twice.
 */
export async function writeGroup(
  s: CollectionMemory,
  segId: number,
  graph: GroupGraph | undefined,
  tombstones: string[],
  step: string,
): Promise<SegmentFileEntry[]> {
  const version = s.ctx.keys.activeDekVersion(s.info.id);
  const files: SegmentFileEntry[] = [];
  let pages = 0;
  // A layer is written from a snapshot of its live labels: a reused memtable has none dead.
  await s.ctx.keys.withDek(s.info.id, version, async (dek) => {
    const write = async (
      kind: SegmentKind,
      data: Uint8Array | AsyncIterable<Uint8Array>,
      batchChunks?: number,
      sizeHint?: number,
    ): Promise<void> => {
      // One directory fsync for the whole group (below), before the manifest names any of its files.
      const r = await writeSegment(
        segmentFile(s.dir, segId, kind),
        { kind, storeId: s.ctx.storeId, collectionId: s.info.id, segmentId: segId, dekVersion: version },
        dek,
        data,
        {
          syncDir: false,
          ...(batchChunks === undefined ? {} : { batchChunks }),
          ...(sizeHint === undefined ? {} : { sizeHint }),
        },
      );
      files.push({ kind, length: r.length, sha256: r.sha256, seal: r.seal, dekVersion: version });
      pages += Math.max(1, Math.ceil(r.plaintextLength / CHUNK_SIZE));
    };
    const put = async (kind: SegmentKind, data: Buffer): Promise<void> => {
      try {
        await write(kind, data);
      } finally {
        data.fill(0);
      }
    };
    if (graph) {
      const { layer } = graph;
      const n = layer.size;
      // The index holds exact vectors in 'l2' and 'ip': the block then carries the ids only.
      const vectorOf = s.indexHoldsVectors ? undefined : (i: number): Float32Array => layer.vectorOf(i);
      await put(SegmentKind.Vectors, encodeVectorBlock(layer.ids.slice(0, n), vectorOf, s.info.dim));
      crashPoint(`${step}:vectors-written`);
      await put(SegmentKind.Metadata, encodeList(layer.metadata.slice(0, n).map((m) => m ?? null)));
      crashPoint(`${step}:metadata-written`);
      crashPoint('index:staged');
      if ('bytes' in graph) {
        // Sealed from the in-memory serialization (the caller's buffer, zeroed by the caller).
        await write(SegmentKind.Index, graph.bytes, INDEX_BATCH_CHUNKS, graph.size);
      } else {
        // Sealed straight from the worker's serialization (read in batches through one reused buffer, zeroed at the end).
        await readStaged(graph.file, INDEX_BATCH_CHUNKS * CHUNK_SIZE, (bytes) => write(SegmentKind.Index, bytes, INDEX_BATCH_CHUNKS));
      }
      crashPoint(`${step}:index-written`);
    }
    if (tombstones.length > 0) {
      await put(SegmentKind.Tombstones, encodeList(tombstones));
      crashPoint(`${step}:tombstones-written`);
    }
  });
  if (files.length > 0) await fsyncDir(join(s.dir, 'seg'));
  await s.ctx.notePages?.(s.info, pages);
  return files;
}
