import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptDataError, KeyDisabledError, VectorsealError, WrongKeyError } from '../../src/errors.js';
import type { DekContext } from '../../src/keys/context.js';
import type { KekProvider, WrappedDek } from '../../src/keys/provider.js';

/**
 * The contract every KEK provider meets, as one suite run against each
 * implementation (local, aws-kms through the key service, pkcs11). A provider
 * joins by giving a factory for a {@link ProviderUnderTest}.
 */
export interface ProviderUnderTest {
  /** The provider under test, on a KEK with at least one version. */
  provider: KekProvider;
  /**
   * A second, independent provider on a different key. Where the provider
   * allows it, give it the same keyId (another key directory, another token)
   * so that only the key check can tell the keys apart.
   */
  other: KekProvider;
  /**
   * Whether a wrap names its key so that any instance able to reach that key
   * unwraps it (AWS KMS: Decrypt uses the key recorded in the wrap). Then the
   * wrong-key case relabels the wrap to the other key instead.
   */
  wrapNamesItsKey?: boolean;
  /** Disables and re-enables the KEK, where the provider has a disabled state. */
  disable?: () => Promise<void>;
  enable?: () => Promise<void>;
  /** Why disabling is not applicable, when `disable` is absent. */
  disableNotApplicable?: string;
  /** Closes providers and removes temporary state. */
  cleanup(): Promise<void>;
}

export interface ConformanceTarget {
  /** Shown in the suite name. */
  name: string;
  setup(): Promise<ProviderUnderTest>;
  /** A `describe` variant: plain, or one that skips when the provider's backing service is absent. */
  describe?: typeof describe;
}

let counter = 0;
function ctx(over: Partial<DekContext> = {}): DekContext {
  counter += 1;
  return { storeId: 'store-conformance', collectionId: `col-${counter}`, dekVersion: 1, ...over };
}

function damaged(w: WrappedDek, at: number): WrappedDek {
  const blob = Uint8Array.from(w.blob);
  const i = at < 0 ? blob.length + at : at;
  blob[i] = blob[i]! ^ 0x01;
  return { ...w, blob };
}

/**
 * Registers the suite. Cases share one KEK and run in order: the wrong-key
 * case runs before rotation so that both keys still have the same versions
 * and only key material differs.
 */
