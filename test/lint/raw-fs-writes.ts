import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** The file layer itself: the only files under src/ that may change files through node:fs. */
export const FILE_LAYER = ['src/util/file-layer.ts', 'src/util/fault-file-layer.ts'];

/** node:fs functions that change the file system (or write to a descriptor). */
const WRITES = new Set([
  'writeFile',
  'writeFileSync',
  'appendFile',
  'appendFileSync',
  'rename',
  'renameSync',
  'link',
  'linkSync',
  'unlink',
  'unlinkSync',
  'rm',
  'rmSync',
  'rmdir',
  'rmdirSync',
  'mkdir',
  'mkdirSync',
  'mkdtemp',
  'mkdtempSync',
  'truncate',
  'truncateSync',
  'ftruncate',
  'ftruncateSync',
  'copyFile',
  'copyFileSync',
  'cp',
  'cpSync',
  'chmod',
  'chmodSync',
  'fchmod',
  'fchmodSync',
  'chown',
  'chownSync',
  'symlink',
  'symlinkSync',
  'write',
  'writeSync',
  'writev',
  'writevSync',
  'fsync',
  'fsyncSync',
  'fdatasync',
  'fdatasyncSync',
  'createWriteStream',
  'utimes',
  'utimesSync',
]);
/** Opening is reading unless the flags say otherwise: allowed only with a read-only flag on the same line. */
const OPENS = new Set(['open', 'openSync']);
const READ_ONLY = /'r'|"r"|O_RDONLY/;

export interface RawWrite {
  file: string;
  line: number;
  text: string;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Every place under `root`/src, outside the file layer, that writes through node:fs directly. */
export function findRawFsWrites(root: string): RawWrite[] {
  const found: RawWrite[] = [];
  for (const path of sources(join(root, 'src'))) {
    const rel = relative(root, path).split(sep).join('/');
    if (FILE_LAYER.includes(rel)) continue;
    const text = readFileSync(path, 'utf8');
    const lines = text.split('\n');
    const named = new Set<string>();
    const namespaces = new Set<string>();
    const importRe = /import\s+(type\s+)?([^;]*?)\s+from\s+['"](?:node:)?fs(?:\/promises)?['"]/gs;
    for (const m of text.matchAll(importRe)) {
      if (m[1] !== undefined) continue;
      const clause = m[2] ?? '';
      const ns = /\*\s+as\s+(\w+)/.exec(clause);
      if (ns?.[1] !== undefined) namespaces.add(ns[1]);
      const def = /^(\w+)\s*(,|$)/.exec(clause.trim());
      if (def?.[1] !== undefined) namespaces.add(def[1]);
      const braces = /\{([^}]*)\}/s.exec(clause)?.[1] ?? '';
      for (const part of braces.split(',')) {
        const [name, alias] = part
          .trim()
          .replace(/^type\s+/, '')
          .split(/\s+as\s+/);
        if (name === undefined || name === '' || part.trim().startsWith('type ')) continue;
        if (name === 'promises') namespaces.add(alias ?? 'promises');
        else named.add(alias ?? name);
        if (WRITES.has(name)) found.push({ file: rel, line: lineOf(text, m.index ?? 0), text: `imports ${name}` });
      }
    }
    lines.forEach((line, i) => {
      for (const ns of namespaces) {
        for (const m of line.matchAll(new RegExp(`\\b${ns}\\.(\\w+)\\(`, 'g'))) {
          const fn = m[1] ?? '';
          if (WRITES.has(fn) || (OPENS.has(fn) && !READ_ONLY.test(line))) found.push({ file: rel, line: i + 1, text: line.trim() });
        }
      }
      for (const fn of OPENS) {
        if (named.has(fn) && new RegExp(`(^|[^.\\w])${fn}\\(`).test(line) && !READ_ONLY.test(line) && !/^\s*(\*|\/\/)/.test(line)) {
          found.push({ file: rel, line: i + 1, text: line.trim() });
        }
      }
    });
  }
  return found;
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}
