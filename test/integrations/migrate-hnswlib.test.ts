import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { HNSWLib } from '@langchain/community/vectorstores/hnswlib';
import type { Document } from '@langchain/core/documents';
import { Embeddings } from '@langchain/core/embeddings';
import { afterEach, describe, expect, it } from 'vitest';
import { VectorsealVectorStore, migrateHNSWLib } from '../../src/integrations/langchain/index.js';
import { storeDirs } from '../helpers/store.js';
import { hashEmbed } from './hashing.js';
import { findPlaintext } from './scan.js';

class HashingEmbeddings extends Embeddings {
  constructor() {
    super({});
  }
  async embedDocuments(texts: string[]): Promise<number[][]> {
    return texts.map((t) => hashEmbed(t));
  }
  async embedQuery(text: string): Promise<number[]> {
    return hashEmbed(text);
  }
}

const opened: VectorsealVectorStore[] = [];
afterEach(async () => {
  for (const vs of opened.splice(0)) await vs.close().catch(() => undefined);
});

describe('migrateHNSWLib', () => {
  it(
    "moves a directory written by LangChain's own HNSWLib store into an encrypted store, " +
      'with the same answers, and names the plaintext files',
    async () => {
      const d = storeDirs();
      const embeddings = new HashingEmbeddings();
      const source = join(d.root, 'hnswlib-dir');
      const texts = Array.from(
        { length: 40 },
        (_, i) => `Ticket ${i} about ${['billing', 'login', 'shipping', 'refund'][i % 4]} issue, marker OKAPITICKET${i}.`,
      );
      const metadatas = texts.map((_, i) => ({
        queue: ['billing', 'login', 'shipping', 'refund'][i % 4],
        customer: `NARWHALCUSTOMER-${i}`,
        priority: i % 3,
      }));
      const plain = await HNSWLib.fromTexts(texts, metadatas, embeddings);
      await plain.save(source);
      await fs.writeFile(join(source, 'notes.txt'), 'not written by HNSWLib');
      const sourceFiles = new Map<string, Buffer>();
      for (const f of await fs.readdir(source)) sourceFiles.set(f, await fs.readFile(join(source, f)));
      // Control: the HNSWLib directory holds the text and metadata in clear.
      expect(
        await findPlaintext(
          [source],
          [
            ['text', Buffer.from('OKAPITICKET7.')],
            ['metadata', Buffer.from('NARWHALCUSTOMER-7')],
          ],
        ),
      ).toHaveLength(2);

      const config = {
        dir: d.dir,
        keys: { provider: 'local' as const, keyDir: d.keyDir },
        stagingDir: d.stagingDir,
        collectionName: 'tickets',
      };
      const report = await migrateHNSWLib(source, config);
      expect(report.documents).toBe(40);
      expect(report.collection).toBe('tickets');
      expect(report.deletable.sort()).toEqual(['args.json', 'docstore.json', 'hnswlib.index'].map((f) => join(source, f)));
      expect(report.otherFiles).toEqual([join(source, 'notes.txt')]);
      // The source directory is untouched.
      for (const [f, bytes] of sourceFiles) expect((await fs.readFile(join(source, f))).equals(bytes)).toBe(true);

      // Same queries, same documents and distances as the HNSWLib store (its function filter and our filter object).
      const vs = await VectorsealVectorStore.load(d.dir, embeddings, config);
      opened.push(vs);
      for (const query of ['refund for my order', 'cannot login', 'shipping delay billing']) {
        const theirs = await plain.similaritySearchWithScore(query, 5);
        const ours = await vs.similaritySearchWithScore(query, 5);
        expect(ours.map(([doc]) => [doc.pageContent, doc.metadata])).toEqual(theirs.map(([doc]) => [doc.pageContent, doc.metadata]));
        ours.forEach(([, score], i) => expect(score).toBeCloseTo(theirs[i]![1], 5));
        const theirsFiltered = await plain.similaritySearch(query, 3, (doc: Document) => doc.metadata['queue'] === 'login');
        const oursFiltered = await vs.similaritySearch(query, 3, { queue: 'login' });
        expect(oursFiltered.map((doc) => doc.pageContent)).toEqual(theirsFiltered.map((doc) => doc.pageContent));
      }
      // Running it again (after an interruption, say) upserts the same records.
      await vs.close();
      expect((await migrateHNSWLib(source, config)).documents).toBe(40);

      const needles: [string, Buffer][] = [];
      texts.forEach((t, i) => {
        needles.push([`text ${i}`, Buffer.from(/OKAPITICKET\d+/.exec(t)![0] + '.')]);
        needles.push([`metadata ${i}`, Buffer.from(`NARWHALCUSTOMER-${i}"`)]);
      });
      expect(await findPlaintext([d.dir, d.stagingDir], needles)).toEqual([]);
    },
  );

  it('a damaged HNSWLib directory is a typed error naming the file', async () => {
    const d = storeDirs();
    const source = join(d.root, 'broken');
    const plain = await HNSWLib.fromTexts(['a b c', 'd e f'], [{}, {}], new HashingEmbeddings());
    await plain.save(source);
    const config = { dir: d.dir, keys: { provider: 'local' as const, keyDir: d.keyDir }, stagingDir: d.stagingDir };
    await fs.writeFile(join(source, 'docstore.json'), '[["0", {"pageContent": "a b c", "metadata": {}}]]');
    await expect(migrateHNSWLib(source, config)).rejects.toMatchObject({ code: 'VS_CORRUPT_DATA', file: join(source, 'docstore.json') });
    await fs.writeFile(join(source, 'args.json'), '{"space": "hamming", "numDimensions": 64}');
    await expect(migrateHNSWLib(source, config)).rejects.toMatchObject({ code: 'VS_CORRUPT_DATA', file: join(source, 'args.json') });
    await expect(migrateHNSWLib(join(d.root, 'missing'), config)).rejects.toMatchObject({ code: 'VS_NOT_FOUND' });
  });
});
