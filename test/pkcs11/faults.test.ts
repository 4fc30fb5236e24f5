import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import * as pkcs11js from 'pkcs11js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerKmsCommands } from '../../src/cli/commands/kms.js';
import { CorruptDataError, InvalidArgumentError, KeyDisabledError, KeyProviderUnavailableError, NotFoundError } from '../../src/errors.js';
import { findAesKeys, gcmEncrypt } from '../../src/pkcs11/aes.js';
import { ckrName, isSessionBroken, mapPkcs11Error } from '../../src/pkcs11/errors.js';
import { resolvePin } from '../../src/pkcs11/pin.js';
import { Pkcs11KekProvider } from '../../src/keys/pkcs11.js';
import { Pkcs11Token } from '../../src/pkcs11/token.js';
import { Pkcs11RootKey } from '../../src/kms/root-pkcs11.js';
import { startKeyService } from '../../src/kms/server.js';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';

/**
 * The faults an HSM has in production, produced against SoftHSM2 where it
 * can produce them (sessions closed from outside, C_Logout, a token without
 * the root key, tampered data) and injected into the pkcs11js calls where it
 * cannot (device errors, a token that generates its own IVs, a slow
 * operation racing the last close).
 */

const ctx = { storeId: 'store-f', collectionId: 'col', dekVersion: 1 };
type Patchable = Record<string, unknown>;
/** A patched method and how to put it back (pkcs11js defines some methods on the instance, some on the prototype). */
type Restore = () => void;

/** A pkcs11js error exactly as the addon throws it. */
function pkcs11Error(name: string, code: number): Error {
  const Ctor = (pkcs11js as unknown as { Pkcs11Error: new (message: string) => Error }).Pkcs11Error;
  return new Ctor(`${name}:${code}`);
}

describe('PKCS#11 error classification', () => {
  it('looks at the PKCS#11 code under wrapping errors, not at the outer message', () => {
    const raw = pkcs11Error('CKR_SESSION_HANDLE_INVALID', 0xb3);
    const wrapped = mapPkcs11Error(raw, 'unwrap with KEK "k" v1 on token "t"');
    expect(wrapped).toBeInstanceOf(KeyProviderUnavailableError);
    expect(wrapped.message.startsWith('CKR_')).toBe(false);
    expect(isSessionBroken(wrapped)).toBe(true);
    expect(ckrName(new Error('outer', { cause: wrapped }))).toBe('CKR_SESSION_HANDLE_INVALID');
    expect(isSessionBroken(new Error('CKR_ lookalike in an unrelated message'))).toBe(false);
  });

  it('device faults are KeyProviderUnavailableError, never corruption', () => {
    for (const [name, code] of [
      ['CKR_GENERAL_ERROR', 5],
      ['CKR_FUNCTION_FAILED', 6],
      ['CKR_DEVICE_ERROR', 0x30],
      ['CKR_DEVICE_MEMORY', 0x31],
      ['CKR_DEVICE_REMOVED', 0x32],
    ] as const) {
      const mapped = mapPkcs11Error(pkcs11Error(name, code), 'op');
      expect(mapped, name).toBeInstanceOf(KeyProviderUnavailableError);
      expect(mapped, name).not.toBeInstanceOf(CorruptDataError);
    }
  });
});

