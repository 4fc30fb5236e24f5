import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO, readmeExample } from './readme.js';
import { findPlaintext } from './scan.js';

const run = promisify(execFile);

/**
 * An app directory whose node_modules links this checkout as `vectorseal`
 * (its built dist/, through the package's exports) and the host libraries
 * from the checkout's own node_modules: the README's examples run as an app
 * would run them, without a network install (the packed-tarball test does
 * that for the LangChain example).
 */
function linkedApp(): string {
  if (!existsSync(join(REPO, 'dist', 'integrations', 'llamaindex', 'index.js'))) {
    throw new Error('dist/ is not built: run `npm run build` first (npm test does)');
  }
  const app = mkdtempSync(join(tmpdir(), 'vs-readme-'));
  afterEach(() => rmSync(app, { recursive: true, force: true }));
  mkdirSync(join(app, 'node_modules'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
  symlinkSync(REPO, join(app, 'node_modules', 'vectorseal'));
  for (const dep of ['llamaindex', '@llamaindex', 'hnswlib-node'])
    symlinkSync(join(REPO, 'node_modules', dep), join(app, 'node_modules', dep));
  return app;
}

describe('README examples', () => {
  it('the LlamaIndex.TS example runs and retrieves the filtered document; nothing in clear in its store', async () => {
    const app = linkedApp();
    writeFileSync(join(app, 'example.mjs'), readmeExample('LlamaIndex.TS'));
    const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: app, timeout: 60_000 });
    expect(stdout).toContain('Refunds are accepted within 30 days.');
    expect(stdout).not.toContain('Annual plans');
    expect(stdout).not.toContain('password');
    expect(
      await findPlaintext(
        [join(app, 'nodes')],
        [
          ['text', Buffer.from('Refunds are accepted')],
          ['metadata', Buffer.from('billing')],
        ],
      ),
    ).toEqual([]);
  });

  it('the hnswlib-node example runs and the read-back index answers like the original', async () => {
    const app = linkedApp();
    const code = readmeExample('hnswlib-node').replace(
      'console.log(loaded.searchKnn([1, 0, 0], 2));',
      'console.log(JSON.stringify({ loaded: loaded.searchKnn([1, 0, 0], 2), original: index.searchKnn([1, 0, 0], 2) }));',
    );
    expect(code).toContain('original: index.searchKnn');
    writeFileSync(join(app, 'example.mjs'), code);
    const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: app, timeout: 60_000 });
    const out = JSON.parse(stdout.trim().split('\n')[0] as string) as { loaded: unknown; original: unknown };
    expect(out.loaded).toEqual(out.original);
    expect(out.loaded).toMatchObject({ neighbors: [0, 2] });
  });
});
