import { segmentFile, type ManifestData } from '../storage/manifest.js';
import { SegmentKind } from '../storage/segment.js';
import { crashPoint } from '../util/crash.js';
import type { SegmentFileEntry } from '../storage/manifest.js';
import { commit, endWalFile, removeWalBefore, retire, rotateWal, writeGroup } from './collection-files.js';
import { graphBackend, type NativeGraph } from '../hnsw/index.js';
import { buildGraph, buildGraphFile, loadGraph } from './graph-build.js';
import { YIELD_EVERY, type CollectionMemory, type Location } from './collection-memory.js';
import type { CompactionReport, FlushTimings } from './collection-types.js';
import { Layer } from './layer.js';

/*
 * Flush (the memtable frozen and written as a segment group) and compaction
 * (segment groups merged into one). Both run under the collection's
 * exclusive lock; the caller takes it.
 */

/** Flushes the memtable (and a frozen one a failed flush left) into segment groups. */
export async function flushLocked(s: CollectionMemory): Promise<void> {
  let froze = false;
  for (;;) {
    if (!s.frozen) {
      if (froze || (s.memtable.size === 0 && s.memtable.tombstones.size === 0)) return;
      await freeze(s);
      froze = true;
    }
    // Merging groups is left to the background compaction (compaction.ts): no flush waits for one.
    await writeFrozen(s);
  }
}

/** Moves the memtable aside and sends new writes to a new WAL file. */
async function freeze(s: CollectionMemory): Promise<void> {
  await s.journal.control(async (j) => {
    await endWalFile(s, j);
    crashPoint('flush:wal-created');
    s.frozen = s.memtable;
    s.frozenWalSeq = s.walNext;
    s.memtable = s.newMemtable();
  });
  crashPoint('flush:frozen');
}

async function writeFrozen(s: CollectionMemory): Promise<void> {
  const frozen = s.frozen as Layer;
  const labels: number[] = [];
  for (let i = 0; i < frozen.size; i++) if (!frozen.isDead(i)) labels.push(i);
  const segId = s.takeSegmentId();
  const entries = labels.map((label) => ({ layer: frozen, label }));
  // The graph grown in the background has a label for every record, so it is the new group's graph only when none died.
  const grown = frozen.grown;
  const prebuilt = grown && labels.length === frozen.size ? () => grown.finish() : undefined;
  if (grown && !prebuilt) await grown.dispose();
  // Searches go on meanwhile: the frozen memtable is searched (graph and scan) until the new layer replaces it.
  const { layer, files, timings } = await buildAndWriteGroup(s, entries, segId, [...frozen.tombstones], 'flush', prebuilt);
  const next: ManifestData = {
    ...s.manifest,
    generation: s.manifest.generation + 1,
    nextSegmentId: Math.max(s.manifest.nextSegmentId, segId + 1),
    firstWalSeq: s.frozenWalSeq,
    groups: [...s.manifest.groups, { id: segId, count: labels.length, files }],
  };
  await commit(s, next);
  crashPoint('flush:committed');
  // Swap in memory, synchronously, so a search sees either layout whole.
  if (layer) {
    remap(s, layer, entries);
    // The layer keeps its own copy of the vectors (beside the index's): exact scans of selective filters read it.
    s.segments.push(layer);
  }
  s.frozen = undefined;
  s.lastFlush = { records: labels.length, ...timings };
  s.ctx.logger.debug(
    { collection: s.info.name, segmentId: segId, records: labels.length, generation: next.generation, ...timings },
    'flush committed',
  );
  await rotateWal(s);
  crashPoint('flush:wal-rotated');
  await removeWalBefore(s, next.firstWalSeq);
  crashPoint('flush:done');
}

/** Merges every segment group into one, dropping deleted and superseded records. */
export async function compactLocked(s: CollectionMemory): Promise<CompactionReport> {
  const old = [...s.segments];
  const oldGroups = s.manifest.groups;
  const dead = old.reduce((n, l) => n + (l.size - l.live), 0);
  const tombstoneOnly = oldGroups.some((g) => !g.files.some((f) => f.kind === SegmentKind.Vectors));
  if (oldGroups.length <= 1 && dead === 0 && !tombstoneOnly) return { merged: 0, records: s.segments[0]?.live ?? 0, dropped: 0 };
  const entries: Location[] = [];
  for (const l of old) for (let i = 0; i < l.size; i++) if (!l.isDead(i)) entries.push({ layer: l, label: i });
  const segId = s.takeSegmentId();
  // Every older group is merged: no tombstone has anything left to mask.
  const { layer, files } = await buildAndWriteGroup(s, entries, segId, [], 'compact');
  const next: ManifestData = {
    ...s.manifest,
    generation: s.manifest.generation + 1,
    nextSegmentId: Math.max(s.manifest.nextSegmentId, segId + 1),
    groups: layer ? [{ id: segId, count: entries.length, files }] : [],
  };
  await commit(s, next);
  crashPoint('compact:committed');
  if (layer) {
    remap(s, layer, entries);
  }
  s.segments = layer ? [layer] : [];
  await rotateWal(s);
  await retire(
    s,
    oldGroups.flatMap((g) => g.files.map((f) => segmentFile(s.dir, g.id, f.kind))),
  );
  crashPoint('compact:done');
  s.ctx.logger.debug({ collection: s.info.name, merged: oldGroups.length, records: entries.length, dropped: dead }, 'compaction committed');
  return { merged: oldGroups.length, records: entries.length, dropped: dead };
}

/** What writing one group cost (see FlushTimings). */
export type GroupTimings = Omit<FlushTimings, 'records'>;

