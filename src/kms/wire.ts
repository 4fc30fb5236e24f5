import { kmsErrors } from './errors.js';

/** A parsed JSON request body. */
export type WireInput = Record<string, unknown>;

/** Reads helpers that validate request members the way the KMS model constrains them. */
export function optString(input: WireInput, name: string, max = 2048): string | undefined {
  const v = input[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length < 1 || v.length > max) {
    throw kmsErrors.validation(`${name} expected a string of length 1-${max}`);
  }
  return v;
}

export function reqString(input: WireInput, name: string, max = 2048): string {
  const v = optString(input, name, max);
  if (v === undefined) throw kmsErrors.validation(`${name} is required`);
  return v;
}

export function optInt(input: WireInput, name: string, min: number, max: number): number | undefined {
  const v = input[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw kmsErrors.validation(`${name} expected an integer in ${min}-${max}`);
  }
  return v;
}

export function optEnum<T extends string>(input: WireInput, name: string, values: readonly T[]): T | undefined {
  const v = input[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw kmsErrors.validation(`${name} expected one of ${values.join(', ')}`);
  }
  return v as T;
}

/** A base64 blob member, decoded, with the model's length bounds. */
export function reqBlob(input: WireInput, name: string, max: number): Buffer {
  const v = input[name];
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) {
    throw kmsErrors.validation(`${name} is required and expected base64`);
  }
  const b = Buffer.from(v, 'base64');
  if (b.length < 1 || b.length > max) throw kmsErrors.validation(`${name} expected 1-${max} bytes, got length=${b.length}`);
  return b;
}

/** An EncryptionContext member: a map of non-empty strings; absent means empty. */
export function optContext(input: WireInput, name: string): Record<string, string> {
  const v = input[name];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw kmsErrors.validation(`${name} expected a map of strings`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val !== 'string' || k.length === 0) throw kmsErrors.validation(`${name} expected a map of strings`);
    // An own "__proto__" key is a context entry like any other: it is defined, not assigned (assignment would drop
    // it, binding {"__proto__":"x"} and {} to the same context). Every other key is assigned, which is cheaper.
    if (k === '__proto__') Object.defineProperty(out, k, { value: val, enumerable: true, writable: true, configurable: true });
    else out[k] = val;
  }
  return out;
}

/** Timestamps go on the wire as epoch seconds. */
export function epochSeconds(ms: number): number {
  return ms / 1000;
}

export function b64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

/**
 * An answer's JSON text, made by the operation itself when every member is
 * known to need no escaping (base64 blobs, the key's ARN, constants): the
 * server then sends it instead of running JSON.stringify, which scans every
 * character of the blobs. Symbol-keyed, so JSON.stringify and every other
 * reader of the answer object never see it.
 */
export const WIRE_JSON: unique symbol = Symbol('vectorseal.kms.wireJson');

/** The JSON text of an answer: its precomputed text when it has one, else JSON.stringify's. */
export function answerJson(answer: WireInput): string {
  const text = (answer as { [WIRE_JSON]?: unknown })[WIRE_JSON];
  return typeof text === 'string' ? text : JSON.stringify(answer);
}

/** Attaches an answer's JSON text (non-enumerable: a copy of the answer, which might differ, never carries it). */
export function withJson<T extends WireInput>(answer: T, text: string): T {
  Object.defineProperty(answer, WIRE_JSON, { value: text });
  return answer;
}
