import { InvalidArgumentError } from '../errors.js';
import { isWellFormed } from '../util/strings.js';

/** Longest record id, in UTF-8 bytes. */
export const MAX_ID_BYTES = 512;

/** Checks a record id; messages give its length, never its text. */
export function checkId(id: unknown, where: string): asserts id is string {
  if (typeof id !== 'string') throw new InvalidArgumentError(`${where}: "id" expected a string, got ${id === null ? 'null' : typeof id}`);
  if (id.length === 0) throw new InvalidArgumentError(`${where}: "id" expected a non-empty string, got an empty one`);
  // UTF-8 cannot carry a lone surrogate: it would be stored as U+FFFD, merging distinct ids.
  if (!isWellFormed(id)) throw new InvalidArgumentError(`${where}: "id" is not well-formed UTF-16 (a lone surrogate)`);
  const bytes = Buffer.byteLength(id, 'utf8');
  if (bytes > MAX_ID_BYTES) throw new InvalidArgumentError(`${where}: "id" expected at most ${MAX_ID_BYTES} bytes, got ${bytes}`);
}

/**
 * Converts a vector to float32, checking its type, dimension and that every
 * component is finite once rounded to float32. Never echoes values.
 */
export function toVector(value: unknown, dim: number, where: string, space?: string): Float32Array {
  let out: Float32Array;
  if (value instanceof Float32Array) {
    out = new Float32Array(value);
  } else if (Array.isArray(value)) {
    if (value.length !== dim) throw new InvalidArgumentError(`${where}: "vector" expected ${dim} dimensions, got ${value.length}`);
    for (let i = 0; i < value.length; i++) {
      if (typeof value[i] !== 'number')
        throw new InvalidArgumentError(`${where}: "vector"[${i}] expected a number, got ${typeof value[i]}`);
    }
    out = Float32Array.from(value as number[]);
  } else {
    throw new InvalidArgumentError(
      `${where}: "vector" expected a Float32Array or an array of numbers, got ${value === null ? 'null' : typeof value}`,
    );
  }
  if (out.length !== dim) throw new InvalidArgumentError(`${where}: "vector" expected ${dim} dimensions, got ${out.length}`);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) {
      throw new InvalidArgumentError(
        `${where}: "vector"[${i}] expected a finite float32, got ${Number.isNaN(out[i]) ? 'NaN' : 'an infinity'}`,
      );
    }
  }
  if (space === 'cosine' && out.every((x) => x === 0)) {
    // A zero vector has no direction: hnswlib would normalize it to NaNs.
    throw new InvalidArgumentError(`${where}: "vector" is all zeros, which has no cosine similarity`);
  }
  return out;
}

/** Checks a positive integer option. */
export function checkPositiveInt(value: unknown, name: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidArgumentError(`"${name}" expected an integer in 1..${max}, got ${typeof value === 'number' ? value : typeof value}`);
  }
  return value;
}

/** Checks an integer option in min..max. */
export function checkIntInRange(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `"${name}" expected an integer in ${min}..${max}, got ${typeof value === 'number' ? value : typeof value}`,
    );
  }
  return value;
}
