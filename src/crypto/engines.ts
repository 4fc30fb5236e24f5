import { InvalidArgumentError } from '../errors.js';
import type { ChunkEngine } from './engine.js';
import { loadNativeEngine } from './native-engine.js';
import { nodeEngine } from './node-engine.js';

export type EngineChoice = 'auto' | 'native' | 'node';

let cached: ChunkEngine | undefined;

/**
 * The engine used when a caller names none: the native addon when it loads,
 * else `node:crypto`. `VECTORSEAL_CRYPTO=node` forces the fallback.
 */
export function defaultEngine(): ChunkEngine {
  cached ??= selectEngine((process.env['VECTORSEAL_CRYPTO'] as EngineChoice | undefined) ?? 'auto');
  return cached;
}

/** Picks an engine by name; 'native' throws when the addon is not built. */
export function selectEngine(choice: EngineChoice): ChunkEngine {
  switch (choice) {
    case 'node':
      return nodeEngine;
    case 'native': {
      const native = loadNativeEngine();
      if (!native) throw new InvalidArgumentError('the native crypto engine is not available (addon not built)');
      return native;
    }
    case 'auto':
      return loadNativeEngine() ?? nodeEngine;
    default:
      throw new InvalidArgumentError(`crypto engine expected 'auto', 'native' or 'node', got "${String(choice)}"`);
  }
}
