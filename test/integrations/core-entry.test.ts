import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './readme.js';

/** Every source file the module graph from `entry` reaches (relative imports only), and the packages it imports. */
function graph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
      const spec = (m[1] ?? m[2]) as string;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
    }
  };
  visit(entry);
  return { files, packages };
}

describe('package entry points', () => {
  it('the core entry reaches neither LangChain nor LlamaIndex; each integration only its own host library', () => {
    const core = graph(join(REPO, 'src', 'index.ts'));
    expect(core.files.size).toBeGreaterThan(50);
    expect([...core.packages].filter((p) => p.includes('langchain') || p.includes('llamaindex'))).toEqual([]);
    expect([...core.files].some((f) => f.includes('integrations'))).toBe(false);
    const lc = graph(join(REPO, 'src', 'integrations', 'langchain', 'index.ts')).packages;
    expect([...lc].filter((p) => p.startsWith('@langchain') || p.startsWith('@llamaindex') || p === 'llamaindex').sort()).toEqual([
      '@langchain/core',
    ]);
    const li = graph(join(REPO, 'src', 'integrations', 'llamaindex', 'index.ts')).packages;
    expect([...li].filter((p) => p.startsWith('@langchain') || p.startsWith('@llamaindex') || p === 'llamaindex').sort()).toEqual([
      '@llamaindex/core',
    ]);
    const hn = graph(join(REPO, 'src', 'integrations', 'hnswlib', 'index.ts')).packages;
    expect([...hn].filter((p) => p.startsWith('@langchain') || p.startsWith('@llamaindex') || p === 'llamaindex')).toEqual([]);
  });

  it('package.json exports each integration with its own types, and marks the host libraries optional peers', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
      exports: Record<string, { types: string; default: string }>;
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    for (const name of ['langchain', 'llamaindex', 'hnswlib']) {
      expect(pkg.exports[`./${name}`]).toEqual({
        types: `./dist/integrations/${name}/index.d.ts`,
        default: `./dist/integrations/${name}/index.js`,
      });
    }
    for (const peer of ['@langchain/core', '@llamaindex/core']) {
      expect(pkg.peerDependenciesMeta[peer]?.optional).toBe(true);
      expect(pkg.dependencies[peer]).toBeUndefined();
      // The tested version is pinned exactly.
      expect(pkg.devDependencies[peer]).toMatch(/^\d+\.\d+\.\d+$/);
    }
  });
});