export function providerConformance(target: ConformanceTarget): void {
  const d = target.describe ?? describe;
  d(`KEK provider conformance: ${target.name}`, () => {
    let t: ProviderUnderTest;
    beforeAll(async () => {
      t = await target.setup();
    });
    afterAll(async () => {
      await t?.cleanup();
    });

    it('generates a DEK whose wrap unwraps to the same 32 bytes', async () => {
      const c = ctx();
      const g = await t.provider.generateDataKey(c);
      expect(g.plaintext).toHaveLength(32);
      expect(g.wrapped.provider).toBe(t.provider.name);
      expect(Buffer.from(g.wrapped.blob).includes(Buffer.from(g.plaintext))).toBe(false);
      const dek = await t.provider.unwrap(g.wrapped, c);
      expect(Buffer.from(dek).equals(Buffer.from(g.plaintext))).toBe(true);
    });

    it('wraps and unwraps an existing DEK, with a fresh randomized wrap each time', async () => {
      const c = ctx();
      const dek = randomBytes(32);
      const w1 = await t.provider.wrap(dek, c);
      const w2 = await t.provider.wrap(dek, c);
      expect(Buffer.from(w1.blob).equals(Buffer.from(w2.blob))).toBe(false);
      expect(Buffer.from(await t.provider.unwrap(w1, c)).equals(dek)).toBe(true);
      expect(Buffer.from(await t.provider.unwrap(w2, c)).equals(dek)).toBe(true);
    });

    it('binds the wrap to its context: another collection, store or DEK version fails as corrupt data', async () => {
      const c = ctx();
      const { wrapped } = await t.provider.generateDataKey(c);
      for (const moved of [
        { ...c, collectionId: `${c.collectionId}-other` },
        { ...c, storeId: 'store-elsewhere' },
        { ...c, dekVersion: c.dekVersion + 1 },
      ]) {
        await expect(t.provider.unwrap(wrapped, moved)).rejects.toBeInstanceOf(CorruptDataError);
      }
    });

    it('refuses a wrap made under another key with WrongKeyError', async () => {
      const c = ctx();
      const { wrapped } = await t.provider.generateDataKey(c);
      // The wrap presented as the other key's: only key material tells them apart.
      await expect(t.other.unwrap({ ...wrapped, keyId: t.other.keyId }, c)).rejects.toBeInstanceOf(WrongKeyError);
      if (!t.wrapNamesItsKey) {
        await expect(t.other.unwrap(wrapped, c)).rejects.toBeInstanceOf(WrongKeyError);
      }
      // And the other way round.
      const theirs = await t.other.generateDataKey(c);
      await expect(t.provider.unwrap({ ...theirs.wrapped, keyId: t.provider.keyId }, c)).rejects.toBeInstanceOf(WrongKeyError);
    });

    it('rotates: old wraps still unwrap, new wraps use the new version, rewrap moves an old wrap to current', async () => {
      const c = ctx();
      const dek = randomBytes(32);
      const before = await t.provider.describe();
      const old = await t.provider.wrap(dek, c);
      expect(t.provider.isCurrent(old, before)).toBe(true);

      const after = await t.provider.rotate();
      expect(after.currentVersion).toBeDefined();
      expect(after.currentVersion).not.toBe(before.currentVersion);
      expect(after.versions).toEqual(expect.arrayContaining([before.currentVersion, after.currentVersion]));
      expect(t.provider.isCurrent(old, after)).toBe(false);

      expect(Buffer.from(await t.provider.unwrap(old, c)).equals(dek)).toBe(true);
      const fresh = await t.provider.wrap(dek, c);
      expect(fresh.kekVersion).toBe(after.currentVersion);
      expect(t.provider.isCurrent(fresh, after)).toBe(true);

      const moved = await t.provider.rewrap(old, c);
      expect(moved.kekVersion).toBe(after.currentVersion);
      expect(t.provider.isCurrent(moved, after)).toBe(true);
      expect(Buffer.from(await t.provider.unwrap(moved, c)).equals(dek)).toBe(true);
      // Rewrap keeps the context binding.
      await expect(t.provider.unwrap(moved, { ...c, collectionId: `${c.collectionId}-other` })).rejects.toBeInstanceOf(CorruptDataError);
    });

    it('refuses a damaged or truncated wrap with CorruptDataError', async () => {
      const c = ctx();
      const { wrapped } = await t.provider.generateDataKey(c);
      await expect(t.provider.unwrap(damaged(wrapped, -1), c)).rejects.toBeInstanceOf(CorruptDataError);
      await expect(t.provider.unwrap(damaged(wrapped, -20), c)).rejects.toBeInstanceOf(CorruptDataError);
      await expect(t.provider.unwrap({ ...wrapped, blob: wrapped.blob.subarray(0, wrapped.blob.length - 1) }, c)).rejects.toBeInstanceOf(
        CorruptDataError,
      );
      await expect(t.provider.unwrap({ ...wrapped, blob: new Uint8Array(0) }, c)).rejects.toBeInstanceOf(VectorsealError);
      // The undamaged wrap still opens: nothing was consumed.
      expect(await t.provider.unwrap(wrapped, c)).toHaveLength(32);
    });

    it('refuses every use of a disabled KEK with KeyDisabledError, and works again once enabled', async (testCtx) => {
      if (!t.disable || !t.enable) {
        testCtx.skip(t.disableNotApplicable ?? 'provider has no disabled state');
        return;
      }
      const c = ctx();
      const g = await t.provider.generateDataKey(c);
      await t.disable();
      try {
        await expect(t.provider.unwrap(g.wrapped, c)).rejects.toBeInstanceOf(KeyDisabledError);
        await expect(t.provider.generateDataKey(ctx())).rejects.toBeInstanceOf(KeyDisabledError);
        await expect(t.provider.wrap(randomBytes(32), c)).rejects.toBeInstanceOf(KeyDisabledError);
        expect((await t.provider.describe()).state).toBe('disabled');
      } finally {
        await t.enable();
      }
      expect((await t.provider.describe()).state).toBe('enabled');
      expect(Buffer.from(await t.provider.unwrap(g.wrapped, c)).equals(Buffer.from(g.plaintext))).toBe(true);
    });

    it('serves 50 concurrent unwraps correctly', async () => {
      const items = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const c = ctx();
          return { c, g: await t.provider.generateDataKey(c) };
        }),
      );
      const jobs = Array.from({ length: 50 }, (_, i) => items[i % items.length]!);
      const results = await Promise.all(jobs.map(({ c, g }) => t.provider.unwrap(g.wrapped, c)));
      results.forEach((dek, i) => expect(Buffer.from(dek).equals(Buffer.from(jobs[i]!.g.plaintext))).toBe(true));
    });
  });
}
