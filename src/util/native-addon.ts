import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Loads one of vectorseal's own native addons from where node-gyp leaves it
 * (`<package>/<...buildDir>/<file>`). It is found by walking up from the
 * calling module (src/... in tests, dist/... in the package, any compiled
 * copy): the path comes from the package's own location, never from the data
 * directory or any other input; `first` is a path the caller's process
 * environment named, tried before the others.
 *
 * Returns undefined when no candidate exists or none loads (a stale build for
 * another Node ABI): the caller falls back to its JavaScript path.
 */
export function loadOwnAddon<T>(
  fromUrl: string,
  buildDir: readonly string[],
  file: string,
  first?: string,
): { addon: T; path: string } | undefined {
  const paths = first ? [first] : [];
  let dir = dirname(fileURLToPath(fromUrl));
  for (;;) {
    paths.push(join(dir, ...buildDir, file));
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  const require = createRequire(fromUrl);
  for (const path of paths) {
    if (!existsSync(path)) continue;
    try {
      return { addon: require(path) as T, path };
    } catch {
      // Try the next candidate.
    }
  }
  return undefined;
}
