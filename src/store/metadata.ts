import { Packr } from 'msgpackr';
import { InvalidArgumentError, LimitExceededError } from '../errors.js';

/** Largest encoded metadata of one record. */
export const MAX_METADATA_BYTES = 64 * 1024;
const MAX_DEPTH = 32;

/** Metadata as stored: plain JSON-like values. */
export type Metadata = Record<string, unknown>;

// Records (msgpackr's shared structures) would make blocks depend on state outside them.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Encodes with msgpackr (plain maps and arrays, nothing else). */
export function pack(value: unknown): Buffer {
  // A copy: msgpackr returns a view of a buffer it reuses, and callers zero what they get.
  return Buffer.from(packr.pack(value));
}

export function unpack(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/**
 * Freezes stored metadata deeply, once, so that it can be handed to callers
 * as is (no copy per read): what search and get return is read-only. The
 * children are frozen before their parent, so a frozen top level means the
 * whole value is.
 */
export function readOnly(m: Metadata | undefined): Metadata | undefined {
  if (m !== undefined && !Object.isFrozen(m)) deepFreeze(m);
  return m;
}

function deepFreeze(v: object): void {
  for (const x of Object.values(v)) {
    if (x !== null && typeof x === 'object' && !Object.isFrozen(x)) deepFreeze(x as object);
  }
  Object.freeze(v);
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks that metadata is a plain object of plain values (strings, finite
 * numbers, booleans, null, arrays, plain objects) without cycles, so that it
 * round-trips through msgpackr unchanged. Messages name the path, never the value.
 */
export function checkMetadata(value: unknown, where: string): asserts value is Metadata {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !isPlainObject(value)) {
    throw new InvalidArgumentError(`${where}: "metadata" expected a plain object, got ${describe(value)}`);
  }
  const stack = new Set<object>();
  const walk = (v: unknown, path: string, depth: number): void => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`${where}: metadata${path} expected a finite number, got ${v}`);
      return;
    }
    if (typeof v !== 'object') throw new InvalidArgumentError(`${where}: metadata${path} expected a plain value, got ${typeof v}`);
    if (depth > MAX_DEPTH) throw new LimitExceededError(`${where}: metadata nests deeper than ${MAX_DEPTH} levels`);
    if (stack.has(v)) throw new InvalidArgumentError(`${where}: metadata${path} is a cycle`);
    if (!Array.isArray(v) && !isPlainObject(v)) {
      throw new InvalidArgumentError(`${where}: metadata${path} expected a plain object or array, got ${describe(v)}`);
    }
    stack.add(v);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`, depth + 1));
    else {
      if (Object.getOwnPropertySymbols(v).length > 0) throw new InvalidArgumentError(`${where}: metadata${path} has symbol keys`);
      for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k.length > 40 ? `${k.slice(0, 40)}…` : k}`, depth + 1);
    }
    stack.delete(v);
  };
  walk(value, '', 0);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an instance of ${(v as object).constructor?.name ?? 'an unknown class'}`;
  return typeof v;
}

/** Checks and encodes one record's metadata; LimitExceededError past 64 KiB. */
export function encodeMetadata(value: unknown, where: string): Buffer {
  checkMetadata(value, where);
  const bytes = pack(value);
  if (bytes.length > MAX_METADATA_BYTES) {
    bytes.fill(0);
    throw new LimitExceededError(`${where}: metadata is ${bytes.length} bytes encoded, the limit is ${MAX_METADATA_BYTES}`);
  }
  return bytes;
}
