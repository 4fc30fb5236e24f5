import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO, readmeExample } from './readme.js';
import { findPlaintext } from './scan.js';

const run = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/**
 * A fresh app from the packed tarball: `npm pack`, then `npm install
 * <tarball> @langchain/core` in an empty directory (the native addons build
 * from source: about a minute on 2 cores; it may use the local npm cache),
 * then the README's LangChain example copied in and run. Slow by nature; it
 * is part of `npm test`, which CI runs.
 */
describe('a fresh app with only vectorseal (packed) and @langchain/core', () => {
  it('installs from the tarball without LangChain or LlamaIndex extras and runs the README example', { timeout: 600_000 }, async () => {
    if (!existsSync(join(REPO, 'dist', 'integrations', 'langchain', 'index.js'))) {
      throw new Error('dist/ is not built: run `npm run build` first (npm test does)');
    }
    const root = mkdtempSync(join(tmpdir(), 'vs-packed-'));
    try {
      await freshApp(root);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

/** Packs, installs into `root/app` and runs the README's LangChain example there. */
async function freshApp(root: string): Promise<void> {
  // dist/ is already built (npm test builds first): the pack itself runs no scripts.
  const { stdout: packed } = await run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', root], {
    cwd: REPO,
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const tarball = join(root, (JSON.parse(packed) as { filename: string }[])[0]!.filename);
  const app = join(root, 'app');
  const langchainCore = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> })
    .devDependencies['@langchain/core'];
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', type: 'module', private: true }));
  await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, `@langchain/core@${langchainCore}`], {
    cwd: app,
    timeout: 480_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  // The optional peers stay out: no LlamaIndex, no LangChain community packages.
  expect(existsSync(join(app, 'node_modules', '@llamaindex'))).toBe(false);
  expect(existsSync(join(app, 'node_modules', 'llamaindex'))).toBe(false);
  expect(existsSync(join(app, 'node_modules', '@langchain', 'community'))).toBe(false);

  writeFileSync(join(app, 'example.mjs'), readmeExample('LangChain.js'));
  const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: app, timeout: 60_000 });
  expect(stdout).toContain('Refunds are accepted within 30 days.');
  expect(stdout).toContain('Annual plans are refunded pro rata.');
  expect(stdout).not.toContain('password');
  expect(
    await findPlaintext(
      [join(app, 'vectors')],
      [
        ['text', Buffer.from('Refunds are accepted')],
        ['metadata', Buffer.from('billing')],
      ],
    ),
  ).toEqual([]);
}
