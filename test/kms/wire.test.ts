import { describe, expect, it } from 'vitest';
import { optContext } from '../../src/kms/wire.js';

describe('optContext', () => {
  it('keeps an own "__proto__" key as a context entry, so {"__proto__":"x"} and {} are different contexts', () => {
    const input = JSON.parse('{"EncryptionContext":{"__proto__":"x","purpose":"test"}}') as Record<string, unknown>;
    const ctx = optContext(input, 'EncryptionContext');
    expect(Object.keys(ctx)).toEqual(['__proto__', 'purpose']);
    expect(Object.getOwnPropertyDescriptor(ctx, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(ctx)).toBe(Object.prototype);
    expect(JSON.stringify(ctx)).toBe('{"__proto__":"x","purpose":"test"}');
    expect(Object.keys(optContext(JSON.parse('{"EncryptionContext":{}}') as Record<string, unknown>, 'EncryptionContext'))).toEqual([]);
  });
});
