import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const REPO = join(import.meta.dirname, '..', '..');

/** The `n`-th ```js block of the README section whose heading starts with `heading`. */
export function readmeExample(heading: string, n = 0): string {
  const text = readFileSync(join(REPO, 'README.md'), 'utf8');
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^#{2,4} /.test(l) && l.replace(/^#+ /, '').startsWith(heading));
  if (start < 0) throw new Error(`README has no section "${heading}"`);
  let end = lines.findIndex((l, i) => i > start && /^#{2,3} /.test(l));
  if (end < 0) end = lines.length;
  const section = lines.slice(start + 1, end).join('\n');
  const blocks = [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  const block = blocks[n];
  if (block === undefined) throw new Error(`README section "${heading}" has no js example #${n}`);
  return block;
}
