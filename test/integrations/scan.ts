import { promises as fs } from 'node:fs';
import { join } from 'node:path';

/** Every regular file under `dir`, recursively (`dir` itself when it is a file). */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  const st = await fs.stat(dir).catch(() => undefined);
  if (st?.isFile()) return [dir];
  await walk(dir);
  return out;
}

/** The needles (label, bytes) found in any file under the directories: [] when the directories hold none. */
export async function findPlaintext(dirs: string[], needles: [string, Buffer][]): Promise<string[]> {
  const found: string[] = [];
  for (const dir of dirs) {
    for (const file of await filesUnder(dir)) {
      const bytes = await fs.readFile(file);
      for (const [label, needle] of needles) if (bytes.includes(needle)) found.push(`${label} in ${file}`);
    }
  }
  return found;
}

/** The float32 bytes of `values` (a window of a vector). */
export function f32(values: number[]): Buffer {
  return Buffer.from(Float32Array.from(values).buffer);
}