describeSoftHsm('PKCS#11 faults against SoftHSM2', () => {
  let hsm: SoftHsm;
  let dir: string;
  let provider: Pkcs11KekProvider;
  /** A second opener on the same token: shares the provider's login and session pool, as another component would. */
  let outside: Pkcs11Token;
  const patched: Restore[] = [];
  const unpatch = (): void => {
    for (const restore of patched.splice(0).reverse()) restore();
  };

  const patch = (name: string, impl: (original: (...args: unknown[]) => unknown, ...args: unknown[]) => unknown): void => {
    const p11 = outside.p11 as unknown as Patchable;
    const own = Object.getOwnPropertyDescriptor(p11, name);
    const original = (p11[name] as (...args: unknown[]) => unknown).bind(p11);
    p11[name] = (...args: unknown[]) => impl(original, ...args);
    patched.push(() => {
      if (own) Object.defineProperty(p11, name, own);
      else delete p11[name];
    });
  };

  beforeAll(async () => {
    hsm = createSoftHsm(['faults', 'faults-empty', 'faults-pinfile']);
    dir = await mkdtemp(join(tmpdir(), 'vs-pkcs11-faults-'));
    const t = hsm.tokens['faults']!;
    provider = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'faulty' });
    outside = await Pkcs11Token.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
  });
  afterEach(unpatch);
  afterAll(async () => {
    await provider?.close();
    await outside?.close();
    hsm?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('a pooled session closed from outside is dropped and the call succeeds on a fresh one', async () => {
    const w = await provider.wrap(Buffer.alloc(32, 7), ctx);
    // The pool is shared and last-in-first-out: the session handed back here is the next one the provider gets.
    const pooled = await outside.withSession((s) => s);
    outside.p11.C_CloseSession(pooled);
    expect(Buffer.from(await provider.unwrap(w, ctx)).equals(Buffer.alloc(32, 7))).toBe(true);
  });

  it('a session that breaks during an operation (error already wrapped by the caller) is dropped and the call retried once', async () => {
    let calls = 0;
    const out = await outside.withSession((s) => {
      calls += 1;
      if (calls === 1) {
        outside.p11.C_CloseSession(s);
        try {
          outside.p11.C_GetSessionInfo(s);
        } catch (err) {
          throw mapPkcs11Error(err, 'a call on a session closed under it');
        }
      }
      return 'done';
    });
    expect(out).toBe('done');
    expect(calls).toBe(2);
    // Only once: a session that keeps breaking fails the call, typed.
    await expect(
      outside.withSession((s) => {
        outside.p11.C_CloseSession(s);
        outside.p11.C_GetSessionInfo(s);
      }),
    ).rejects.toSatisfy((err: unknown) => ckrName(err) === 'CKR_SESSION_HANDLE_INVALID');
  });

  it('C_CloseAllSessions (every session, the login with them) is survived: new sessions and a new login', async () => {
    const w = await provider.wrap(Buffer.alloc(32, 9), ctx);
    outside.p11.C_CloseAllSessions(outside.slot);
    expect(Buffer.from(await provider.unwrap(w, ctx)).equals(Buffer.alloc(32, 9))).toBe(true);
    expect((await provider.describe()).state).toBe('enabled');
  });

  it('after C_Logout elsewhere the token is logged in again (handles found again), not reported destroyed', async () => {
    const w = await provider.wrap(Buffer.alloc(32, 3), ctx);
    const generation = outside.generation;
    await outside.withSession((s) => outside.p11.C_Logout(s));
    // Without a re-login the private keys are invisible: the KEK would look destroyed.
    expect((await provider.describe()).state).toBe('enabled');
    expect(Buffer.from(await provider.unwrap(w, ctx)).equals(Buffer.alloc(32, 3))).toBe(true);
    expect(outside.generation).toBeGreaterThan(generation);
    // And the root key protector of the key service recovers the same way.
    const t = hsm.tokens['faults']!;
    const root = await Pkcs11RootKey.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'root-after-logout' });
    try {
      const blob = await root.wrap(Buffer.from('material'), Buffer.from('aad'));
      await outside.withSession((s) => outside.p11.C_Logout(s));
      expect(Buffer.from(await root.unwrap(blob, Buffer.from('aad'))).toString()).toBe('material');
    } finally {
      await root.close();
    }
  });

  it('a logout that lands during an operation (CKR_USER_NOT_LOGGED_IN) re-logs in and retries', async () => {
    const w = await provider.wrap(Buffer.alloc(32, 4), ctx);
    let first = true;
    patch('C_DecryptInit', (original, ...args) => {
      if (first) {
        first = false;
        outside.p11.C_Logout(args[0] as Buffer);
        throw pkcs11Error('CKR_USER_NOT_LOGGED_IN', 0x101);
      }
      return original(...args);
    });
    expect(Buffer.from(await provider.unwrap(w, ctx)).equals(Buffer.alloc(32, 4))).toBe(true);
  });

  it('passes CK_GCM_PARAMS in the v2.40 shape, with ulIvBits set', async () => {
    const seen: Array<{ type: number; ivBits?: number; iv: Buffer }> = [];
    patch('C_EncryptInit', (original, ...args) => {
      seen.push((args[1] as { parameter: { type: number; ivBits?: number; iv: Buffer } }).parameter);
      return original(...args);
    });
    const w = await provider.wrap(Buffer.alloc(32, 1), ctx);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.type).toBe(pkcs11js.CK_PARAMS_AES_GCM_v240);
    expect(seen[0]!.ivBits).toBe(96);
    expect(await provider.unwrap(w, ctx)).toHaveLength(32);
  });

  it('KEK versions are read-only, not copyable, and limited to AES-GCM and AES-CMAC inside the token', async () => {
    await provider.rotate();
    const { lib, p11 } = outside;
    await outside.withSession((s) => {
      for (const key of findAesKeys(outside, s, (l) => l.startsWith('faulty/v'))) {
        const [modifiable, copyable, allowed] = p11.C_GetAttributeValue(s, key.handle, [
          { type: lib.CKA_MODIFIABLE },
          { type: lib.CKA_COPYABLE },
          { type: lib.CKA_ALLOWED_MECHANISMS },
        ]);
        expect(modifiable!.value[0]).toBe(0);
        expect(copyable!.value[0]).toBe(0);
        const list = [0, 8].map((o) => Number(allowed!.value.readBigUInt64LE(o)));
        expect(allowed!.value.length).toBe(16);
        expect(list.sort()).toEqual([lib.CKM_AES_GCM, lib.CKM_AES_CMAC].sort());
        // Each restriction holds inside the token, whoever is logged in.
        expect(() => p11.C_EncryptInit(s, { mechanism: lib.CKM_AES_ECB }, key.handle)).toThrow(/CKR_MECHANISM_INVALID/);
        expect(() => p11.C_SetAttributeValue(s, key.handle, [{ type: lib.CKA_EXTRACTABLE, value: true }])).toThrow(/CKR_/);
        expect(() => p11.C_SetAttributeValue(s, key.handle, [{ type: lib.CKA_DECRYPT, value: false }])).toThrow(/CKR_/);
        expect(() => p11.C_CopyObject(s, key.handle, [{ type: lib.CKA_EXTRACTABLE, value: true }])).toThrow(/CKR_/);
      }
    });
  });

  it('disable and enable still reach every process although keys are read-only (a marker object on the token)', async () => {
    const t = hsm.tokens['faults']!;
    const other = await Pkcs11KekProvider.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'faulty' });
    try {
      const w = await provider.wrap(Buffer.alloc(32, 2), ctx);
      await other.disable();
      await expect(provider.unwrap(w, ctx)).rejects.toBeInstanceOf(KeyDisabledError);
      await expect(provider.wrap(Buffer.alloc(32), ctx)).rejects.toBeInstanceOf(KeyDisabledError);
      expect((await provider.describe()).state).toBe('disabled');
      await other.enable();
      expect(await provider.unwrap(w, ctx)).toHaveLength(32);
      expect((await provider.describe()).state).toBe('enabled');
    } finally {
      await other.close();
    }
  });

  it('a damaged wrap is CorruptDataError (the token passed its self-test), a device fault KeyProviderUnavailableError', async () => {
    const w = await provider.wrap(Buffer.alloc(32, 5), ctx);
    const bad = { ...w, blob: Buffer.from(w.blob) };
    bad.blob[bad.blob.length - 1]! ^= 1;
    // SoftHSM2 really answers this tag mismatch with CKR_GENERAL_ERROR.
    const corrupt = await provider.unwrap(bad, ctx).catch((e: unknown) => e);
    expect(corrupt).toBeInstanceOf(CorruptDataError);
    expect(ckrName(corrupt)).toBe('CKR_GENERAL_ERROR');

    for (const [name, code] of [
      ['CKR_GENERAL_ERROR', 5],
      ['CKR_FUNCTION_FAILED', 6],
      ['CKR_DEVICE_ERROR', 0x30],
      ['CKR_DEVICE_MEMORY', 0x31],
    ] as const) {
      // The device fails every decryption, the self-test's included.
      patch('C_DecryptAsync', () => Promise.reject(pkcs11Error(name, code)));
      const err = await provider.unwrap(w, ctx).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(KeyProviderUnavailableError);
      expect(err, name).not.toBeInstanceOf(CorruptDataError);
      unpatch();
    }
    expect(await provider.unwrap(w, ctx)).toHaveLength(32);
  });

  it('a token that generates the GCM IV itself: the IV it returns is the one stored and used to decrypt', async () => {
    const tokenIv = Buffer.from('0102030405060708090a0b0c', 'hex');
    patch('C_EncryptInit', (original, ...args) => {
      // What a FIPS-mode HSM does: ignore the caller's IV and write its own into the IV buffer.
      (args[1] as { parameter: { iv: Buffer } }).parameter.iv.set(tokenIv);
      return original(...args);
    });
    const w = await provider.wrap(Buffer.alloc(32, 6), ctx);
    const root = await Pkcs11RootKey.open({
      module: hsm.module,
      token: 'faults',
      pinEnv: hsm.tokens['faults']!.pinEnv,
      keyLabel: 'root-token-iv',
    });
    try {
      const blob = Buffer.from(await root.wrap(Buffer.from('secret'), Buffer.alloc(0)));
      unpatch();
      expect(blob.subarray(17, 29).equals(tokenIv)).toBe(true);
      expect(Buffer.from(await root.unwrap(blob, Buffer.alloc(0))).toString()).toBe('secret');
    } finally {
      await root.close();
    }
    // Header (21 bytes), then the IV.
    expect(Buffer.from(w.blob).subarray(21, 33).equals(tokenIv)).toBe(true);
    expect(Buffer.from(await provider.unwrap(w, ctx)).equals(Buffer.alloc(32, 6))).toBe(true);
  });

  it('the last close waits for an operation still holding a session before it finalizes the module', async () => {
    const t = hsm.tokens['faults-pinfile']!;
    const p = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'slow' });
    const mine = await Pkcs11Token.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const op = mine.withSession(async (s) => {
      await gate;
      // Still logged in, module still initialized: a real operation on the token.
      const key = findAesKeys(mine, s, (l) => l === 'slow/v1', 'slow/v1')[0]!;
      return gcmEncrypt(mine, s, key.handle, Buffer.alloc(12, 1), Buffer.alloc(0), Buffer.alloc(16));
    });
    await new Promise((r) => setTimeout(r, 10));
    let closed = false;
    const closing = Promise.all([p.close(), mine.close()]).then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    release();
    const sealed = await op;
    expect(sealed.sealed).toHaveLength(32);
    await closing;
    expect(closed).toBe(true);
  });

  it('the PIN file is read through one descriptor and refused unless owned by this user with mode 0600', async () => {
    const t = hsm.tokens['faults-pinfile']!;
    const file = join(dir, 'pin');
    await writeFile(file, `${t.pin}\n`, { mode: 0o600 });
    expect(await resolvePin({ pinFile: file })).toBe(t.pin);
    const p = await Pkcs11KekProvider.init({ module: hsm.module, token: t.label, pinFile: file, keyLabel: 'pinfile' });
    try {
      // A re-login reads the file again, with the same checks.
      const tok = await Pkcs11Token.open({ module: hsm.module, token: t.label, pinFile: file });
      await tok.withSession((s) => tok.p11.C_Logout(s));
      await tok.close();
      expect((await p.describe()).state).toBe('enabled');
    } finally {
      await p.close();
    }
    await chmod(file, 0o640);
    const loose = await resolvePin({ pinFile: file }).catch((e: unknown) => e);
    expect(loose).toBeInstanceOf(InvalidArgumentError);
    expect(String(loose)).toContain('chmod 600');
    expect(String(loose)).not.toContain(t.pin);
    await chmod(file, 0o600);
    if (process.getuid?.() === 0) {
      // Another user's file: they can rewrite the PIN, so it is refused even at mode 0600.
      await chown(file, 65534, 65534);
      const foreign = await resolvePin({ pinFile: file }).catch((e: unknown) => e);
      expect(foreign).toBeInstanceOf(InvalidArgumentError);
      expect(String(foreign)).toContain('owned by');
      await chown(file, 0, 0);
    }
    const notFile = await resolvePin({ pinFile: dir }).catch((e: unknown) => e);
    expect(notFile).toBeInstanceOf(InvalidArgumentError);
  });

  it('kms serve refuses to start on a token without the root key unless --create-root', async () => {
    const t = hsm.tokens['faults-empty']!;
    const config = {
      region: 'us-east-1',
      accountId: '000000000000',
      principals: [
        {
          name: 'admin',
          accessKeyId: 'AKIAFAULTS0000000001',
          secretAccessKey: 'faults-secret-0123456789',
          policy: [{ operations: ['*'], keys: ['*'] }],
        },
      ],
    };
    const rootPkcs11 = { module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'absent-root' };
    const refused = await startKeyService({ dataDir: join(dir, 'kms-empty'), config, rootPkcs11, createRoot: false, port: 0 }).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(NotFoundError);
    expect(String(refused)).toContain('--create-root');
    // Nothing was created on the token.
    const tok = await Pkcs11Token.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
    expect(await tok.withSession((s) => findAesKeys(tok, s, () => true))).toHaveLength(0);
    await tok.close();
    // Through the command line the same.
    const configFile = join(dir, 'kms.json');
    await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
    const program = new Command().exitOverride();
    registerKmsCommands(program);
    const argv = ['node', 'vectorseal', 'kms', 'serve', '--port', '0', '--data-dir', join(dir, 'kms-cli'), '--config', configFile];
    await expect(
      program.parseAsync([
        ...argv,
        '--root',
        'pkcs11',
        '--pkcs11-module',
        hsm.module,
        '--token',
        t.label,
        '--pin-env',
        t.pinEnv,
        '--key-label',
        'absent-root',
      ]),
    ).rejects.toBeInstanceOf(NotFoundError);
    // A file root that does not exist is refused the same way.
    const program2 = new Command().exitOverride();
    registerKmsCommands(program2);
    await expect(program2.parseAsync(argv)).rejects.toBeInstanceOf(NotFoundError);
    // With --create-root (library: createRoot) the first start makes it, and later starts find it.
    const started = await startKeyService({ dataDir: join(dir, 'kms-empty'), config, rootPkcs11, createRoot: true, port: 0 });
    await started.close();
    const again = await startKeyService({ dataDir: join(dir, 'kms-empty'), config, rootPkcs11, createRoot: false, port: 0 });
    await again.close();
  });
});
