import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Document } from '@langchain/core/documents';
import { Embeddings } from '@langchain/core/embeddings';
import { RunnableLambda, RunnableSequence } from '@langchain/core/runnables';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { VectorsealVectorStore } from '../../src/integrations/langchain/index.js';
import { storeDirs } from '../helpers/store.js';
import { hashEmbed } from './hashing.js';
import { f32, filesUnder, findPlaintext } from './scan.js';

/** LangChain's Embeddings base class with the deterministic hashing embedder underneath (the only stand-in). */
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

const TOPICS = ['penguin', 'volcano', 'harbour', 'orchard'];
const LANGS = ['en', 'de', 'fr'];

/** 24 documents: each mentions one topic (with a unique canary word) in one language. */
function corpus(): Document[] {
  const docs: Document[] = [];
  for (let i = 0; i < 24; i++) {
    const topic = TOPICS[i % TOPICS.length] as string;
    const lang = LANGS[Math.floor(i / TOPICS.length) % LANGS.length] as string;
    docs.push(
      new Document({
        id: `doc-${i}`,
        pageContent: `Notes about the ${topic} ${topic} ${topic} number ${i}, marker QUAGGATEXT${i}.`,
        metadata: { topic, lang, n: i, source: `MARMOSETSOURCE-${i}.md`, loc: { line: i * 10 } },
      }),
    );
  }
  return docs;
}

const opened: VectorsealVectorStore[] = [];
afterEach(async () => {
  for (const vs of opened.splice(0)) await vs.close().catch(() => undefined);
});

function track(vs: VectorsealVectorStore): VectorsealVectorStore {
  opened.push(vs);
  return vs;
}

/** A runnable chain: retriever, then the documents' ids and topics as one string per document. */
function chainOf(vs: VectorsealVectorStore, filter: VectorsealVectorStore['FilterType']) {
  const retriever = vs.asRetriever({ k: 3, filter });
  return RunnableSequence.from([
    retriever,
    RunnableLambda.from((docs: Document[]) => docs.map((d) => `${d.id}:${d.metadata['topic']}:${d.metadata['lang']}`)),
  ]);
}

