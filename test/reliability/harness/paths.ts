import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file whether it runs from test/ (vitest) or from a compiled copy under dist/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('repository root not found');
}

export const WRITER_SCRIPT = (): string => join(repoRoot(), 'test', 'reliability', 'harness', 'writer.mjs');
export const DIST_DIR = (): string => join(repoRoot(), 'dist');
