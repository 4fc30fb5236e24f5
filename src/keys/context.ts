import { InvalidArgumentError } from '../errors.js';

/**
 * What a wrapped DEK is bound to. The same three values are the AWS KMS
 * EncryptionContext for KMS-backed KEKs and the AEAD associated data for keys
 * wrapped locally or inside an HSM, so a wrapped DEK copied to another
 * collection (or store, or version) fails to unwrap.
 */
export interface DekContext {
  storeId: string;
  collectionId: string;
  dekVersion: number;
}

/** Encryption-context keys used with AWS KMS and the key service. */
export const CONTEXT_KEYS = {
  store: 'vectorseal:store',
  collection: 'vectorseal:collection',
  dekVersion: 'vectorseal:dek-version',
} as const;

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Throws unless the context is well formed. */
export function checkDekContext(ctx: DekContext): void {
  if (typeof ctx !== 'object' || ctx === null) {
    throw new InvalidArgumentError('"context" expected an object with storeId, collectionId and dekVersion');
  }
  if (typeof ctx.storeId !== 'string' || !ID_PATTERN.test(ctx.storeId)) {
    throw new InvalidArgumentError(`"context.storeId" expected an identifier, got ${describe(ctx.storeId)}`);
  }
  if (typeof ctx.collectionId !== 'string' || !ID_PATTERN.test(ctx.collectionId)) {
    throw new InvalidArgumentError(`"context.collectionId" expected an identifier, got ${describe(ctx.collectionId)}`);
  }
  if (!Number.isSafeInteger(ctx.dekVersion) || ctx.dekVersion < 1 || ctx.dekVersion > 0xffffffff) {
    throw new InvalidArgumentError(`"context.dekVersion" expected an integer in 1..2^32-1, got ${describe(ctx.dekVersion)}`);
  }
}

/** The context as an AWS KMS EncryptionContext (string to string). */
export function toEncryptionContext(ctx: DekContext): Record<string, string> {
  return {
    [CONTEXT_KEYS.store]: ctx.storeId,
    [CONTEXT_KEYS.collection]: ctx.collectionId,
    [CONTEXT_KEYS.dekVersion]: String(ctx.dekVersion),
  };
}

/**
 * The context as unambiguous bytes for AEAD associated data: a domain label,
 * then each field length-prefixed (u16 big-endian) in a fixed order.
 */
export function contextBytes(ctx: DekContext, label = 'vectorseal/dek-wrap/v1'): Buffer {
  const parts = [label, ctx.storeId, ctx.collectionId, String(ctx.dekVersion)];
  let size = 0;
  for (const p of parts) size += 2 + Buffer.byteLength(p, 'utf8');
  // Written in place (no buffer per part): a rotation computes this three times per DEK.
  const out = Buffer.alloc(size);
  let off = 0;
  for (const p of parts) {
    const n = out.write(p, off + 2, 'utf8');
    out.writeUInt16BE(n, off);
    off += 2 + n;
  }
  return out;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `a string of length ${value.length}`;
  if (typeof value === 'number') return String(value);
  return typeof value;
}
