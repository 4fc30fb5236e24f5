import { afterAll, beforeAll, expect, it } from 'vitest';
import { KeyDestroyedError } from '../../src/errors.js';
import { findAesKeys } from '../../src/pkcs11/aes.js';
import { ckrName } from '../../src/pkcs11/errors.js';
import { Pkcs11KekProvider } from '../../src/keys/pkcs11.js';
import { Pkcs11Token } from '../../src/pkcs11/token.js';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';

describeSoftHsm('pkcs11 KEK objects on the token', () => {
  let hsm: SoftHsm;
  let provider: Pkcs11KekProvider;
  let token: Pkcs11Token;

  beforeAll(async () => {
    hsm = createSoftHsm(['attrs']);
    const t = hsm.tokens['attrs']!;
    provider = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'tenant-kek' });
    // A second opener on the same token shares the provider's login: this is how the test reads objects.
    token = await Pkcs11Token.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
  });

  afterAll(async () => {
    await provider?.close();
    await token?.close();
    hsm?.cleanup();
  });

  const readKey = (label: string) =>
    token.withSession((s) => {
      const [key] = findAesKeys(token, s, (l) => l === label, label);
      expect(key, `token object ${label}`).toBeDefined();
      return { s, handle: key!.handle };
    });

  it('generates each KEK version inside the token as sensitive, non-extractable AES-256', async () => {
    await provider.rotate();
    const { lib, p11 } = token;
    for (const label of ['tenant-kek/v1', 'tenant-kek/v2']) {
      await token.withSession(async (s) => {
        const [key] = findAesKeys(token, s, (l) => l === label, label);
        expect(key).toBeDefined();
        const attrs = p11.C_GetAttributeValue(s, key!.handle, [
          { type: lib.CKA_EXTRACTABLE },
          { type: lib.CKA_NEVER_EXTRACTABLE },
          { type: lib.CKA_SENSITIVE },
          { type: lib.CKA_ALWAYS_SENSITIVE },
          { type: lib.CKA_TOKEN },
          { type: lib.CKA_PRIVATE },
          { type: lib.CKA_KEY_TYPE },
          { type: lib.CKA_VALUE_LEN },
          { type: lib.CKA_WRAP },
          { type: lib.CKA_LOCAL },
        ]);
        const byType = new Map(attrs.map((a) => [a.type, a.value]));
        const bool = (t: number) => byType.get(t)?.[0] === 1;
        expect(bool(lib.CKA_EXTRACTABLE)).toBe(false);
        expect(bool(lib.CKA_NEVER_EXTRACTABLE)).toBe(true);
        expect(bool(lib.CKA_SENSITIVE)).toBe(true);
        expect(bool(lib.CKA_ALWAYS_SENSITIVE)).toBe(true);
        expect(bool(lib.CKA_TOKEN)).toBe(true);
        expect(bool(lib.CKA_PRIVATE)).toBe(true);
        expect(bool(lib.CKA_WRAP)).toBe(false);
        // Generated on the token, not imported.
        expect(bool(lib.CKA_LOCAL)).toBe(true);
        // CK_ULONG attributes come back in native byte order, 8 bytes on 64-bit Linux.
        const ulong = (t: number) => Number(byType.get(t)!.readBigUInt64LE(0));
        expect(ulong(lib.CKA_KEY_TYPE)).toBe(lib.CKK_AES);
        expect(ulong(lib.CKA_VALUE_LEN)).toBe(32);
      });
    }
  });

  it('refuses to reveal the KEK value (CKR_ATTRIBUTE_SENSITIVE) or to wrap it out of the token', async () => {
    const { lib, p11 } = token;
    const { handle } = await readKey('tenant-kek/v1');
    await token.withSession(async (s) => {
      let refused: unknown;
      try {
        p11.C_GetAttributeValue(s, handle, [{ type: lib.CKA_VALUE }]);
      } catch (err) {
        refused = err;
      }
      expect(ckrName(refused)).toBe('CKR_ATTRIBUTE_SENSITIVE');

      // A session key that may wrap: the token must still refuse to export the KEK with it.
      const wrapper = p11.C_GenerateKey(s, { mechanism: lib.CKM_AES_KEY_GEN }, [
        { type: lib.CKA_CLASS, value: lib.CKO_SECRET_KEY },
        { type: lib.CKA_KEY_TYPE, value: lib.CKK_AES },
        { type: lib.CKA_VALUE_LEN, value: 32 },
        { type: lib.CKA_TOKEN, value: false },
        { type: lib.CKA_WRAP, value: true },
      ]);
      let wrapRefused: unknown;
      try {
        p11.C_WrapKey(s, { mechanism: lib.CKM_AES_KEY_WRAP_PAD }, wrapper, handle, Buffer.alloc(128));
      } catch (err) {
        wrapRefused = err;
      }
      expect(ckrName(wrapRefused)).toBe('CKR_KEY_UNEXTRACTABLE');
      p11.C_DestroyObject(s, wrapper);
    });
  });

  it('lists versions in describe, and destroying a version shreds the DEKs wrapped only under it', async () => {
    const ctx = { storeId: 'store-1', collectionId: 'docs', dekVersion: 1 };
    const desc = await provider.describe();
    expect(desc.versions).toEqual(['1', '2']);
    expect(desc.currentVersion).toBe('2');
    expect(desc.details).toMatchObject({ token: 'attrs' });
    const v2 = await provider.wrap(Buffer.alloc(32, 7), ctx);
    const v3desc = await provider.rotate();
    expect(v3desc.currentVersion).toBe('3');
    const v3 = await provider.rewrap(v2, ctx);
    await provider.destroyVersion(2);
    expect((await provider.describe()).versions).toEqual(['1', '3']);
    await expect(provider.unwrap(v2, ctx)).rejects.toBeInstanceOf(KeyDestroyedError);
    expect(Buffer.from(await provider.unwrap(v3, ctx)).equals(Buffer.alloc(32, 7))).toBe(true);
    await token.withSession((s) => expect(findAesKeys(token, s, (l) => l === 'tenant-kek/v2', 'tenant-kek/v2')).toHaveLength(0));
  });

  it('a second provider instance (another connection to the token) sees rotations made by the first', async () => {
    const t = hsm.tokens['attrs']!;
    const second = await Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pin: t.pin, keyLabel: 'tenant-kek' });
    try {
      const ctx = { storeId: 'store-1', collectionId: 'notes', dekVersion: 1 };
      await provider.rotate();
      const w = await provider.wrap(Buffer.alloc(32, 9), ctx);
      expect(w.kekVersion).toBe('4');
      expect(Buffer.from(await second.unwrap(w, ctx)).equals(Buffer.alloc(32, 9))).toBe(true);
    } finally {
      await second.close();
    }
  });
});