describe('vectorseal/langchain: VectorsealVectorStore on @langchain/core', () => {
  it(
    'a retriever in a runnable chain returns the right documents with a metadata filter, ' +
      'after a reopen and after a KEK rotation; nothing in clear on disk',
    async () => {
      const d = storeDirs();
      const embeddings = new HashingEmbeddings();
      const docs = corpus();
      const config = { dir: d.dir, keys: { provider: 'local' as const, keyDir: d.keyDir }, stagingDir: d.stagingDir };
      let vs = track(await VectorsealVectorStore.fromDocuments(docs, embeddings, config));
      expect(vs.count).toBe(24);

      // The expected answer, computed by brute force over the same embeddings.
      const query = 'tell me about the volcano';
      const q = hashEmbed(query);
      const expected = docs
        .filter((x) => x.metadata['lang'] === 'de')
        .map((x) => ({ x, s: hashEmbed(x.pageContent).reduce((acc, v, i) => acc + v * (q[i] as number), 0) }))
        .sort((a, b) => b.s - a.s)
        .slice(0, 3)
        .map(({ x }) => `${x.id}:${x.metadata['topic']}:de`);
      const chain = chainOf(vs, { lang: 'de' });
      const first = await chain.invoke(query);
      expect(first).toEqual(expected);
      expect(first[0]).toMatch(/:volcano:de$/);
      // A pipe works the same way.
      const piped = await vs
        .asRetriever({ k: 2, filter: { lang: 'fr', topic: 'harbour' } })
        .pipe(RunnableLambda.from((ds: Document[]) => ds.map((x) => x.id)))
        .invoke('harbour boats');
      expect([...piped].sort()).toEqual(['doc-10', 'doc-22']);
      // A function filter (as HNSWLib takes) sees the whole document.
      const byText = await vs.similaritySearch('penguin', 2, (doc: Document) => doc.pageContent.includes('QUAGGATEXT8.'));
      expect(byText.map((x) => x.id)).toEqual(['doc-8']);
      // Operators of the filter language.
      const numeric = await vs.similaritySearch('orchard', 24, { n: { $gte: 20 }, topic: { $in: ['orchard', 'penguin'] } });
      expect(numeric.map((x) => x.id).sort()).toEqual(['doc-20', 'doc-23']);
      // Scores are distances as with HNSWLib: the document itself is at ~0.
      const [[top, distance]] = (await vs.similaritySearchVectorWithScore(hashEmbed(docs[5]!.pageContent), 1)) as [[Document, number]];
      expect(top.id).toBe('doc-5');
      expect(distance).toBeCloseTo(0, 5);
      expect(top.pageContent).toBe(docs[5]!.pageContent);
      expect(top.metadata).toEqual(docs[5]!.metadata);

      // Delete by id, add with explicit ids (upsert).
      expect(first).toContain('doc-17:volcano:de');
      await vs.delete({ ids: ['doc-17'] });
      const ids = await vs.addDocuments(
        [
          new Document({
            pageContent: 'Notes about the volcano volcano volcano number 99, marker QUAGGATEXTNEW.',
            metadata: { topic: 'volcano', lang: 'de', n: 99, source: 'MARMOSETSOURCE-new.md' },
          }),
        ],
        { ids: ['doc-new'] },
      );
      expect(ids).toEqual(['doc-new']);
      const afterEdit = await chain.invoke(query);
      expect(afterEdit).not.toContain('doc-17:volcano:de');
      expect(afterEdit).toContain('doc-new:volcano:de');

      // Reopen, as HNSWLib.load would.
      await vs.save(d.dir);
      await vs.close();
      vs = track(await VectorsealVectorStore.load(d.dir, embeddings, config));
      expect(await chainOf(vs, { lang: 'de' }).invoke(query)).toEqual(afterEdit);

      // Rotate the KEK: data files byte-identical; results unchanged after another reopen.
      const dataFiles = async () => {
        const out = new Map<string, string>();
        for (const f of await filesUnder(join(d.dir, 'collections'))) out.set(f, (await fs.readFile(f)).toString('hex'));
        return out;
      };
      await vs.save();
      const before = await dataFiles();
      const report = await vs.store.rotateKek();
      expect(report.rewrapped).toBeGreaterThan(0);
      expect(await dataFiles()).toEqual(before);
      await vs.close();
      vs = track(await VectorsealVectorStore.load(d.dir, embeddings, config));
      expect(await chainOf(vs, { lang: 'de' }).invoke(query)).toEqual(afterEdit);
      await vs.close();

      const needles: [string, Buffer][] = [];
      for (const doc of [...docs, new Document({ pageContent: 'QUAGGATEXTNEW', metadata: { source: 'MARMOSETSOURCE-new.md' } })]) {
        const marker = /QUAGGATEXT\w+/.exec(doc.pageContent)?.[0] as string;
        needles.push([`text ${marker}`, Buffer.from(marker)]);
        needles.push([`metadata ${String(doc.metadata['source'])}`, Buffer.from(String(doc.metadata['source']))]);
        needles.push([`vector of ${doc.id}`, f32(hashEmbed(doc.pageContent).slice(8, 12))]);
        if (doc.id) needles.push([`id ${doc.id}`, Buffer.from(`"${doc.id}`)]);
      }
      needles.push(['a topic', Buffer.from('volcano')], ['an id', Buffer.from('doc-17')]);
      // Control: the scan sees what it looks for.
      expect(await findPlaintext([d.root], [['control', Buffer.from('"provider"')]])).not.toEqual([]);
      expect(await findPlaintext([d.dir, d.stagingDir], needles)).toEqual([]);
    },
  );

  it('one collection per tenant: a tenant store sees only its own documents, keyed under the tenant', async () => {
    const d = storeDirs();
    const embeddings = new HashingEmbeddings();
    const config = { dir: d.dir, keys: { provider: 'local' as const, keyDir: d.keyDir }, stagingDir: d.stagingDir };
    const vs = track(await VectorsealVectorStore.fromTexts(['shared penguin facts'], [{ who: 'store' }], embeddings, config));
    // acme has its own KEK; globex is on the store's.
    await vs.store.createTenant('acme', { kek: { provider: 'local', keyDir: d.keyDir } });
    const acme = vs.forTenant('acme');
    const globex = vs.forTenant('globex');
    await acme.addDocuments([new Document({ pageContent: 'acme penguin plans', metadata: { who: 'acme' } })]);
    await globex.addDocuments([new Document({ pageContent: 'globex penguin plans', metadata: { who: 'globex' } })]);
    expect((await acme.similaritySearch('penguin', 10)).map((x) => x.metadata['who'])).toEqual(['acme']);
    expect((await globex.similaritySearch('penguin', 10)).map((x) => x.metadata['who'])).toEqual(['globex']);
    expect((await vs.similaritySearch('penguin', 10)).map((x) => x.metadata['who'])).toEqual(['store']);
    const summary = vs.store.listCollections().map((c) => [c.name, c.tenant]);
    expect(summary).toEqual([
      ['langchain', undefined],
      ['acme.langchain', 'acme'],
      ['globex.langchain', 'globex'],
    ]);
    const kekOf = (name: string) => vs.store.keys.collectionKeys(vs.store.listCollections().find((c) => c.name === name)!.id).keks;
    expect(kekOf('acme.langchain')).toEqual(vs.store.keys.tenant('acme').keks);
    expect(kekOf('acme.langchain')).not.toEqual(kekOf('langchain'));
    expect(kekOf('globex.langchain')).toEqual(kekOf('langchain'));
    await vs.close();
    // Reopened per tenant; a name that belongs to another tenant is refused.
    const again = track(await VectorsealVectorStore.load(d.dir, embeddings, { ...config, tenant: 'acme' }));
    expect((await again.similaritySearch('penguin', 10)).map((x) => x.metadata['who'])).toEqual(['acme']);
    expect(() => new VectorsealVectorStore(embeddings, { store: again.store, collectionName: 'acme.langchain' })).toThrow(
      InvalidArgumentError,
    );
  });

  it('bad input is a typed error', async () => {
    const d = storeDirs();
    const embeddings = new HashingEmbeddings();
    const config = { dir: d.dir, keys: { provider: 'local' as const, keyDir: d.keyDir }, stagingDir: d.stagingDir };
    const vs = track(await VectorsealVectorStore.fromTexts(['x'], {}, embeddings, config));
    await expect(vs.delete({} as { ids: string[] })).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(vs.similaritySearch('x', 0)).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(vs.similaritySearch('x', 1.5)).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    expect(await vs.similaritySearch('x', 50)).toHaveLength(1);
    await expect(vs.similaritySearch('x', 1, { $or: [] } as never)).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(vs.similaritySearch('x', 1, { a: { $regex: 'x' } } as never)).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    await expect(vs.addDocuments([new Document({ pageContent: 'y', metadata: cyclic })])).rejects.toMatchObject({
      code: 'VS_INVALID_ARGUMENT',
    });
    await expect(vs.save(join(d.root, 'elsewhere'))).rejects.toMatchObject({ code: 'VS_UNSUPPORTED_OPERATION' });
    // A function filter that throws ends the search with its error.
    await expect(
      vs.similaritySearch('x', 1, () => {
        throw new RangeError('boom');
      }),
    ).rejects.toThrow(RangeError);
    await expect(VectorsealVectorStore.load(join(d.root, 'none'), embeddings, config)).rejects.toMatchObject({ code: 'VS_NOT_FOUND' });
    // An own __proto__ key pollutes nothing.
    const odd = JSON.parse('{"__proto__": {"polluted": true}, "s": "kept"}') as Record<string, unknown>;
    await vs.addDocuments([new Document({ pageContent: 'odd metadata', metadata: odd, id: 'odd' })]);
    const [hit] = await vs.similaritySearch('odd metadata', 1);
    expect(hit!.metadata['s']).toBe('kept');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});
