import { promises as fs } from 'node:fs';
import { join } from 'node:path';

/**
 * The named crash points a writer can reach, read from the built package so
 * that points other engineers add (re-keying, re-encryption) are exercised
 * without editing this list. A `${step}:...` template in collection.ts is
 * expanded for both of its callers (flush and compact).
 */
const EXERCISED = /^(wal|flush|compact|graph|manifest|index|atomic|rotate|rekey|reencrypt|state):/;
const STEPS = ['flush', 'compact'];

export async function discoverCrashPoints(distDir: string): Promise<string[]> {
  const found = new Set<string>();
  for (const file of await listJs(distDir)) {
    const text = await fs.readFile(file, 'utf8');
    for (const m of text.matchAll(/crashPoint\((['"`])([^'"`]+)\1\)/g)) {
      const name = m[2] as string;
      if (name.includes('${step}')) for (const s of STEPS) found.add(name.replace('${step}', s));
      else found.add(name);
    }
  }
  // A compaction writes tombstones only when it merges a run that is not the oldest, which a short writer rarely reaches.
  return [...found].filter((n) => EXERCISED.test(n) && n !== 'compact:tombstones-written').sort();
}

async function listJs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    // Bench and test builds hold copies of the sources; the package is what children run.
    if (entry.isDirectory() && !entry.name.startsWith('bench')) out.push(...(await listJs(p)));
    else if (entry.isFile() && entry.name.endsWith('.js')) out.push(p);
  }
  return out;
}

/** How many times a point is typically reached by one writer's run: the occurrence to kill at is drawn below it. */
export function typicalHits(point: string): number {
  if (point.startsWith('wal:')) return 12;
  if (point.startsWith('atomic:')) return 6;
  if (point.startsWith('manifest:')) return 4;
  if (point.startsWith('state:')) return 6;
  if (point === 'rotate:rewrap-one') return 4;
  if (point.startsWith('flush:') || point.startsWith('graph:') || point === 'index:staged') return 3;
  return 2;
}
