import { removeFile } from '../util/durable.js';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError, RollbackError, VectorsealError } from '../errors.js';
import { filePins, segmentFile, type ManifestData, type SegmentGroup } from '../storage/manifest.js';
import { SegmentKind, SegmentReader, readSegment, type DekLookup } from '../storage/segment.js';
import { sha256Hex } from '../storage/state-file.js';
import { WAL_HEADER_SIZE, listWalFiles, readWal, readWalHeader, truncateWal, walFileName } from '../storage/wal.js';
import { decodeList, decodeVectorBlock } from './blocks.js';
import { openNextWal, removeWalBefore } from './collection-files.js';
import type { CollectionMemory, Op } from './collection-memory.js';
import { HnswVectorExtractor } from './hnsw-vectors.js';
import { graphBackend, NativeGraph, type GraphIndex } from '../hnsw/index.js';
import { deserializeIndex, loadIndexStreamed } from './index-io.js';
import { Journal } from './journal.js';
import { Layer } from './layer.js';
import { unpack, type Metadata } from './metadata.js';
import { STATE_FILE, type CollectionState } from './state.js';
import { openLazily } from './collection-lazy.js';
import { readCheckedManifest } from './collection-manifest.js';

/*
 * Recovery: loading a collection from its files. The manifest is checked
 * against the catalog and the store state (rollbacks), the segment groups
 * are loaded, orphans of an interrupted flush or compaction removed and the
 * WAL replayed.
 */

/**
 * Loads the collection again once its keys are usable (after an enable, or on
 * first use of a lazily opened one); with `lazy`, reads only its manifest.
 */
export async function reload(s: CollectionMemory, options: { lazy?: boolean } = {}): Promise<void> {
  s.assertOpen();
  await s.exclusive(async () => {
    if (s.loaded) return;
    s.ctx.keys.assertUsable(s.info.id);
    s.resetMemory();
    s.keyFailure = undefined;
    // Enabled again in a lazy store: only the manifest is read (lifecycle commands need no data).
    if (options.lazy) {
      await openLazily(s);
      return;
    }
    await load(s);
    s.loaded = true;
    s.pendingLoad = false;
  });
}

/** Checks the manifest, loads its segments and replays the WAL into `s` (whose memory is empty). */
export async function load(s: CollectionMemory): Promise<void> {
  await s.withKeys(async (keyFor) => {
    // The manifest must be the one the store state records (or announced): an older copy is a rollback.
    const { manifest: m, manifestFile, entry, seals } = await readCheckedManifest(s, keyFor);
    const walSeqs = await listWalFiles(s.walDir);
    for (const n of walSeqs) {
      if (n > (entry?.liveSeq ?? 0)) {
        // Files are named in the state before they are created: an authentic newer one meets an older copy of STATE.
        throw new RollbackError(`WAL file ${walFileName(n)} is newer than any the store state names: an older copy of STATE`, {
          file: join(s.ctx.storeDir, STATE_FILE),
          reason: 'rollback',
        });
      }
    }
    for (const seal of seals.values()) {
      if (!walSeqs.includes(seal.seq)) {
        throw new CorruptDataError(`WAL file ${walFileName(seal.seq)} is missing: the store state sealed it with ${seal.records} records`, {
          file: join(s.walDir, walFileName(seal.seq)),
          reason: 'missing',
        });
      }
    }
    for (const n of walSeqs) {
      const path = join(s.walDir, walFileName(n));
      const h = await readWalHeader(path, { storeId: s.ctx.storeId, collectionId: s.info.id, walSeq: n });
      if (h.generation > m.generation) {
        throw new RollbackError(`manifest generation ${m.generation} is older than WAL file ${walFileName(n)} proves (${h.generation})`, {
          file: manifestFile,
          reason: 'rollback',
        });
      }
    }
    s.manifest = m;
    const ro = s.ctx.readOnly === true;
    if (ro) s.readerCut = { manifestBytes: await readerManifestBytes(manifestFile, entry), walLengths: new Map() };
    for (const g of m.groups) await loadGroup(s, g, keyFor);
    // A reader repairs nothing and removes nothing: its writer's files are the writer's.
    if (!ro) await removeOrphanSegments(s, m);
    const live = walSeqs.filter((n) => n >= m.firstWalSeq);
    live.forEach((n, i) => {
      if (n !== m.firstWalSeq + i) {
        throw new CorruptDataError(`WAL file ${walFileName(m.firstWalSeq + i)} is missing`, {
          file: join(s.walDir, walFileName(m.firstWalSeq + i)),
          reason: 'missing',
        });
      }
    });
    let replayed = 0;
    for (const n of live) {
      const path = join(s.walDir, walFileName(n));
      const seal = seals.get(n);
      // A sealed file is checked before anything is repaired; only an unsealed (newest) one may have a torn tail cut off.
      const contents = await readWal(path, { storeId: s.ctx.storeId, collectionId: s.info.id, walSeq: n }, keyFor, {
        repair: seal === undefined && !ro,
      });
      if (seal && (contents.records.length !== seal.records || contents.sha256 !== seal.sha256)) {
        for (const rec of contents.records) rec.fill(0);
        throw new CorruptDataError(
          `WAL file ${walFileName(n)} holds ${contents.records.length} records; ` +
            `the store state sealed it with ${seal.records}` +
            `${contents.records.length === seal.records ? ' and another hash' : ''} (cut, emptied or replaced)`,
          { file: path, reason: 'sealed' },
        );
      }
      // Bytes after a sealed file's records were never part of it: dropped once the records proved whole.
      if (seal && contents.truncated > 0 && !ro) await truncateWal(path, (await fs.stat(path)).size - contents.truncated);
      // A reader meets a partial record wherever the writer is appending: no repair, nothing to warn of.
      if (contents.truncated > 0 && !ro)
        s.ctx.logger.warn({ collection: s.info.name, file: path, bytes: contents.truncated }, 'dropped a torn WAL tail');
      s.readerCut?.walLengths.set(n, walLengthOf(contents.records));
      for (const rec of contents.records) {
        let op: Op;
        try {
          op = unpack(rec) as Op;
        } catch (err) {
          rec.fill(0);
          throw new CorruptDataError('WAL record does not decode', { file: path, reason: 'decode', cause: err });
        }
        // Binary fields are views into rec: apply (which copies) before zeroing.
        s.applyOp(op, path);
        rec.fill(0);
        replayed++;
      }
    }
    if (!ro) await removeWalBefore(s, m.firstWalSeq, true);
    // The newest file of a clean close is superseded by this session's first write.
    if (entry?.closed && !ro) {
      s.ctx.state.noteSeal(s.info.id, entry.closed);
      delete entry.closed;
    }
    s.walNext = Math.max(m.firstWalSeq - 1, ...walSeqs) + 1;
    s.unannounced = [];
    s.journal = new Journal(() => openNextWal(s));
    s.ctx.logger.debug({ collection: s.info.name, generation: m.generation, groups: m.groups.length, replayed }, 'collection opened');
  });
}

