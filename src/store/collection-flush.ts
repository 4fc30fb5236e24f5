import { segmentFile, type ManifestData } from '../storage/manifest.js';
import { SegmentKind } from '../storage/segment.js';
import { crashPoint } from '../util/crash.js';
import { commit, endWalFile, removeWalBefore, retire, rotateWal, writeGroup } from './collection-files.js';
import { buildGraph } from './graph-build.js';
import { YIELD_EVERY, type CollectionMemory, type Location } from './collection-memory.js';
import type { CompactionReport } from './collection-types.js';
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
  // Searches go on meanwhile: the frozen memtable is scanned exactly until the new layer replaces it.
  const layer = entries.length > 0 ? await buildLayer(s, entries, segId) : undefined;
  const files = await writeGroup(s, segId, layer, [...frozen.tombstones], 'flush');
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
  s.ctx.logger.debug({ collection: s.info.name, segmentId: segId, records: labels.length, generation: next.generation }, 'flush committed');
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
  const layer = entries.length > 0 ? await buildLayer(s, entries, segId) : undefined;
  crashPoint('compact:built');
  // Every older group is merged: no tombstone has anything left to mask.
  const files = await writeGroup(s, segId, layer, [], 'compact');
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
  await retire(s, oldGroups.flatMap((g) => g.files.map((f) => segmentFile(s.dir, g.id, f.kind))));
  crashPoint('compact:done');
  s.ctx.logger.debug({ collection: s.info.name, merged: oldGroups.length, records: entries.length, dropped: dead }, 'compaction committed');
  return { merged: oldGroups.length, records: entries.length, dropped: dead };
}

/**
 * A new segment layer holding the given live records, with its HNSW graph
 * built on a worker thread (graph-build.ts): the caller's thread only copies
 * references and the vectors the worker takes.
 */
export async function buildLayer(s: CollectionMemory, entries: Location[], segId: number): Promise<Layer> {
  const layer = Layer.tail(s.info.space, s.info.dim, entries.length);
  for (let j = 0; j < entries.length; j++) {
    const e = entries[j] as Location;
    layer.add(e.layer.ids[e.label] as string, e.layer.vectorOf(e.label), e.layer.metadata[e.label]);
    // Let searches run while a large layer is assembled.
    if ((j + 1) % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
  }
  layer.attachIndex(await buildGraph(s.params, layer.flatVectors(), s.ctx.staging));
  layer.segmentId = segId;
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
