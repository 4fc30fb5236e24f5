// Fails when a source line is longer than the house limit. The formatter wraps code at the same width,
// but it leaves comments and string literals alone; this check covers them too.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const LIMIT = 140;
const ROOTS = ['src', 'test', 'bench'];
const EXTENSIONS = ['.ts', '.mjs'];

function* sourceFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') yield* sourceFiles(path);
    } else if (EXTENSIONS.some((ext) => entry.name.endsWith(ext))) {
      yield path;
    }
  }
}

let long = 0;
for (const root of ROOTS) {
  for (const file of sourceFiles(root)) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.length > LIMIT) {
          long++;
          console.error(`${file}:${i + 1}: ${line.length} characters (limit ${LIMIT})`);
        }
      });
  }
}
if (long > 0) {
  console.error(`${long} line(s) longer than ${LIMIT} characters`);
  process.exit(1);
}
