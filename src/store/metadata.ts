import { Packr, addExtension } from 'msgpackr';
import { InvalidArgumentError, LimitExceededError, VectorsealError } from '../errors.js';
import { isWellFormed } from '../util/strings.js';

/** Largest encoded metadata of one record. */
export const MAX_METADATA_BYTES = 64 * 1024;
const MAX_DEPTH = 32;

/** Metadata as stored: plain JSON-like values. */
export type Metadata = Record<string, unknown>;

// Records (msgpackr's shared structures) would make blocks depend on state outside them.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/**
 * Two values msgpackr would change silently, carried as tagged extensions so
 * that they round-trip exactly: -0 (msgpackr writes it as the integer 0) and
 * an object with an own `__proto__` key (msgpackr renames the key on decode).
 * Only instances of these private classes are written this way; nothing else
 * ever produces them.
 */
class NegativeZero {}
class ProtoKeyed {
  constructor(readonly flat: unknown[]) {}
}
const NEGATIVE_ZERO = new NegativeZero();
const EXT_NEGATIVE_ZERO = 0x40;
const EXT_PROTO_KEYED = 0x41;

addExtension({ Class: NegativeZero, type: EXT_NEGATIVE_ZERO, write: () => 0, read: () => -0 });
addExtension({
  Class: ProtoKeyed,
  type: EXT_PROTO_KEYED,
  write: (p: ProtoKeyed) => p.flat,
  read: (flat: unknown) => {
    if (!Array.isArray(flat) || flat.length % 2 !== 0) throw new TypeError('object with an own __proto__ key: expected key/value pairs');
    const o: Record<string, unknown> = {};
    for (let i = 0; i < flat.length; i += 2) {
      const k = flat[i];
      if (typeof k !== 'string') throw new TypeError('object with an own __proto__ key: expected string keys');
      // defineProperty makes an own property even for "__proto__" (an assignment would set the prototype).
      Object.defineProperty(o, k, { value: flat[i + 1], enumerable: true, writable: true, configurable: true });
    }
    return o;
  },
});

/** Encodes with msgpackr (plain maps and arrays, nothing else). */
export function pack(value: unknown): Buffer {
  // A copy: msgpackr returns a view of a buffer it reuses, and callers zero what they get.
  return Buffer.from(packr.pack(value));
}

export function unpack(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/**
 * Stored metadata (already checked) in the form {@link pack} keeps exactly:
 * -0 and own `__proto__` keys become their extensions. Returns the value
 * itself when it holds neither (no copy on the common path).
 */
export function toWire(v: unknown): unknown {
  if (typeof v === 'number') return Object.is(v, -0) ? NEGATIVE_ZERO : v;
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = toWire(v[i]);
      if (x !== v[i]) (out ??= v.slice())[i] = x;
    }
    return out ?? v;
  }
  const o = v as Record<string, unknown>;
  let changed = Object.hasOwn(o, '__proto__');
  const entries = Object.keys(o).map((k) => {
    const x = toWire(o[k]);
    if (x !== o[k]) changed = true;
    return [k, x] as const;
  });
  if (!changed) return v;
  if (Object.hasOwn(o, '__proto__')) return new ProtoKeyed(entries.flat());
  return Object.fromEntries(entries);
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
 * Checks that metadata is a plain object of plain values (well-formed
 * strings, finite numbers, booleans, null, arrays, plain objects) without
 * cycles, and copies it into the wire form {@link pack} keeps exactly. Only
 * own, enumerable data properties are read: a getter, a hole in an array or a
 * non-enumerable key is refused rather than skipped, so that what is stored is
 * what was given. Anything the value throws while being read (a Proxy trap)
 * becomes an InvalidArgumentError. Messages name the path, never the value.
 */
export function copyMetadata(value: unknown, where: string): unknown {
  try {
    return copyChecked(value, where);
  } catch (err) {
    if (err instanceof VectorsealError) throw err;
    throw new InvalidArgumentError(`${where}: "metadata" could not be read as plain data`, { cause: err });
  }
}

