import type { ChunkEngine } from './engine.js';

/** Loads the native page engine; undefined until the addon is built. */
export function loadNativeEngine(): ChunkEngine | undefined {
  return undefined;
}
