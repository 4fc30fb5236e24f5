import { removeFile } from '../util/durable.js';

/** Default time a writer keeps an obsolete file (see {@link RetiredFiles}). */
export const DEFAULT_RETIRED_FILE_GRACE_MS = 30_000;

/**
 * Deferred removal of the files a writer made obsolete: WAL files a flush
 * covered, segment groups a compaction merged or a re-encryption rewrote.
 * Each is removed `graceMs` after the manifest that dropped it was committed
 * instead of at once, so a reader in another process that read the previous
 * manifest finds every file that manifest lists while it loads its snapshot
 * (a reader loads everything into memory and needs no file afterwards).
 *
 * Why a grace period and not leases or reference counts in files: a reader
 * writes no file at all (it may run on a read-only mount, or as a user who
 * cannot write the directory), so the writer cannot learn of it; and nothing
 * here is trusted: an attacker who can edit the directory can delete files
 * anyway, so this is about liveness only. A reader slower than the grace
 * period sees a file gone, which its bounded retry takes for what it is (the
 * writer moved on) and reads the newer snapshot. The pending removals live
 * in memory: after a crash the next writer open removes the leftovers (WAL
 * files below the manifest's first, segments no manifest lists). A dead
 * reader holds nothing, so nothing can block a removal.
 */
export class RetiredFiles {
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(private readonly graceMs: number = DEFAULT_RETIRED_FILE_GRACE_MS) {}

  /** Schedules the removal of `paths` (with a grace period of 0: removes them now). */
  async retire(paths: readonly string[]): Promise<void> {
    if (this.graceMs === 0) {
      for (const p of paths) await removeFile(p);
      return;
    }
    for (const p of paths) {
      if (this.pending.has(p)) continue;
      const t = setTimeout(() => {
        this.pending.delete(p);
        removeFile(p).catch(() => undefined);
      }, this.graceMs);
      // A pending removal must not keep the process alive; the next open removes what is left.
      t.unref();
      this.pending.set(p, t);
    }
  }

  /** Files waiting for removal (for tests and stats). */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Removes now the pending files under `dir` (a collection about to destroy
   * the DEK versions they are sealed under: they could not be read after).
   */
  async removeUnder(dir: string): Promise<void> {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    for (const [p, t] of [...this.pending]) {
      if (!p.startsWith(prefix)) continue;
      clearTimeout(t);
      this.pending.delete(p);
      await removeFile(p);
    }
  }

  /** Removes every pending file now (the writer closes: no manifest it wrote lists them). */
  async removeAll(): Promise<void> {
    const paths = [...this.pending.keys()];
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
    for (const p of paths) await removeFile(p);
  }
}