function copyChecked(value: unknown, where: string): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !isPlainObject(value)) {
    throw new InvalidArgumentError(`${where}: "metadata" expected a plain object, got ${describe(value)}`);
  }
  const stack = new Set<object>();
  const walk = (v: unknown, path: string, depth: number): unknown => {
    if (v === null || typeof v === 'boolean') return v;
    if (typeof v === 'string') {
      if (!isWellFormed(v)) throw new InvalidArgumentError(`${where}: metadata${path} is not well-formed UTF-16 (a lone surrogate)`);
      return v;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`${where}: metadata${path} expected a finite number, got ${v}`);
      return Object.is(v, -0) ? NEGATIVE_ZERO : v;
    }
    if (typeof v !== 'object') throw new InvalidArgumentError(`${where}: metadata${path} expected a plain value, got ${typeof v}`);
    if (depth > MAX_DEPTH) throw new LimitExceededError(`${where}: metadata nests deeper than ${MAX_DEPTH} levels`);
    if (stack.has(v)) throw new InvalidArgumentError(`${where}: metadata${path} is a cycle`);
    if (!Array.isArray(v) && !isPlainObject(v)) {
      throw new InvalidArgumentError(`${where}: metadata${path} expected a plain object or array, got ${describe(v)}`);
    }
    stack.add(v);
    const descriptors = Object.getOwnPropertyDescriptors(v) as Record<string | symbol, PropertyDescriptor>;
    if (Object.getOwnPropertySymbols(descriptors).length > 0) throw new InvalidArgumentError(`${where}: metadata${path} has symbol keys`);
    let out: unknown;
    if (Array.isArray(v)) {
      const length = v.length;
      const arr: unknown[] = new Array<unknown>(length);
      for (let i = 0; i < length; i++) {
        const d = descriptors[String(i)];
        if (d === undefined) throw new InvalidArgumentError(`${where}: metadata${path}[${i}] is a hole in the array`);
        arr[i] = walk(dataOf(d, `${path}[${i}]`, where), `${path}[${i}]`, depth + 1);
      }
      if (Object.keys(descriptors).length !== length + 1)
        throw new InvalidArgumentError(`${where}: metadata${path} is an array with extra properties`);
      out = arr;
    } else {
      const keys = Object.keys(descriptors);
      const flat: unknown[] = [];
      for (const k of keys) {
        const p = `${path}.${k.length > 40 ? `${k.slice(0, 40)}…` : k}`;
        if (!isWellFormed(k))
          throw new InvalidArgumentError(
            `${where}: metadata key at${path || ' the top level'} is not well-formed UTF-16 (a lone surrogate)`,
          );
        const d = descriptors[k] as PropertyDescriptor;
        if (!d.enumerable)
          throw new InvalidArgumentError(`${where}: metadata${p} is not enumerable; only plain data properties are stored`);
        flat.push(k, walk(dataOf(d, p, where), p, depth + 1));
      }
      out = Object.hasOwn(descriptors, '__proto__') ? new ProtoKeyed(flat) : pairsToObject(flat);
    }
    stack.delete(v);
    return out;
  };
  return walk(value, '', 0);
}

function dataOf(d: PropertyDescriptor, path: string, where: string): unknown {
  if (!('value' in d))
    throw new InvalidArgumentError(`${where}: metadata${path} is a getter or setter; only plain data properties are stored`);
  return d.value;
}

function pairsToObject(flat: unknown[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i < flat.length; i += 2) o[flat[i] as string] = flat[i + 1];
  return o;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') {
    const ctor = (Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    return `an instance of ${typeof ctor === 'string' ? ctor : 'an unknown class'}`;
  }
  return typeof v;
}

/** Checks, copies and encodes one record's metadata; LimitExceededError past 64 KiB. */
export function encodeMetadata(value: unknown, where: string): Buffer {
  const bytes = pack(copyMetadata(value, where));
  if (bytes.length > MAX_METADATA_BYTES) {
    bytes.fill(0);
    throw new LimitExceededError(`${where}: metadata is ${bytes.length} bytes encoded, the limit is ${MAX_METADATA_BYTES}`);
  }
  return bytes;
}
