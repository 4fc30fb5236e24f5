import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../reliability/harness/paths.js';
import { findRawFsWrites } from './raw-fs-writes.js';

describe('the file layer is the only writer', () => {
  it('no file under src/ other than the file layer writes through node:fs', () => {
    expect(findRawFsWrites(repoRoot())).toEqual([]);
  });

  it('the check catches a named import, a namespace call and a writable open', () => {
    const root = mkdtempSync(join(tmpdir(), 'vs-lint-'));
    try {
      mkdirSync(join(root, 'src', 'store'), { recursive: true });
      writeFileSync(join(root, 'src', 'store', 'a.ts'), "import { writeFile } from 'node:fs/promises';\n");
      writeFileSync(
        join(root, 'src', 'store', 'b.ts'),
        "import { promises as fs } from 'node:fs';\nawait fs.rename(a, b);\nawait fs.readFile(a);\n",
      );
      writeFileSync(
        join(root, 'src', 'store', 'c.ts'),
        "import { open } from 'node:fs/promises';\nawait open(p, 'w');\nawait open(p, 'r');\n",
      );
      const found = findRawFsWrites(root).map((f) => `${f.file}:${f.line}`);
      expect(found).toEqual(['src/store/a.ts:1', 'src/store/b.ts:2', 'src/store/c.ts:2']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
