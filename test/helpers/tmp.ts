import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, onTestFinished } from 'vitest';

/**
 * A fresh temp directory. Made inside a test, it is removed when that test
 * finishes; made in a describe block, after each of the block's tests (as before).
 * An `afterEach` registered from inside a running test never runs, which left
 * directories behind, so a test uses `onTestFinished`.
 */
export function tempDir(prefix = 'vs-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    onTestFinished(remove);
  } catch {
    // Not inside a running test: the describe block is being collected.
    afterEach(remove);
  }
  return dir;
}
