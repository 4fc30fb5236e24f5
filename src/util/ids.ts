import { randomUUID } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A new random id (UUID v4, lower case). Store and collection ids are these. */
export function newId(): string {
  return randomUUID();
}

export function isId(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** The 16 bytes of a UUID string. */
export function idToBytes(id: string): Buffer {
  if (!isId(id)) {
    const got = typeof id === 'string' ? `a string of length ${(id as string).length}` : typeof id;
    throw new InvalidArgumentError(`expected a lower-case UUID, got ${got}`);
  }
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

/** The UUID string of 16 bytes. */
export function bytesToId(bytes: Uint8Array): string {
  const h = Buffer.from(bytes).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