export interface BuiltGroup {
  layer: Layer | undefined;
  files: SegmentFileEntry[];
  timings: GroupTimings;
}

const since = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e9;

/**
 * Builds the layer of `entries` and writes the segment group. With the native
 * binding the graph is built in memory (see buildAndWriteInMemory). On the
 * hnswlib-node fallback it is built on a worker thread and serialized into a
 * staging file: the index segment is sealed from that serialization while
 * hnswlib loads the same file into this thread on the thread pool; the
 * staging file is removed when both are done.
 */
export async function buildAndWriteGroup(
  s: CollectionMemory,
  entries: Location[],
  segId: number,
  tombstones: string[],
  step: string,
  /** The graph of exactly `entries`, in order, if one was grown already (undefined: build it). */
  prebuilt?: () => Promise<NativeGraph | undefined>,
): Promise<BuiltGroup> {
  if (entries.length === 0) {
    const t = process.hrtime.bigint();
    const files = await writeGroup(s, segId, undefined, tombstones, step);
    return { layer: undefined, files, timings: { graphSeconds: 0, writeSeconds: since(t), loadSeconds: 0, grownGraph: false } };
  }
  if (graphBackend() === 'native') return buildAndWriteInMemory(s, entries, segId, tombstones, step, prebuilt);
  return s.ctx.staging.withFile(async (graphFile) => {
    const t0 = process.hrtime.bigint();
    const layer = await assembleLayer(entries, s);
    await buildGraphFile(s.params, layer.flatVectors(), graphFile);
    layer.segmentId = segId;
    crashPoint(`${step}:built`);
    const graphSeconds = since(t0);
    const t1 = process.hrtime.bigint();
    let loadSeconds = 0;
    const loading = loadGraph(s.params, graphFile).then((index) => {
      loadSeconds = since(t1);
      return index;
    });
    // Awaited below on every path: never an unhandled rejection.
    loading.catch(() => undefined);
    let files: SegmentFileEntry[];
    let writeSeconds: number;
    try {
      files = await writeGroup(s, segId, { layer, file: graphFile }, tombstones, step);
      writeSeconds = since(t1);
    } catch (err) {
      await loading.catch(() => undefined);
      throw err;
    }
    layer.attachIndex(await loading);
    return { layer, files, timings: { graphSeconds, writeSeconds, loadSeconds, grownGraph: false } };
  });
}

/**
 * The native path: the graph is built in this process on two threads (the
 * caller's thread free meanwhile) and is the layer's index as built; the
 * index segment is sealed from its serialization, streamed out of the graph's
 * memory through one reused buffer that is zeroed after. No plaintext graph
 * byte reaches a file, not even tmpfs.
 */
async function buildAndWriteInMemory(
  s: CollectionMemory,
  entries: Location[],
  segId: number,
  tombstones: string[],
  step: string,
  prebuilt: (() => Promise<NativeGraph | undefined>) | undefined,
): Promise<BuiltGroup> {
  const t0 = process.hrtime.bigint();
  const layer = await assembleLayer(entries, s);
  // The memtable's background graph, caught up; else built now from the layer's own rows (the memtable's
  // vectors, by reference: no flat copy of the vectors is made).
  const grown = prebuilt ? await prebuilt() : undefined;
  const graph = grown ?? (await buildGraph(s.params, layer.rows()));
  layer.segmentId = segId;
  crashPoint(`${step}:built`);
  const graphSeconds = since(t0);
  const t1 = process.hrtime.bigint();
  let files: SegmentFileEntry[];
  try {
    // Streamed out of the graph's memory through one reused buffer (no whole-graph copy), zeroed at the end.
    const size = graph.serializedSize();
    const buf = Buffer.allocUnsafeSlow(Math.max(1, Math.min(SERIALIZE_BATCH, size)));
    async function* batches(): AsyncGenerator<Uint8Array> {
      for (let off = 0; off < size; ) {
        const n = graph.serializeRange(buf, off);
        if (n === 0) return;
        off += n;
        yield buf.subarray(0, n);
      }
    }
    try {
      files = await writeGroup(s, segId, { layer, bytes: batches(), size }, tombstones, step);
    } finally {
      buf.fill(0);
    }
  } catch (err) {
    graph.free();
    throw err;
  }
  layer.attachIndex(graph);
  return { layer, files, timings: { graphSeconds, writeSeconds: since(t1), loadSeconds: 0, grownGraph: grown !== undefined } };
}

/** Bytes of the graph's serialization sealed per batch: the index segment's 4 MiB write batches. */
const SERIALIZE_BATCH = 256 * 16 * 1024;

/** A tail layer holding the given live records, in order (labels 0..n-1): the caller's thread only copies references. */
async function assembleLayer(entries: Location[], s: CollectionMemory): Promise<Layer> {
  const layer = Layer.tail(s.info.space, s.info.dim, entries.length);
  for (let j = 0; j < entries.length; j++) {
    const e = entries[j] as Location;
    layer.add(e.layer.ids[e.label] as string, e.layer.vectorOf(e.label), e.layer.metadata[e.label]);
    // Let searches run while a large layer is assembled.
    if ((j + 1) % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
  }
  return layer;
}

/**
 * Points every record of `entries` that is still live at its old place to
 * its new label in `layer`; marks the rest (deleted or superseded while
 * the layer was being written) dead.
 */
export function remap(s: CollectionMemory, layer: Layer, entries: Location[]): void {
  entries.forEach((e, j) => {
    const id = e.layer.ids[e.label] as string;
    const loc = s.current.get(id);
    if (loc && loc.layer === e.layer && loc.label === e.label) s.current.set(id, { layer, label: j });
    else layer.markDead(j);
  });
}
