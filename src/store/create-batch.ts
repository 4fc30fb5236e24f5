import { mkdirs } from '../util/durable.js';
import { fileLayer } from '../util/file-layer.js';
import { join } from 'node:path';
import { fsyncDir } from '../storage/fsutil.js';
import type { ManifestRef } from '../storage/state-file.js';
import type { CollectionInfo } from './catalog.js';
import { Collection, type CollectionContext } from './collection.js';
import type { StoreState } from './state.js';

/**
 * How {@link Collection.create} makes a new collection's directories and
 * names its first manifest in the store state. Alone, each collection fsyncs
 * its own directory entries and writes STATE once (O(collections) bytes);
 * a batch (below) shares both, so creating n collections costs O(1) STATE
 * writes per group rather than one per collection.
 */
export interface CreateSteps {
  /** Makes `collections/<id>/` with its `wal/` and `seg/` (their entries are made durable later: see {@link createCollectionFiles}). */
  makeDirs(collectionDir: string): Promise<void>;
  /** Names the first manifest in the store state, durably, before it is renamed into place (the temp file is already fsynced). */
  announce(collectionId: string, ref: ManifestRef): Promise<void>;
}

/** Collections whose files are made at once: each holds one open file until its manifest is announced. */
const GROUP = 256;

/**
 * Makes the files of new collections (whose keys and 'creating' catalog
 * entries are written already) in groups: every member writes and fsyncs its
 * manifest's temp file, then one STATE write announces all of the group's
 * manifests, then each is renamed into place and its directory fsynced
 * (which covers `wal/`, `seg/` and MANIFEST alike), then `collections/`
 * and the store directory are fsynced once for the whole group.
 *
 * The crash promise is today's: until the caller's final CATALOG write, a
 * crash leaves 'creating' entries that the next open finishes (a MANIFEST is
 * there) or undoes (it is not, e.g. because its directory entry was not yet
 * durable); every entry the caller then acknowledges has all of its
 * directory entries fsynced first. Every member runs to the end before a
 * failure is thrown, so the caller's undo never races a member still writing.
 */
export async function createCollectionFiles(ctx: CollectionContext, infos: readonly CollectionInfo[]): Promise<Collection[]> {
  const made: Collection[] = [];
  let failure: { err: unknown } | undefined;
  for (let at = 0; at < infos.length && failure === undefined; at += GROUP) {
    const group = infos.slice(at, at + GROUP);
    const barrier = new AnnounceBarrier(ctx.state, group.length);
    const steps: CreateSteps = {
      makeDirs: async (dir) => {
        // Not recursive: that tries the deepest directory first and fails once per collection; `collections/` exists but for the first.
        await fileLayer()
          .mkdir(dir, 0o700)
          .catch(async (err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
            await mkdirs(dir, 0o700);
          });
        await fileLayer().mkdir(join(dir, 'wal'), 0o700);
        await fileLayer().mkdir(join(dir, 'seg'), 0o700);
      },
      announce: (id, ref) => barrier.announce(id, ref),
    };
    const results = await Promise.allSettled(
      group.map((info) =>
        Collection.create(ctx, info, steps).catch((err: unknown) => {
          barrier.leave(info.id);
          throw err;
        }),
      ),
    );
    for (const r of results) {
      if (r.status === 'fulfilled') made.push(r.value);
      else failure ??= { err: r.reason };
    }
    // The new `collections/<id>` entries (and `collections/` itself, for a store's first collection).
    const collections = join(ctx.storeDir, 'collections');
    await fsyncDir(collections);
    await fsyncDir(ctx.storeDir);
  }
  if (failure !== undefined) {
    await Promise.allSettled(made.map((c) => c.close({ flush: false })));
    throw failure.err;
  }
  return made;
}

/**
 * Holds each member's announcement until every member of the group has
 * announced (or failed before it), then writes them all in one STATE commit;
 * every announcer resolves only once that write is durable.
 */
class AnnounceBarrier {
  private readonly refs = new Map<string, ManifestRef>();
  private readonly gone = new Set<string>();
  private readonly written: Promise<void>;
  private release!: () => void;

  constructor(
    private readonly state: StoreState,
    private readonly size: number,
  ) {
    const gate = new Promise<void>((resolve) => {
      this.release = resolve;
    });
    this.written = gate.then(() => this.state.announceManifests([...this.refs]));
    // Awaited by every member that announced; with none (all failed first), nobody would see a failure.
    this.written.catch(() => undefined);
  }

  announce(collectionId: string, ref: ManifestRef): Promise<void> {
    this.refs.set(collectionId, { ...ref });
    this.check();
    return this.written;
  }

  /** A member failed; if it had not announced, the others no longer wait for it. */
  leave(collectionId: string): void {
    if (!this.refs.has(collectionId)) this.gone.add(collectionId);
    this.check();
  }

  private check(): void {
    if (this.refs.size + this.gone.size === this.size) this.release();
  }
}
