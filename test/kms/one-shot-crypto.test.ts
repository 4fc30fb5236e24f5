import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { loadNativeHkdfGcm, nodeHkdfGcm, type HkdfGcm } from '../../src/crypto/hkdf-gcm.js';
import { loadNativeHmacSha256, nodeHmacSha256 } from '../../src/crypto/hmac.js';

/**
 * The key service's one-call HKDF-SHA256 + AES-256-GCM and HMAC-SHA256: the
 * native addon's and the node:crypto fallback give the same bytes as an
 * independent reference (hkdfSync + createCipheriv, createHmac), and the
 * ciphertext format (version 2) is what it was: a blob fixed below, made by
 * the reference, still opens, and new blobs open under the reference.
 */
const native = loadNativeHkdfGcm();
const nativeHmac = loadNativeHmacSha256();
const engines: HkdfGcm[] = [nodeHkdfGcm, ...(native === undefined ? [] : [native])];

function reference(ikm: Buffer, salt: Buffer, info: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const key = Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
  const c = createCipheriv('aes-256-gcm', key, Buffer.alloc(12));
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

describe('one-call HKDF-SHA256 + AES-256-GCM', () => {
  it('the native addon is built here (otherwise only the fallback is checked)', () => {
    expect(native?.name).toBe('native');
    expect(nativeHmac).toBeDefined();
  });

  it('seals what the reference seals and opens what either sealed, for random inputs and sizes', () => {
    for (let i = 0; i < 200; i++) {
      const ikm = randomBytes(32);
      const salt = randomBytes(32);
      const p1 = randomBytes(i % 40);
      const p2 = randomBytes((i * 7) % 30);
      const aad = randomBytes((i * 13) % 300);
      const plaintext = randomBytes([0, 1, 15, 16, 17, 32, 64, 1024, 4096][i % 9]!);
      const expected = reference(ikm, salt, Buffer.concat([p1, p2]), aad, plaintext);
      for (const e of engines) {
        const out = Buffer.alloc(plaintext.length + 16);
        expect(e.seal(ikm, salt, p1, p2, aad, plaintext, out), e.name).toBe(out.length);
        expect(out.equals(expected), e.name).toBe(true);
        const back = Buffer.alloc(plaintext.length);
        expect(e.open(ikm, salt, p1, p2, aad, expected, back), e.name).toBe(plaintext.length);
        expect(back.equals(plaintext), e.name).toBe(true);
      }
    }
  });

  it('refuses a flipped bit anywhere, a wrong key, salt, info or AAD, with -1 and a zeroed output', () => {
    const ikm = randomBytes(32);
    const salt = randomBytes(32);
    const p1 = Buffer.from('label\0');
    const p2 = randomBytes(22);
    const aad = randomBytes(60);
    const plaintext = randomBytes(32);
    const sealed = reference(ikm, salt, Buffer.concat([p1, p2]), aad, plaintext);
    const flip = (b: Buffer, at: number): Buffer => {
      const c = Buffer.from(b);
      c[at]! ^= 1;
      return c;
    };
    for (const e of engines) {
      for (let at = 0; at < sealed.length; at++) {
        const out = Buffer.alloc(32, 0xee);
        expect(e.open(ikm, salt, p1, p2, aad, flip(sealed, at), out), `${e.name} byte ${at}`).toBe(-1);
        expect(out.every((x) => x === 0)).toBe(true);
      }
      const out = Buffer.alloc(32);
      expect(e.open(flip(ikm, 0), salt, p1, p2, aad, sealed, out)).toBe(-1);
      expect(e.open(ikm, flip(salt, 31), p1, p2, aad, sealed, out)).toBe(-1);
      expect(e.open(ikm, salt, flip(p1, 0), p2, aad, sealed, out)).toBe(-1);
      expect(e.open(ikm, salt, p1, flip(p2, 5), aad, sealed, out)).toBe(-1);
      expect(e.open(ikm, salt, p1, p2, flip(aad, 59), sealed, out)).toBe(-1);
      expect(e.open(ikm, salt, p1, p2, aad, sealed.subarray(0, 15), out)).toBe(-1);
    }
  });

  it('HMAC-SHA256: native equals createHmac for keys shorter and longer than a block', () => {
    expect(nativeHmac).toBeDefined();
    for (let i = 0; i < 200; i++) {
      const key = randomBytes([0, 1, 32, 63, 64, 65, 200][i % 7]!);
      const data = randomBytes((i * 11) % 700);
      const expected = createHmac('sha256', key).update(data).digest();
      expect(nodeHmacSha256(key, data).equals(expected)).toBe(true);
      expect(nativeHmac!(key, data).equals(expected)).toBe(true);
    }
  });
});

/** A version 2 blob made by the reference (fixed backing key, nonce, key id, version 3, context and data key). */
const FIXED_BLOB =
  'AgAPHi08S1pJaId2pbTD0uHwAAAAA6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/' +
  'zQ5SVFC7DZnpXU8zrUJRc80X/NeELGOFyalkrF+JNLpcnufFxBpguSVvkAzEhCTx';
const FIXED_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const FIXED_CONTEXT = { 'vectorseal:store': 's1', 'vectorseal:collection': 'docs' };

describe.each([
  ['native', undefined],
  ['node:crypto fallback', 'node'],
])('key-service ciphertexts on the %s path', (_name, crypto) => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  async function load() {
    if (crypto !== undefined) vi.stubEnv('VECTORSEAL_CRYPTO', crypto);
    vi.resetModules();
    const m = await import('../../src/kms/ciphertext.js');
    const { defaultHkdfGcm } = await import('../../src/crypto/hkdf-gcm.js');
    return { ...m, engine: defaultHkdfGcm().name };
  }

  it('opens the fixed blob, and refuses it under another context', async () => {
    const m = await load();
    expect(m.engine).toBe(crypto ?? 'native');
    const blob = Buffer.from(FIXED_BLOB, 'base64');
    expect(m.parseCiphertextHeader(blob)).toEqual({ keyId: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0', backingVersion: 3 });
    expect(m.openCiphertext(FIXED_KEY, blob, FIXED_CONTEXT).toString()).toBe('fixed data key 0123456789abcdef!');
    expect(() => m.openCiphertext(FIXED_KEY, blob, { 'vectorseal:store': 's1' })).toThrow(/not valid/);
  });

  it('seals blobs the reference opens, for UUID and multi-region ids', async () => {
    const m = await load();
    for (const keyId of ['0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0', `mrk-${'ab'.repeat(16)}`]) {
      const backing = randomBytes(32);
      const data = randomBytes(32);
      const blob = m.sealCiphertext(backing, { keyId, backingVersion: 9 }, data, FIXED_CONTEXT);
      expect(m.parseCiphertextHeader(blob)).toEqual({ keyId, backingVersion: 9 });
      const head = blob.subarray(0, 22);
      const nonce = blob.subarray(22, 54);
      const info = Buffer.concat([Buffer.from('vectorseal/kms/message-key/v2\0'), head]);
      const aad = m.encodeEncryptionContext(FIXED_CONTEXT, head);
      expect(blob.subarray(54).equals(reference(backing, Buffer.from(nonce), info, aad, data))).toBe(true);
      expect(m.openCiphertext(backing, blob, FIXED_CONTEXT).equals(data)).toBe(true);
    }
  });
});
