import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Without the built addon the package must still work, on node:crypto, with
 * the same bytes: a copy of the compiled package where no addon can be found
 * (npm test builds dist first; run `npm run build` before running this file alone).
 */
describe('no native addon', () => {
  it('falls back to node:crypto everywhere, pool included, with identical bytes', () => {
    const dist = fileURLToPath(new URL('../../dist', import.meta.url));
    expect(existsSync(join(dist, 'crypto', 'pool.js')), 'the compiled package is missing: run `npm run build`').toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'vectorseal-noaddon-'));
    try {
      cpSync(join(dist, 'crypto'), join(dir, 'crypto'), { recursive: true });
      cpSync(join(dist, 'errors.js'), join(dir, 'errors.js'));
      // The crypto layer's helpers (the addon loader among them) live in util.
      cpSync(join(dist, 'util'), join(dir, 'util'), { recursive: true });
      // type: module, so that the copied .js files load as ESM.
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      const code = `
        const { loadNativeEngine } = await import('./crypto/native-engine.js');
        const { defaultEngine } = await import('./crypto/engines.js');
        const { seal } = await import('./crypto/chunked.js');
        const { sealParallel, CryptoPool } = await import('./crypto/pool.js');
        const { nodeEngine } = await import('./crypto/node-engine.js');
        const key = Buffer.alloc(32, 7), salt = Buffer.alloc(24, 9), msg = Buffer.alloc(1 << 20, 3);
        const pool = new CryptoPool({ minParallelBytes: 1024 });
        const a = Buffer.from(await sealParallel(key, Buffer.from('c'), msg, { salt, pool }));
        const b = Buffer.from(seal(key, Buffer.from('c'), msg, { salt, engine: nodeEngine }));
        console.log(JSON.stringify({
          native: loadNativeEngine() === undefined ? 'none' : 'loaded',
          engine: defaultEngine().name,
          workers: pool.workerEngine,
          same: a.equals(b),
        }));
        await pool.close();`;
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, VECTORSEAL_NATIVE_ADDON: '' },
      });
      expect(run.stderr).toBe('');
      expect(JSON.parse(run.stdout)).toEqual({ native: 'none', engine: 'node', workers: 'node', same: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
