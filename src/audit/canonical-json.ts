import { InvalidArgumentError } from '../errors.js';

/**
 * The canonical JSON text of a value: object keys sorted (UTF-16 code unit
 * order), no whitespace, numbers and strings as `JSON.stringify` writes them.
 * Two parties that hold equal values get byte-equal text, whatever order the
 * keys arrived in, so a MAC over it survives a round trip through any JSON
 * writer. Only plain data is accepted; anything JSON cannot carry exactly
 * (undefined in arrays, non-finite numbers, bigints, buffers, class instances)
 * is refused instead of being silently changed.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) {
        throw new InvalidArgumentError(`canonical JSON expected a finite number, got ${value}`);
      }
      return JSON.stringify(value);
    case 'object':
      return value === null ? 'null' : canonicalObject(value);
    default:
      throw new InvalidArgumentError(`canonical JSON cannot encode a value of type ${typeof value}`);
  }
}

function canonicalObject(value: object): string {
  if (Array.isArray(value)) {
    return `[${value.map((item: unknown) => canonicalJson(item)).join(',')}]`;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'unknown';
    throw new InvalidArgumentError(`canonical JSON expected a plain object, got an instance of ${name}`);
  }
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const item = record[key];
    if (item === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${canonicalJson(item)}`);
  }
  return `{${parts.join(',')}}`;
}
