import type { ChunkEngine } from '../../src/crypto/engine.js';
import { loadNativeEngine } from '../../src/crypto/native-engine.js';
import { nodeEngine } from '../../src/crypto/node-engine.js';

/** Every engine that can run here: node:crypto always, the native addon when built. */
export function availableEngines(): ChunkEngine[] {
  const native = loadNativeEngine();
  return native ? [nodeEngine, native] : [nodeEngine];
}
