import { BaseEmbedding } from '@llamaindex/core/embeddings';
import { Document, MetadataMode, TextNode, type NodeWithScore } from '@llamaindex/core/schema';
import { Settings, VectorStoreIndex, type MetadataFilters } from 'llamaindex';
import { afterEach, describe, expect, it } from 'vitest';
import { VectorsealNodeStore } from '../../src/integrations/llamaindex/index.js';
import { storeDirs } from '../helpers/store.js';
import { hashEmbed } from './hashing.js';
import { f32, findPlaintext } from './scan.js';

/** LlamaIndex's BaseEmbedding with the deterministic hashing embedder underneath (the only stand-in). */
class HashingEmbedding extends BaseEmbedding {
  constructor() {
    super();
  }
  async getTextEmbedding(text: string): Promise<number[]> {
    return hashEmbed(text);
  }
}

const CITIES = ['lisbon', 'oslo', 'quito', 'hanoi'];

/** 20 documents, one city each, with tags; each text carries a unique canary word. */
function documents(): Document[] {
  return Array.from({ length: 20 }, (_, i) => {
    const city = CITIES[i % CITIES.length] as string;
    return new Document({
      id_: `src-${i}`,
      text: `Travel notes on ${city} ${city} ${city}, entry ${i}, marker PANGOLINTEXT${i}.`,
      metadata: { city, year: 2000 + i, tags: i % 2 === 0 ? ['even', 'SECRETTAG-even'] : ['odd'], author: `IBEXAUTHOR-${i}` },
    });
  });
}

const opened: VectorsealNodeStore[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close().catch(() => undefined);
});

const texts = (hits: NodeWithScore[]) => hits.map((h) => /PANGOLINTEXT\d+/.exec(h.node.getContent(MetadataMode.NONE))?.[0]);

