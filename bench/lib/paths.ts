import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root: the nearest directory above this file whose
 * package.json is vectorseal's own. bench/ has a package.json of its own (the
 * benchmark-only peers), and compiled copies live under dist/, so neither
 * "nearest package.json" nor a fixed number of `..` works from every copy.
 */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'vectorseal') return dir;
      } catch {
        // An unreadable package.json is not ours: keep walking up.
      }
    }
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** bench/ in the repository (its package.json and node_modules hold the peers). */
export function benchDir(): string {
  return join(repoRoot(), 'bench');
}

/** bench/results/ in the repository. */
export function resultsDir(): string {
  return join(benchDir(), 'results');
}
