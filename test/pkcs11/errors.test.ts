import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  AccessDeniedError,
  InvalidArgumentError,
  KeyDestroyedError,
  KeyProviderUnavailableError,
  NotFoundError,
  UnsupportedOperationError,
  VectorsealError,
} from '../../src/errors.js';
import { Pkcs11KekProvider, pkcs11KeyringConfig, pkcs11OptionsFromConfig } from '../../src/keys/pkcs11.js';
import { Pkcs11Token } from '../../src/pkcs11/token.js';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';

/** Every message and cause in an error chain, for checking that no PIN leaks. */
function allText(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    parts.push(String(e), (e as Error).stack ?? '', JSON.stringify(e));
  }
  return parts.join('\n');
}

async function failure(p: Promise<unknown>): Promise<VectorsealError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(VectorsealError);
    return err as VectorsealError;
  }
  throw new Error('expected a failure');
}

describeSoftHsm('pkcs11 provider errors', () => {
  let hsm: SoftHsm;
  let dir: string;

  beforeAll(async () => {
    hsm = createSoftHsm(['errors-main', 'errors-pin']);
    dir = await mkdtemp(join(tmpdir(), 'vs-pkcs11-err-'));
  });
  afterAll(async () => {
    hsm?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('a wrong PIN is AccessDeniedError, and the PIN is in no message', async () => {
    const t = hsm.tokens['errors-pin']!;
    const wrong = `${t.pin}x9`;
    const err = await failure(Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pin: wrong, keyLabel: 'kek' }));
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect(err.code).toBe('VS_ACCESS_DENIED');
    expect(err.message).toContain('CKR_PIN_INCORRECT');
    expect(allText(err)).not.toContain(wrong);
    // The right PIN still works afterwards.
    const ok = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'kek' });
    await ok.close();
  });

  it('a wrong PIN is refused even while the token is already logged in by this process', async () => {
    const t = hsm.tokens['errors-main']!;
    const first = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'kek' });
    try {
      const wrong = `${t.pin}0`;
      const err = await failure(Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pin: wrong, keyLabel: 'kek' }));
      expect(err).toBeInstanceOf(AccessDeniedError);
      expect(allText(err)).not.toContain(wrong);
      expect(allText(err)).not.toContain(t.pin);
      // The right PIN joins the existing login.
      const second = await Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pin: t.pin, keyLabel: 'kek' });
      await second.close();
    } finally {
      await first.close();
    }
  });

  it('an absent token, an unknown slot or a missing module is KeyProviderUnavailableError', async () => {
    const t = hsm.tokens['errors-main']!;
    const absent = await failure(Pkcs11KekProvider.open({ module: hsm.module, token: 'no-such-token', pinEnv: t.pinEnv, keyLabel: 'kek' }));
    expect(absent).toBeInstanceOf(KeyProviderUnavailableError);
    expect(absent.message).toContain('no-such-token');
    expect(allText(absent)).not.toContain(t.pin);
    const slot = await failure(Pkcs11KekProvider.open({ module: hsm.module, slot: 987654, pinEnv: t.pinEnv, keyLabel: 'kek' }));
    expect(slot).toBeInstanceOf(KeyProviderUnavailableError);
    const noModule = await failure(
      Pkcs11KekProvider.open({ module: join(dir, 'nope.so'), token: t.label, pinEnv: t.pinEnv, keyLabel: 'kek' }),
    );
    expect(noModule).toBeInstanceOf(KeyProviderUnavailableError);
  });

  it('a token opened by slot id works like one opened by label', async () => {
    const t = hsm.tokens['errors-main']!;
    const byLabel = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'kek' });
    const slot = Number((await byLabel.describe()).details!['slot']);
    const bySlot = await Pkcs11KekProvider.open({ module: hsm.module, slot, pinEnv: t.pinEnv, keyLabel: 'kek' });
    try {
      const ctx = { storeId: 's', collectionId: 'c', dekVersion: 1 };
      const g = await byLabel.generateDataKey(ctx);
      expect(Buffer.from(await bySlot.unwrap(g.wrapped, ctx)).equals(Buffer.from(g.plaintext))).toBe(true);
    } finally {
      await bySlot.close();
      await byLabel.close();
    }
  });

  it('a KEK with no versions on the token: wrap is NotFoundError, unwrap KeyDestroyedError', async () => {
    const t = hsm.tokens['errors-main']!;
    const made = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'shredded' });
    const ctx = { storeId: 's', collectionId: 'c', dekVersion: 1 };
    const g = await made.generateDataKey(ctx);
    await made.destroyVersion(1);
    await made.close();
    const p = await Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'shredded' });
    try {
      expect((await p.describe()).state).toBe('destroyed');
      await expect(p.wrap(Buffer.alloc(32), ctx)).rejects.toBeInstanceOf(NotFoundError);
      await expect(p.unwrap(g.wrapped, ctx)).rejects.toBeInstanceOf(KeyDestroyedError);
    } finally {
      await p.close();
    }
  });

  it('destroyOldVersions keeps the current version; destroyKek shreds every version', async () => {
    const t = hsm.tokens['errors-main']!;
    const p = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'tenant-x' });
    try {
      const ctx = { storeId: 's', collectionId: 'c', dekVersion: 1 };
      await p.rotate();
      const current = (await p.rotate()).currentVersion!;
      expect(current).toBe('3');
      const w = await p.wrap(Buffer.alloc(32, 1), ctx);
      expect(await p.destroyOldVersions(current)).toEqual(['1', '2']);
      expect((await p.describe()).versions).toEqual(['3']);
      expect(await p.unwrap(w, ctx)).toHaveLength(32);
      expect(await p.destroyKek()).toBe('destroyed');
      expect((await p.describe()).state).toBe('destroyed');
      await expect(p.unwrap(w, ctx)).rejects.toBeInstanceOf(KeyDestroyedError);
    } finally {
      await p.close();
    }
  });

  it('a mechanism the token lacks is UnsupportedOperationError', async () => {
    const t = hsm.tokens['errors-main']!;
    const token = await Pkcs11Token.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
    try {
      expect(() => token.requireMechanisms(['CKM_AES_GCM', 'CKM_SKIPJACK_WRAP'])).toThrow(UnsupportedOperationError);
      expect(() => token.requireMechanisms(['CKM_AES_GCM', 'CKM_AES_CMAC'])).not.toThrow();
    } finally {
      await token.close();
    }
  });

  it('PIN sources: an unset variable, a PIN file others can read, and a PIN in a keyring are refused', async () => {
    const t = hsm.tokens['errors-main']!;
    await expect(
      Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pinEnv: 'VS_TEST_NO_SUCH_PIN_VAR', keyLabel: 'kek' }),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    const file = join(dir, 'pin');
    await writeFile(file, `${t.pin}\n`, { mode: 0o644 });
    await chmod(file, 0o644);
    const loose = await failure(Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pinFile: file, keyLabel: 'kek' }));
    expect(loose).toBeInstanceOf(InvalidArgumentError);
    expect(allText(loose)).not.toContain(t.pin);
    await chmod(file, 0o600);
    const fromFile = await Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pinFile: file, keyLabel: 'kek' });
    await fromFile.close();

    expect(() => pkcs11OptionsFromConfig({ keyId: 'kek', config: { module: hsm.module, token: t.label, pin: t.pin } })).toThrow(
      InvalidArgumentError,
    );
    const config = pkcs11KeyringConfig({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'kek' });
    expect(JSON.stringify(config)).not.toContain(t.pin);
    expect(pkcs11OptionsFromConfig({ keyId: 'kek', config })).toEqual({
      module: hsm.module,
      token: t.label,
      pinEnv: t.pinEnv,
      keyLabel: 'kek',
    });
  });
});