describe('vectorseal/llamaindex: VectorsealNodeStore on @llamaindex/core', () => {
  it(
    'VectorStoreIndex over the store answers retrieval with filters, after a reopen; ' + 'delete by ref doc id; nothing in clear on disk',
    async () => {
      const d = storeDirs();
      const embedModel = new HashingEmbedding();
      // The index itself embeds with Settings.embedModel, as any LlamaIndex app sets it.
      Settings.embedModel = embedModel;
      const open = async () => {
        const s = await VectorsealNodeStore.open({
          dir: d.dir,
          keys: { provider: 'local', keyDir: d.keyDir },
          stagingDir: d.stagingDir,
          embedModel,
        });
        opened.push(s);
        return s;
      };
      let store = await open();
      let index = await VectorStoreIndex.fromVectorStore(store);
      for (const doc of documents()) await index.insert(doc);
      expect(store.count).toBe(20);

      const oslo2010s: MetadataFilters = {
        filters: [
          { key: 'city', value: 'oslo', operator: '==' },
          { key: 'year', value: 2010, operator: '>=' },
        ],
      };
      const retrieve = async (filters: MetadataFilters | undefined, k = 3, query = 'oslo travel') =>
        texts(await index.asRetriever({ similarityTopK: k, ...(filters ? { filters } : {}) }).retrieve({ query }));
      const expected = ['PANGOLINTEXT13', 'PANGOLINTEXT17'];
      expect((await retrieve(oslo2010s)).sort()).toEqual(expected);
      // OR, array operators, text match, is_empty, nin.
      expect(
        (
          await retrieve(
            {
              condition: 'or',
              filters: [
                { key: 'year', value: 2000, operator: '==' },
                { key: 'year', value: 2019, operator: '==' },
              ],
            },
            5,
          )
        ).sort(),
      ).toEqual(['PANGOLINTEXT0', 'PANGOLINTEXT19']);
      expect(
        (
          await retrieve(
            {
              filters: [
                { key: 'tags', value: 'even', operator: 'contains' },
                { key: 'city', value: ['lisbon'], operator: 'nin' },
              ],
            },
            20,
          )
        ).sort(),
      ).toEqual(['PANGOLINTEXT14', 'PANGOLINTEXT18', 'PANGOLINTEXT2', 'PANGOLINTEXT6', 'PANGOLINTEXT10'].sort());
      expect(await retrieve({ filters: [{ key: 'tags', value: ['odd', 'even'], operator: 'all' }] }, 20)).toEqual([]);
      expect(
        (
          await retrieve(
            {
              filters: [
                { key: 'author', value: 'AUTHOR-1', operator: 'text_match' },
                { key: 'tags', value: ['odd'], operator: 'any' },
              ],
            },
            20,
          )
        ).sort(),
      ).toEqual(['PANGOLINTEXT1', 'PANGOLINTEXT11', 'PANGOLINTEXT13', 'PANGOLINTEXT15', 'PANGOLINTEXT17', 'PANGOLINTEXT19'].sort());
      expect(
        await retrieve(
          {
            filters: [
              { key: 'missing', operator: 'is_empty' },
              { key: 'year', value: 2003, operator: '<' },
              { key: 'year', value: [2001, 2002], operator: 'in' },
            ],
          },
          20,
        ).then((x) => x.sort()),
      ).toEqual(['PANGOLINTEXT1', 'PANGOLINTEXT2']);
      // The node comes back whole: text, metadata, source document.
      const [top] = await index.asRetriever({ similarityTopK: 1, filters: oslo2010s }).retrieve({ query: 'entry 13 oslo' });
      expect(top!.node.metadata).toMatchObject({ city: 'oslo', year: 2013, author: 'IBEXAUTHOR-13' });
      expect(top!.node.sourceNode?.nodeId).toBe('src-13');

      // Delete the nodes of one source document (the text lives in the vector store: no document store to update).
      await index.deleteRefDoc('src-17', false);
      expect(await retrieve(oslo2010s)).toEqual(['PANGOLINTEXT13']);

      // Reopen: a fresh index over the reopened store answers the same.
      await store.close();
      store = await open();
      index = await VectorStoreIndex.fromVectorStore(store);
      expect(store.count).toBe(19);
      expect(await retrieve(oslo2010s)).toEqual(['PANGOLINTEXT13']);
      expect((await retrieve({ filters: [{ key: 'city', value: 'hanoi', operator: '==' }] }, 2, 'hanoi')).length).toBe(2);
      // A query with the store's own query API too (similarities: cosine).
      const q = await store.query({
        queryEmbedding: hashEmbed('quito quito'),
        similarityTopK: 2,
        mode: 'default' as never,
        filters: { filters: [{ key: 'city', value: 'quito', operator: '==' }] },
      });
      expect(q.ids).toHaveLength(2);
      expect(q.similarities[0]).toBeGreaterThan(0.5);
      await store.close();

      const needles: [string, Buffer][] = [['tag', Buffer.from('SECRETTAG-even')]];
      for (const doc of documents()) {
        const i = Number(doc.id_.slice(4));
        needles.push(
          [`text ${i}`, Buffer.from(`PANGOLINTEXT${i}.`)],
          [`author ${i}`, Buffer.from(`IBEXAUTHOR-${i}"`)],
          [`vector ${i}`, f32(hashEmbed(doc.text).slice(4, 8))],
        );
      }
      needles.push(['a city', Buffer.from('lisbon')], ['a source id', Buffer.from('src-1')]);
      expect(await findPlaintext([d.dir, d.stagingDir], needles)).toEqual([]);
    },
  );

  it('nodes without embeddings, malformed filters and unsupported modes are typed errors', async () => {
    const d = storeDirs();
    const store = await VectorsealNodeStore.open({
      dir: d.dir,
      keys: { provider: 'local', keyDir: d.keyDir },
      stagingDir: d.stagingDir,
      embedModel: new HashingEmbedding(),
    });
    opened.push(store);
    await expect(store.add([new TextNode({ text: 'x' })])).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await store.add([new TextNode({ text: 'x', embedding: hashEmbed('x'), metadata: { constructor: 'own' } })]);
    const q = (filters: unknown, mode = 'default') =>
      store.query({ queryEmbedding: hashEmbed('x'), similarityTopK: 1, mode: mode as never, filters: filters as MetadataFilters });
    await expect(q({ filters: [{ key: 'a', value: 1, operator: '~=' }] })).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(q({ filters: [{ key: 'a', value: { x: 1 }, operator: '==' }] })).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(q({ filters: [{ key: 'a', value: 1, operator: 'in' }] })).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(q({ filters: [], condition: 'xor' })).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(q(undefined, 'hybrid')).rejects.toMatchObject({ code: 'VS_UNSUPPORTED_OPERATION' });
    // Inherited properties are not metadata; own ones are.
    expect((await q({ filters: [{ key: 'toString', operator: 'is_empty' }] })).ids).toHaveLength(1);
    expect((await q({ filters: [{ key: 'constructor', value: 'own', operator: '==' }] })).ids).toHaveLength(1);
  });
});
