import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIOME = join(ROOT, 'node_modules', '@biomejs', 'biome', 'bin', 'biome');

/** A copy of src/ and the lint config, so planted files never touch the tree. */
function copyOfTree(): string {
  const dir = tempDir('i18-layers-');
  cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
  cpSync(join(ROOT, 'biome.jsonc'), join(dir, 'biome.jsonc'));
  return dir;
}

function lint(dir: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [BIOME, 'lint', '--max-diagnostics=50', 'src'], { cwd: dir, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('the import-boundary rule', () => {
  it('passes on the tree as it is', () => {
    const r = lint(copyOfTree());
    expect(r.out).not.toContain('noRestrictedImports');
    expect(r.status).toBe(0);
  });

  it('fails on an import from store into storage, naming the file', () => {
    const dir = copyOfTree();
    writeFileSync(join(dir, 'src/storage/planted.ts'), "export { Store } from '../store/store.js';\n");
    const r = lint(dir);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/src\/storage\/planted\.ts:1:\d+ lint\/style\/noRestrictedImports/);
    expect(r.out).toContain('layers: storage may use crypto, errors and util only.');
  });

  it('fails on an import from keys into crypto, a type-only one and a dynamic one too', () => {
    const dir = copyOfTree();
    writeFileSync(
      join(dir, 'src/crypto/planted.ts'),
      [
        "import type { KeyManager } from '../keys/key-manager.js';",
        "export const load = (): Promise<unknown> => import('../keys/index.js');",
        'export type K = KeyManager;',
        '',
      ].join('\n'),
    );
    const r = lint(dir);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/src\/crypto\/planted\.ts:1:\d+ lint\/style\/noRestrictedImports/);
    expect(r.out).toMatch(/src\/crypto\/planted\.ts:2:\d+ lint\/style\/noRestrictedImports/);
  });

  it('refuses storage in keys and kms, fsutil included (durable files come from util/file-layer)', () => {
    const dir = copyOfTree();
    writeFileSync(
      join(dir, 'src/keys/planted.ts'),
      "export { writeFileAtomic } from '../storage/fsutil.js';\nexport * from '../storage/wal.js';\n",
    );
    writeFileSync(join(dir, 'src/kms/planted.ts'), "export * from '../storage/segment.js';\nexport * from '../keys/index.js';\n");
    const r = lint(dir);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/src\/keys\/planted\.ts:1:\d+ lint\/style\/noRestrictedImports/);
    expect(r.out).toMatch(/src\/keys\/planted\.ts:2:\d+ lint\/style\/noRestrictedImports/);
    expect(r.out).toMatch(/src\/kms\/planted\.ts:1:\d+ lint\/style\/noRestrictedImports/);
    expect(r.out).toMatch(/src\/kms\/planted\.ts:2:\d+ lint\/style\/noRestrictedImports/);
  });
});