async function loadGroup(s: CollectionMemory, g: SegmentGroup, keyFor: DekLookup): Promise<void> {
  const byKind = new Map(g.files.map((f) => [f.kind, f]));
  const read = async (kind: SegmentKind): Promise<Buffer | undefined> => {
    const f = byKind.get(kind);
    if (!f) return undefined;
    // One read of the file: decrypted first (damage is reported with its
    // page), then the manifest's hash checked on the same bytes (an
    // authentic but different file: an older or replayed one).
    return readSegment(
      segmentFile(s.dir, g.id, kind),
      {
        storeId: s.ctx.storeId,
        collectionId: s.info.id,
        kind,
        segmentId: g.id,
        dekVersion: f.dekVersion,
        ...filePins(f),
      },
      keyFor,
    );
  };
  const tombFile = segmentFile(s.dir, g.id, SegmentKind.Tombstones);
  const tomb = await read(SegmentKind.Tombstones);
  if (tomb) {
    const ids = decodeList(tomb, undefined, tombFile);
    tomb.fill(0);
    for (const id of ids) {
      if (typeof id !== 'string') throw new CorruptDataError('tombstone is not an id', { file: tombFile, reason: 'decode' });
      const prev = s.current.get(id);
      if (prev) {
        prev.layer.markDead(prev.label);
        s.current.delete(id);
      }
    }
  }
  const vecFile = segmentFile(s.dir, g.id, SegmentKind.Vectors);
  const idx = byKind.get(SegmentKind.Index);
  if (!byKind.has(SegmentKind.Vectors)) return;
  if (!idx || !byKind.has(SegmentKind.Metadata)) {
    throw new CorruptDataError(`segment group ${g.id} lacks its ${idx ? 'metadata' : 'index'} block`, {
      file: join(s.dir, 'MANIFEST'),
      reason: 'missing',
    });
  }
  const metaFile = segmentFile(s.dir, g.id, SegmentKind.Metadata);
  const idxFile = segmentFile(s.dir, g.id, SegmentKind.Index);
  // The vector and metadata blocks, decrypted and decoded while hnswlib loads the graph on the thread pool.
  const readBlocks = async (): Promise<{ block: ReturnType<typeof decodeVectorBlock>; metas: unknown[] }> => {
    const vec = (await read(SegmentKind.Vectors)) as Buffer;
    const block = decodeVectorBlock(vec, s.info.dim, vecFile);
    vec.fill(0);
    if (!block.vectors && !s.indexHoldsVectors) {
      throw new CorruptDataError('vector block leaves the vectors to a cosine index, which does not keep them exactly', {
        file: vecFile,
        reason: 'decode',
      });
    }
    if (block.ids.length !== g.count) {
      throw new CorruptDataError(`vector block holds ${block.ids.length} records, the manifest says ${g.count}`, {
        file: vecFile,
        reason: 'decode',
      });
    }
    const metaBytes = (await read(SegmentKind.Metadata)) as Buffer;
    const metas = decodeList(metaBytes, block.ids.length, metaFile);
    metaBytes.fill(0);
    return { block, metas };
  };
  // 'l2' and 'ip' blocks leave the vectors to the index: a flat copy is read out of its stream on the way (for exact scans).
  // The native backend copies them out of its graph on first use instead (Layer.loadLazily): no copy at open.
  const native = graphBackend() === 'native';
  const extractor = s.indexHoldsVectors && !native ? new HnswVectorExtractor(g.count, s.info.dim, idxFile) : undefined;
  const idxExpect = {
    storeId: s.ctx.storeId,
    collectionId: s.info.id,
    kind: SegmentKind.Index,
    segmentId: g.id,
    dekVersion: idx.dekVersion,
    ...filePins(idx),
  };
  let index: GraphIndex;
  let blocks;
  try {
    // Decrypts the index segment into the sink made for its length (the extractor copies the rows out on the way).
    const decryptInto = async (sinkFor: (length: number) => (bytes: Uint8Array) => void): Promise<void> => {
      const reader = await SegmentReader.open(idxFile, idxExpect, keyFor);
      try {
        const sink = sinkFor(reader.length);
        await reader.readInto(
          extractor
            ? (bytes) => {
                extractor.push(bytes);
                sink(bytes);
              }
            : sink,
        );
      } finally {
        await reader.close();
      }
    };
    const loaded =
      graphBackend() === 'native'
        ? // Decrypted in batches straight into the graph's memory (no staging file, no whole-graph buffer); the graph is
          // checked and handed out once the hash matched.
          await loadIndexStreamed((openGraph) => decryptInto(openGraph), s.params, idxFile, readBlocks)
        : // Decrypted straight into the staging file (no whole-graph buffer); hnswlib reads it once the hash matched.
          await deserializeIndex((sink) => decryptInto(() => sink), s.params, s.ctx.staging, readBlocks);
    index = loaded.index;
    blocks = loaded.beside;
  } catch (err) {
    extractor?.wipe();
    if (err instanceof VectorsealError) throw err;
    throw new CorruptDataError('HNSW index does not load', { file: idxFile, reason: 'decode', cause: err });
  }
  const { block, metas } = blocks;
  const vectors = block.vectors ?? extractor?.finish();
  if (block.vectors) extractor?.wipe();
  const n = block.ids.length;
  if (index.getCurrentCount() !== n) {
    throw new CorruptDataError('HNSW index and vector block disagree on the record count', { file: idxFile, reason: 'decode' });
  }
  const layer = new Layer(index, n, g.id);
  for (let i = 0; i < n; i++) {
    const m = metas[i];
    metas[i] = m === null ? undefined : m;
  }
  if (vectors) layer.load(block.ids, metas as (Metadata | undefined)[], vectors, s.info.dim);
  else {
    // The index's own copies are the vectors: its labels must be exactly the block's records 0..n-1.
    if (!(index instanceof NativeGraph) || !index.labelsDense()) {
      throw new CorruptDataError('the index repeats a label or holds one out of range', { file: idxFile, reason: 'decode' });
    }
    const graph = index;
    layer.loadLazily(block.ids, metas as (Metadata | undefined)[], s.info.dim, () => graph.copyVectors(n));
  }
  for (let i = 0; i < n; i++) {
    const id = block.ids[i] as string;
    const prev = s.current.get(id);
    if (prev) {
      if (prev.layer === layer) throw new CorruptDataError('vector block repeats an id', { file: vecFile, reason: 'decode' });
      prev.layer.markDead(prev.label);
    }
    s.current.set(id, { layer, label: i });
  }
  s.segments.push(layer);
}

