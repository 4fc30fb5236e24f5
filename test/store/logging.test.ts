import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/store/logger.js';
import { openTestStore, storeDirs } from '../helpers/store.js';

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('logs', () => {
  it('redact vector, metadata, id and key fields, even when a caller logs them by mistake', () => {
    const { stream, text } = capture();
    const log = createLogger({ level: 'trace', destination: stream });
    log.info(
      { vector: [123.456], metadata: { secret: 'OKAPI-SECRET' }, dek: 'DEKBYTES', nested: { key: 'KEYBYTES', id: 'ID-SECRET' } },
      'oops',
    );
    const out = text();
    expect(out).toContain('[redacted]');
    for (const s of ['123.456', 'OKAPI-SECRET', 'DEKBYTES', 'KEYBYTES', 'ID-SECRET']) expect(out).not.toContain(s);
  });

  it('store operations at trace level log no ids, vectors, metadata or key bytes', async () => {
    const { stream, text } = capture();
    const d = storeDirs();
    const store = await openTestStore(d, { logger: pino({ level: 'trace' }, stream) });
    const col = await store.createCollection('c', { dim: 4 });
    await col.upsert([{ id: 'LLAMA-ID-1', vector: [111.5, 222.5, 333.5, 444.5], metadata: { word: 'OKAPI-META' } }]);
    await col.flush();
    await col.delete('LLAMA-ID-1');
    await col.compact();
    await store.rotateKek();
    const dek = await store.keys.withDek(col.info.id, 1, (k) => Buffer.from(k).toString('hex'));
    const dekB64 = Buffer.from(dek, 'hex').toString('base64');
    await store.close();
    const out = text();
    expect(out).toContain('flush committed');
    for (const s of ['LLAMA-ID-1', '111.5', 'OKAPI-META', dek, dekB64]) expect(out).not.toContain(s);
  });
});
