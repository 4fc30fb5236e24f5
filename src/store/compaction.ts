import { removeFile } from '../util/durable.js';
import { errorCode } from '../errors.js';
import { filePins, segmentFile, type ManifestData, type SegmentGroup } from '../storage/manifest.js';
import { SegmentKind, readSegment } from '../storage/segment.js';
import { crashPoint } from '../util/crash.js';
import { decodeList } from './blocks.js';
import { commit, retire, rotateWal } from './collection-files.js';
import { buildAndWriteGroup, remap } from './collection-flush.js';
import type { CollectionMemory, Location } from './collection-memory.js';
import type { Layer } from './layer.js';

/*
 * Background compaction with size-tiered merging. A group's tier is
 * floor(log_FANIN(records)); FANIN adjacent groups of one tier merge into one
 * group of the next tier, so each record is rewritten about
 * log_FANIN(collection / flush size) times (bounded write amplification) and
 * a query searches few groups. Merging starts once a collection has more
 * than the store's maxSegments groups: the oldest run of FANIN groups of one
 * tier first, else the smallest adjacent run that brings the count back.
 *
 * The merge runs beside writes, flushes and searches: the groups are chosen
 * and their live records snapshotted at once; the new group's graph is built
 * on a worker thread and its files written without any lock; only the
 * manifest commit and the swap in memory take the collection's exclusive
 * lock, briefly, and are abandoned if the chosen groups changed meanwhile (a
 * full compaction or a re-encryption rewrote them). A crash at any point
 * leaves the previous manifest in force and the new files orphans, which
 * opening removes.
 */

const FANIN = 4;

/** Starts the background compaction if the groups call for one and none runs. */
export function scheduleCompaction(s: CollectionMemory): void {
  if (s.compacting || s.quiescing || s.closed || !s.loaded || pickRun(s.manifest.groups, s.ctx.maxSegments) === undefined) return;
  s.compacting = (async () => {
    // Bounded: each round merges at least two groups into one.
    for (let round = 0; round < 64 && !s.quiescing && !s.closed && s.loaded; round++) {
      if (!(await compactOnce(s))) break;
    }
  })()
    .catch((err: unknown) => s.ctx.logger.warn({ collection: s.info.name, err: errorCode(err) }, 'background compaction failed'))
    .finally(() => {
      s.compacting = undefined;
    });
}

/**
 * The groups to merge next, as [first, end) indices into `groups`, once
 * there are more than `maxGroups`: the oldest run of FANIN adjacent groups
 * of one tier, else the adjacent run with the fewest records that brings the count back to
 * `maxGroups`; undefined when the groups are fine as they are.
 */
export function pickRun(groups: readonly Pick<SegmentGroup, 'count'>[], maxGroups: number): [number, number] | undefined {
  // Nothing merges at or below the store's limit: a layout callers chose (maxSegments) is kept as it is.
  if (groups.length <= maxGroups) return undefined;
  const tier = (count: number): number => Math.floor(Math.log(Math.max(1, count)) / Math.log(FANIN));
  let start = 0;
  for (let i = 1; i <= groups.length; i++) {
    if (i < groups.length && tier((groups[i] as SegmentGroup).count) === tier((groups[start] as SegmentGroup).count)) continue;
    if (i - start >= FANIN) return [start, i];
    start = i;
  }
  const width = groups.length - maxGroups + 1;
  let best: [number, number] | undefined;
  let bestSum = Infinity;
  for (let i = 0; i + width <= groups.length; i++) {
    let sum = 0;
    for (let j = i; j < i + width; j++) sum += (groups[j] as SegmentGroup).count;
    if (sum < bestSum) {
      bestSum = sum;
      best = [i, i + width];
    }
  }
  return best;
}

/** One merge; false when there was nothing to merge or it was abandoned. */
async function compactOnce(s: CollectionMemory): Promise<boolean> {
  const groups = s.manifest.groups;
  const run = pickRun(groups, s.ctx.maxSegments);
  if (!run) return false;
  const chosen = groups.slice(run[0], run[1]);
  const layers = new Map<number, Layer>();
  for (const l of s.segments) if (l.segmentId !== undefined) layers.set(l.segmentId, l);
  const entries: Location[] = [];
  for (const g of chosen) {
    const l = layers.get(g.id);
    if (l) for (let i = 0; i < l.size; i++) if (!l.isDead(i)) entries.push({ layer: l, label: i });
  }
  const segId = s.takeSegmentId();
  // Tombstones of a run that is not the oldest still mask records in the groups before it.
  const tombstones = run[0] === 0 ? [] : await readTombstones(s, chosen);
  const { layer, files } = await buildAndWriteGroup(s, entries, segId, tombstones, 'compact');
  const dropFiles = async (): Promise<void> => {
    for (const f of files) await removeFile(segmentFile(s.dir, segId, f.kind));
  };
  return s.exclusive(async () => {
    const now = s.manifest.groups;
    const at = now.findIndex((g) => g.id === (chosen[0] as SegmentGroup).id);
    const intact =
      !s.closed &&
      s.loaded &&
      at >= 0 &&
      chosen.every((g, i) => now[at + i] === g) &&
      chosen.every((g) => !g.files.some((f) => f.kind === SegmentKind.Vectors) || s.segments.includes(layers.get(g.id) as Layer));
    if (!intact) {
      await dropFiles();
      return false;
    }
    const merged: SegmentGroup[] = files.length > 0 ? [{ id: segId, count: entries.length, files }] : [];
    const next: ManifestData = {
      ...s.manifest,
      generation: s.manifest.generation + 1,
      nextSegmentId: Math.max(s.manifest.nextSegmentId, segId + 1),
      groups: [...now.slice(0, at), ...merged, ...now.slice(at + chosen.length)],
    };
    await commit(s, next);
    crashPoint('compact:committed');
    // Swap in memory, synchronously, so a search sees either layout whole.
    const old = new Set(chosen.map((g) => layers.get(g.id)));
    if (layer) {
      // The merged layer keeps its own copy of the vectors: exact scans of selective filters read it.
      remap(s, layer, entries);
    }
    s.segments = [...s.segments.filter((l) => !old.has(l)), ...(layer ? [layer] : [])];
    await rotateWal(s);
    // Readers of an earlier snapshot may still open these: removed after the grace period (retired-files.ts).
    await retire(
      s,
      chosen.flatMap((g) => g.files.map((f) => segmentFile(s.dir, g.id, f.kind))),
    );
    crashPoint('compact:done');
    s.ctx.logger.debug(
      { collection: s.info.name, merged: chosen.length, records: entries.length, generation: next.generation },
      'background compaction committed',
    );
    return true;
  });
}

/** The ids the chosen groups' tombstone blocks hold (read and checked against the manifest). */
async function readTombstones(s: CollectionMemory, chosen: SegmentGroup[]): Promise<string[]> {
  const out = new Set<string>();
  await s.withKeys(async (keyFor) => {
    for (const g of chosen) {
      const f = g.files.find((x) => x.kind === SegmentKind.Tombstones);
      if (!f) continue;
      const file = segmentFile(s.dir, g.id, SegmentKind.Tombstones);
      const bytes = await readSegment(
        file,
        {
          storeId: s.ctx.storeId,
          collectionId: s.info.id,
          kind: SegmentKind.Tombstones,
          segmentId: g.id,
          dekVersion: f.dekVersion,
          ...filePins(f),
        },
        keyFor,
      );
      try {
        for (const id of decodeList(bytes, undefined, file)) if (typeof id === 'string') out.add(id);
      } finally {
        bytes.fill(0);
      }
    }
  });
  return [...out];
}
