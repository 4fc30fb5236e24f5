import { describe, expect, it } from 'vitest';
import { loadNativeGcm, nodeGcm, type GcmPrimitive } from '../../src/crypto/gcm.js';
import { hex, loadWycheproof } from '../helpers/vectors.js';

/**
 * The bare AES-GCM primitive under both page engines, against Wycheproof's
 * aes_gcm_test.json: every 256-bit-key group with a 96-bit IV and 128-bit tag
 * (the shape the page engines use), through node:crypto and through the addon.
 */

interface GcmTest {
  tcId: number;
  comment: string;
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
  flags: string[];
}
interface GcmGroup {
  keySize: number;
  ivSize: number;
  tagSize: number;
  tests: GcmTest[];
}

const file = loadWycheproof<GcmGroup>('aes_gcm_test.json');
const tests = file.testGroups.filter((g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128).flatMap((g) => g.tests);
const native = loadNativeGcm();
const primitives: GcmPrimitive[] = native ? [nodeGcm, native] : [nodeGcm];

describe.each(primitives)('Wycheproof AES-256-GCM, 96-bit IV ($name)', (gcm) => {
  it('has the 256-bit, 96-bit-IV vectors', () => {
    expect(tests.length).toBeGreaterThanOrEqual(60);
  });

  it.each(tests)('tcId $tcId $result: $comment', (t) => {
    const [key, iv, aad, msg] = [hex(t.key), hex(t.iv), hex(t.aad), hex(t.msg)];
    const sealed = Buffer.concat([hex(t.ct), hex(t.tag)]);
    const opened = gcm.open(key, iv, aad, sealed);
    if (t.result === 'valid') {
      expect(Buffer.from(gcm.seal(key, iv, aad, msg)).toString('hex')).toBe(sealed.toString('hex'));
      expect(opened && Buffer.from(opened).toString('hex')).toBe(msg.toString('hex'));
    } else {
      expect(opened).toBeUndefined();
    }
  });
});

describe('native and node:crypto AES-GCM agree', () => {
  it.runIf(native)('on every 256-bit vector with a 1- to 128-byte IV (the range OpenSSL accepts)', () => {
    const all = file.testGroups.filter((g) => g.keySize === 256 && g.ivSize >= 8 && g.ivSize <= 1024).flatMap((g) => g.tests);
    for (const t of all) {
      const [key, iv, aad, msg] = [hex(t.key), hex(t.iv), hex(t.aad), hex(t.msg)];
      const sealed = Buffer.concat([hex(t.ct), hex(t.tag)]);
      expect(Buffer.from(native!.seal(key, iv, aad, msg)).equals(Buffer.from(nodeGcm.seal(key, iv, aad, msg)))).toBe(true);
      expect(native!.open(key, iv, aad, sealed) === undefined).toBe(nodeGcm.open(key, iv, aad, sealed) === undefined);
    }
  });
});