/** Removes segment files no manifest lists: leftovers of a flush or compaction cut short. */
async function removeOrphanSegments(s: CollectionMemory, m: ManifestData): Promise<void> {
  const segDir = join(s.dir, 'seg');
  const live = new Set(m.groups.flatMap((g) => g.files.map((f) => segmentFile(s.dir, g.id, f.kind))));
  let names: string[];
  try {
    names = await fs.readdir(segDir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(segDir, n);
    if (!live.has(p)) await removeFile(p);
  }
}

/** Bytes of a WAL file up to the end of its last whole record: its header plus, per record, the length field, ciphertext and tag. */
function walLengthOf(records: readonly Uint8Array[]): number {
  return records.reduce((n, r) => n + 4 + r.length + 16, WAL_HEADER_SIZE);
}

/**
 * The manifest file a reader loaded, read again and checked against the
 * state entry it matched (a newer one renamed in between is a racing change:
 * the reader reads a newer snapshot).
 */
async function readerManifestBytes(file: string, entry: CollectionState | undefined): Promise<Buffer> {
  const bytes = await fs.readFile(file);
  if (entry?.manifest === undefined || sha256Hex(bytes) !== entry.manifest.sha256) {
    throw new CorruptDataError('the manifest changed while the snapshot was read', { file, reason: 'state' });
  }
  return bytes;
}
