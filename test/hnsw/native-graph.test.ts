import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { describe, expect, it } from 'vitest';
import { CorruptDataError, GraphBusyError, InvalidArgumentError } from '../../src/errors.js';
import { NativeGraph, type Space } from '../../src/hnsw/index.js';
import { buildGraph } from '../../src/store/graph-build.js';
import { tempDir } from '../helpers/tmp.js';

/*
 * vectorseal's own hnswlib binding, on real files and the real addon: the
 * byte format both ways against hnswlib-node, threaded batch builds, the calls
 * refused during a batch, and hostile serialized graphs.
 */

const { HierarchicalNSW } = hnswlib;

/** Deterministic pseudo-random vectors (clustered, so that recall means something). */
function vectors(n: number, dim: number, seed = 7): Float32Array {
  let x = seed >>> 0;
  const rnd = (): number => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
  const centers = Array.from({ length: 16 }, () => Float32Array.from({ length: dim }, () => rnd() * 4 - 2));
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = centers[i % centers.length] as Float32Array;
    for (let j = 0; j < dim; j++) out[i * dim + j] = (c[j] as number) + (rnd() - 0.5);
  }
  return out;
}

function exactTop(all: Float32Array, dim: number, q: Float32Array, k: number): number[] {
  const n = all.length / dim;
  const d: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const t = (all[i * dim + j] as number) - (q[j] as number);
      s += t * t;
    }
    d.push([s, i]);
  }
  d.sort((a, b) => a[0] - b[0]);
  return d.slice(0, k).map(([, i]) => i);
}

const PARAMS = { M: 16, efConstruction: 100 };

function serialize(g: NativeGraph): Uint8Array {
  const out = new Uint8Array(g.serializedSize());
  expect(g.serializeInto(out)).toBe(out.length);
  return out;
}

async function built(space: Space, n: number, dim: number, threads: number): Promise<{ g: NativeGraph; v: Float32Array }> {
  const v = vectors(n, dim);
  const g = NativeGraph.create({ space, dim, ...PARAMS }, n);
  await g.addBatch(v, 0, threads);
  return { g, v };
}

describe('the native HNSW addon', () => {
  it('is built and loads (the store uses it unless forced to hnswlib-node)', () => {
    expect(NativeGraph.available()).toBe(true);
  });

  it.each(['l2', 'ip', 'cosine'] as const)(
    'a one-thread batch writes the very bytes hnswlib-node writes for the same adds (%s)',
    async (space) => {
      const dim = 24;
      const n = 800;
      const { g, v } = await built(space, n, dim, 1);
      const h = new HierarchicalNSW(space, dim);
      h.initIndex({ maxElements: n, m: PARAMS.M, efConstruction: PARAMS.efConstruction, randomSeed: 100 });
      for (let i = 0; i < n; i++) h.addPoint(Array.from(v.subarray(i * dim, (i + 1) * dim)), i);
      const file = join(tempDir('vs-hnsw-'), 'h.bin');
      h.writeIndexSync(file);
      expect(Buffer.compare(readFileSync(file), Buffer.from(serialize(g)))).toBe(0);
    },
  );

  it('serializeInto is read by hnswlib-node readIndex, and hnswlib-node writeIndex by deserialize, with the same results', async () => {
    const dim = 32;
    const n = 2000;
    const { g, v } = await built('l2', n, dim, 2);
    const dir = tempDir('vs-hnsw-');
    const ours = join(dir, 'ours.bin');
    writeFileSync(ours, serialize(g));
    const h = new HierarchicalNSW('l2', dim);
    await h.readIndex(ours);
    expect(h.getCurrentCount()).toBe(n);
    const theirs = join(dir, 'theirs.bin');
    h.writeIndexSync(theirs);
    const back = await NativeGraph.deserialize({ space: 'l2', dim }, new Uint8Array(readFileSync(theirs)));
    expect(back.getCurrentCount()).toBe(n);
    for (const x of [g, back]) x.setEf(50);
    h.setEf(50);
    for (let i = 0; i < 50; i++) {
      const q = v.subarray(i * 37 * dim, (i * 37 + 1) * dim);
      const want = h.searchKnn(Array.from(q), 10);
      for (const x of [g, back]) {
        const got = x.searchKnn(q, 10);
        expect(Array.from(got.neighbors)).toEqual(want.neighbors);
        Array.from(got.distances).forEach((d, j) => expect(d).toBeCloseTo(want.distances[j] as number, 4));
      }
    }
    // Delete marks travel in the format too.
    g.markDelete(5);
    const marked = await NativeGraph.deserialize({ space: 'l2', dim }, serialize(g));
    expect(() => marked.getPoint(5)).toThrow();
    expect(Array.from(marked.searchKnn(v.subarray(5 * dim, 6 * dim), 10).neighbors)).not.toContain(5);
  });

  it('a batch on two threads has recall@10 >= 0.98 against brute force', async () => {
    const dim = 48;
    const n = 4000;
    const { g, v } = await built('l2', n, dim, 2);
    expect(g.getCurrentCount()).toBe(n);
    g.setEf(100);
    let hits = 0;
    const queries = 100;
    for (let i = 0; i < queries; i++) {
      const q = vectors(1, dim, 1000 + i).map((x, j) => x * 0.5 + (v[((i * 31) % n) * dim + j] as number) * 0.5);
      const want = new Set(exactTop(v, dim, q, 10));
      for (const label of g.searchKnn(q, 10).neighbors) if (want.has(label)) hits++;
    }
    expect(hits / (queries * 10)).toBeGreaterThanOrEqual(0.98);
  });

  it('searches run safely while a batch adds points, and the unsafe calls are refused until it ends', async () => {
    const dim = 32;
    const n = 6000;
    const v = vectors(n, dim);
    const g = NativeGraph.create({ space: 'l2', dim, ...PARAMS }, n);
    // A first part already in, so that searches meet a non-empty graph.
    await g.addBatch(v.subarray(0, 500 * dim), 0, 2);
    const batch = g.addBatch(v.subarray(500 * dim), 500, 2);
    expect(g.busy).toBe(true);
    const refused: [string, () => unknown][] = [
      ['resizeIndex', () => g.resizeIndex(n * 2)],
      ['serializedSize', () => g.serializedSize()],
      ['serializeInto', () => g.serializeInto(new Uint8Array(16))],
      ['markDelete', () => g.markDelete(1)],
      ['unmarkDelete', () => g.unmarkDelete(1)],
      ['addPoint', () => g.addPoint(v.subarray(0, dim), n - 1)],
      ['getIdsList', () => g.getIdsList()],
      ['free', () => g.free()],
    ];
    for (const [name, f] of refused) expect(f, name).toThrow(GraphBusyError);
    await expect(g.addBatch(v.subarray(0, dim), 0, 1)).rejects.toThrow(GraphBusyError);
    let searches = 0;
    let done = false;
    void batch.then(() => {
      done = true;
    });
    while (!done) {
      const r = g.searchKnn(v.subarray((searches % n) * dim, ((searches % n) + 1) * dim), 10);
      for (const label of r.neighbors) expect(label).toBeLessThan(n);
      searches++;
      await new Promise((r) => setImmediate(r));
    }
    await batch;
    expect(searches).toBeGreaterThan(0);
    expect(g.busy).toBe(false);
    expect(g.getCurrentCount()).toBe(n);
    // Allowed again once the batch has resolved.
    g.markDelete(1);
    expect(g.serializedSize()).toBeGreaterThan(0);
    g.resizeIndex(n + 10);
    expect(g.getMaxElements()).toBe(n + 10);
  });

  it('refuses a batch that does not fit, a wrong dimension and a wrong thread count with typed errors', async () => {
    const g = NativeGraph.create({ space: 'l2', dim: 8, ...PARAMS }, 10);
    await expect(g.addBatch(new Float32Array(8 * 11), 0, 2)).rejects.toThrow(InvalidArgumentError);
    await expect(g.addBatch(new Float32Array(12), 0, 2)).rejects.toThrow(InvalidArgumentError);
    await expect(g.addBatch(new Float32Array(8), 0, 0)).rejects.toThrow(InvalidArgumentError);
    expect(() => g.searchKnn(new Float32Array(7), 1)).toThrow(InvalidArgumentError);
    expect(g.busy).toBe(false);
  });

  it('filters by a bitmap of labels in C++ as the callback form does', async () => {
    const dim = 16;
    const n = 3000;
    const { g, v } = await built('ip', n, dim, 2);
    g.setEf(200);
    const bits = new Uint8Array(n);
    for (let i = 0; i < n; i += 7) bits[i] = 1;
    for (let i = 0; i < 20; i++) {
      const q = v.subarray(i * dim, (i + 1) * dim);
      const a = g.searchKnn(q, 10, bits);
      const b = g.searchKnn(q, 10, (label) => label % 7 === 0);
      expect(Array.from(a.neighbors)).toEqual(Array.from(b.neighbors));
      for (const label of a.neighbors) expect(label % 7).toBe(0);
    }
    // A bitmap shorter than the labels admits nothing past its end.
    for (const label of g.searchKnn(v.subarray(0, dim), 5, new Uint8Array(10).fill(1)).neighbors) expect(label).toBeLessThan(10);
    // A throwing predicate's error is rethrown after the search, not through hnswlib.
    expect(() =>
      g.searchKnn(v.subarray(0, dim), 5, () => {
        throw new RangeError('predicate');
      }),
    ).toThrow(RangeError);
  });

  describe('hostile serialized graphs are a CorruptDataError, never a crash or an out-of-bounds read', () => {
    const dim = 8;
    const n = 300;
    let good: Uint8Array;
    const load = (bytes: Uint8Array) => NativeGraph.deserialize({ space: 'l2', dim }, bytes, 'idx.seg');
    const header = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

    it('the good one loads', async () => {
      const { g } = await built('l2', n, dim, 2);
      good = serialize(g);
      expect((await load(good)).getCurrentCount()).toBe(n);
    });

    it('truncated anywhere, or with a trailing byte', async () => {
      const cuts = [0, 1, 50, 95, 96, 97, 200, good.length >> 1, good.length - 5, good.length - 1];
      for (const cut of cuts) await expect(load(good.slice(0, cut)), `cut at ${cut}`).rejects.toThrow(CorruptDataError);
      const longer = new Uint8Array(good.length + 1);
      longer.set(good);
      await expect(load(longer)).rejects.toThrow(CorruptDataError);
    });

    it('counts and sizes in the header too large, zero or inconsistent', async () => {
      // offsetLevel0, maxElements, count, sizePerElement, labelOffset, offsetData (u64), maxLevel (i32), entry (u32), maxM, maxM0, M.
      const edits: [string, (d: DataView) => void][] = [
        ['count huge', (d) => d.setBigUint64(16, 2n ** 40n, true)],
        ['count past capacity', (d) => d.setBigUint64(16, BigInt(n + 1), true)],
        ['capacity and count huge', (d) => (d.setBigUint64(8, 2n ** 62n, true), d.setBigUint64(16, 2n ** 62n, true))],
        ['record size', (d) => d.setBigUint64(24, d.getBigUint64(24, true) + 4n, true)],
        ['record size huge', (d) => d.setBigUint64(24, 2n ** 63n, true)],
        ['label offset', (d) => d.setBigUint64(32, 0n, true)],
        ['data offset', (d) => d.setBigUint64(40, 2n ** 50n, true)],
        ['offsetLevel0', (d) => d.setBigUint64(0, 8n, true)],
        ['max level', (d) => d.setInt32(48, 2 ** 30, true)],
        ['negative max level', (d) => d.setInt32(48, -1, true)],
        ['entry point', (d) => d.setUint32(52, n + 3, true)],
        ['maxM', (d) => d.setBigUint64(56, 1000n, true)],
        ['M zero', (d) => d.setBigUint64(72, 0n, true)],
        ['mult NaN', (d) => d.setFloat64(80, Number.NaN, true)],
      ];
      for (const [name, edit] of edits) {
        const bad = good.slice();
        edit(header(bad));
        await expect(load(bad), name).rejects.toThrow(CorruptDataError);
      }
    });

    it('links out of range, lists too long, partial levels and repeated labels', async () => {
      const d = header(good);
      const sizePer = Number(d.getBigUint64(24, true));
      const labelOffset = Number(d.getBigUint64(32, true));
      const edits: [string, (b: Uint8Array, v: DataView) => void][] = [
        ['a level-0 link past the count', (_b, v) => v.setUint32(96 + 4, n + 10, true)],
        ['a level-0 list longer than maxM0', (_b, v) => v.setUint16(96, 33, true)],
        ['a repeated label', (_b, v) => v.setBigUint64(96 + sizePer + labelOffset, v.getBigUint64(96 + labelOffset, true), true)],
        ['an upper list size that is not whole levels', (_b, v) => v.setUint32(96 + n * sizePer, 3, true)],
      ];
      for (const [name, edit] of edits) {
        const bad = good.slice();
        edit(bad, header(bad));
        await expect(load(bad), name).rejects.toThrow(CorruptDataError);
      }
    });

    it('random byte flips either load a graph that searches within bounds or are refused', async () => {
      let x = 99;
      for (let round = 0; round < 300; round++) {
        const bad = good.slice();
        x = (x * 1103515245 + 12345) >>> 0;
        const at = round < 150 ? x % 96 : x % bad.length;
        bad[at] = (bad[at] as number) ^ (1 << (x % 8));
        let g: NativeGraph;
        try {
          g = await load(bad);
        } catch (err) {
          expect(err).toBeInstanceOf(CorruptDataError);
          continue;
        }
        const hits = g.searchKnn(new Float32Array(dim).fill(0.5), 5);
        for (const label of hits.neighbors) expect(label).toBeLessThan(n);
      }
    });
  });

  it('streams: serializeRange in any batch size is serializeInto, and a load pushed in any piece size is deserialize', async () => {
    const dim = 12;
    const { g, v } = await built('cosine', 1500, dim, 2);
    const whole = serialize(g);
    for (const batch of [1, 7, 96, 4096, whole.length, whole.length + 10]) {
      const out = new Uint8Array(whole.length);
      const buf = new Uint8Array(batch);
      let off = 0;
      for (let n; (n = g.serializeRange(buf, off)) > 0; off += n) out.set(buf.subarray(0, n), off);
      expect(off, `batch ${batch}`).toBe(whole.length);
      expect(Buffer.compare(Buffer.from(out), Buffer.from(whole)), `batch ${batch}`).toBe(0);
    }
    const ref = await NativeGraph.deserialize({ space: 'cosine', dim }, whole);
    for (const piece of [1, 13, 100, 65536]) {
      const loader = NativeGraph.loader({ space: 'cosine', dim }, whole.length, 'idx.seg');
      // One reused buffer, zeroed after each push: the loader copies what it needs at once.
      const reused = new Uint8Array(piece);
      for (let off = 0; off < whole.length; off += piece) {
        const part = whole.subarray(off, Math.min(whole.length, off + piece));
        reused.set(part);
        loader.push(reused.subarray(0, part.length));
        reused.fill(0);
      }
      const got = await loader.end();
      const q = v.subarray(3 * dim, 4 * dim);
      expect(Array.from(got.searchKnn(q, 10).neighbors), `piece ${piece}`).toEqual(Array.from(ref.searchKnn(q, 10).neighbors));
    }
    // Hostile streams: more than declared, fewer than declared, a header declaring more than the total.
    const over = NativeGraph.loader({ space: 'cosine', dim }, whole.length - 1, 'idx.seg');
    expect(() => over.push(whole)).toThrow(CorruptDataError);
    const short = NativeGraph.loader({ space: 'cosine', dim }, whole.length, 'idx.seg');
    short.push(whole.subarray(0, whole.length - 3));
    await expect(short.end()).rejects.toThrow(CorruptDataError);
    const small = NativeGraph.loader({ space: 'cosine', dim }, 200, 'idx.seg');
    expect(() => small.push(whole.subarray(0, 200))).toThrow(CorruptDataError);
  });

  it('a batch of rows (read where they are) builds the graph a flat batch builds', async () => {
    const dim = 16;
    const n = 700;
    const v = vectors(n, dim);
    const rows = Array.from({ length: n }, (_, i) => v.slice(i * dim, (i + 1) * dim));
    const a = await buildGraph({ space: 'l2', dim, ...PARAMS }, rows);
    const b = NativeGraph.create({ space: 'l2', dim, ...PARAMS }, n);
    await b.addBatch(v, 0, 1);
    const c = NativeGraph.create({ space: 'l2', dim, ...PARAMS }, n);
    await c.addBatch(rows, 0, 1);
    expect(a.getCurrentCount()).toBe(n);
    expect(Buffer.compare(Buffer.from(serialize(b)), Buffer.from(serialize(c)))).toBe(0);
    await expect(c.addBatch([new Float32Array(dim - 1)], 0, 1)).rejects.toThrow(InvalidArgumentError);
  });

  it('searchEach walks several graphs at once and answers exactly what one walk each answers', async () => {
    const dim = 24;
    for (const space of ['l2', 'cosine'] as Space[]) {
      const sizes = [3000, 1200, 40];
      const graphs: NativeGraph[] = [];
      for (const [i, n] of sizes.entries()) {
        const g = NativeGraph.create({ space, dim, M: 12, efConstruction: 60 }, n);
        await g.addBatch(vectors(n, dim, 11 + i), 0, 2);
        g.setEf(40 + 10 * i);
        graphs.push(g);
      }
      const queries = vectors(200, dim, 99);
      for (let qi = 0; qi < 200; qi++) {
        const q = queries.subarray(qi * dim, (qi + 1) * dim);
        // The smallest graph is asked for every point it has.
        const ks = [10, 25, 40];
        const each = NativeGraph.searchEach(graphs, q, ks);
        graphs.forEach((g, i) => {
          const one = g.searchKnn(q, ks[i] as number);
          expect(Array.from(each[i]?.neighbors ?? [])).toEqual(Array.from(one.neighbors));
          expect(Array.from(each[i]?.distances ?? [])).toEqual(Array.from(one.distances));
        });
      }
      expect(() => NativeGraph.searchEach([graphs[0] as NativeGraph, graphs[0] as NativeGraph], queries.subarray(0, dim), [5, 5])).toThrow(
        InvalidArgumentError,
      );
      expect(() => NativeGraph.searchEach(graphs.slice(0, 2), queries.subarray(0, dim - 1), [5, 5])).toThrow(InvalidArgumentError);
      expect(() => NativeGraph.searchEach(graphs.slice(0, 2), queries.subarray(0, dim), [5])).toThrow(InvalidArgumentError);
      expect(() => NativeGraph.searchEach(graphs.slice(0, 1), queries.subarray(0, dim), [1e9])).toThrow(InvalidArgumentError);
      for (const g of graphs) g.free();
    }
  });

  it('scanLabels: the exact nearest among the given labels, with the distances searchKnn reports (l2, ip, cosine)', async () => {
    const dim = 20;
    const n = 2000;
    const all = vectors(n, dim, 5);
    const queries = vectors(50, dim, 77);
    for (const space of ['l2', 'ip', 'cosine'] as Space[]) {
      const g = NativeGraph.create({ space, dim, M: 12, efConstruction: 60 }, n);
      await g.addBatch(all, 0, 2);
      const norm = (v: Float32Array): Float64Array => {
        const out = Float64Array.from(v);
        if (space !== 'cosine') return out;
        const len = Math.sqrt(out.reduce((a, x) => a + x * x, 0)) || 1;
        return out.map((x) => x / len);
      };
      const distance = (q: Float32Array, label: number): number => {
        const a = norm(q);
        const b = norm(all.subarray(label * dim, (label + 1) * dim));
        let s = 0;
        for (let j = 0; j < dim; j++)
          s += space === 'l2' ? ((a[j] as number) - (b[j] as number)) ** 2 : (a[j] as number) * (b[j] as number);
        return space === 'l2' ? s : 1 - s;
      };
      // Every seventh label, as a filter's matches would be; out of order on purpose.
      const m = Math.floor(n / 7);
      const subset = Uint32Array.from({ length: m }, (_, i) => ((i * 13) % m) * 7);
      for (let qi = 0; qi < 50; qi++) {
        const q = queries.subarray(qi * dim, (qi + 1) * dim);
        const got = g.scanLabels(q, 10, subset);
        const want = [...subset].sort((x, y) => distance(q, x) - distance(q, y)).slice(0, 10);
        expect(Array.from(got.neighbors)).toEqual(want);
        got.neighbors.forEach((label, i) => expect(got.distances[i]).toBeCloseTo(distance(q, label), 4));
        // The same label, walked to: the same distance as the graph's own search gives it.
        const walked = g.searchKnn(q, 1);
        const alone = g.scanLabels(q, 1, Uint32Array.of(walked.neighbors[0] as number));
        expect(alone.distances[0]).toBe(walked.distances[0]);
      }
      // Fewer labels than k, none, and the typed refusals.
      expect(g.scanLabels(queries.subarray(0, dim), 10, Uint32Array.of(3, 4)).neighbors.length).toBe(2);
      expect(g.scanLabels(queries.subarray(0, dim), 10, new Uint32Array(0)).neighbors.length).toBe(0);
      expect(() => g.scanLabels(queries.subarray(0, dim), 10, Uint32Array.of(n + 5))).toThrow(InvalidArgumentError);
      expect(() => g.scanLabels(queries.subarray(0, dim - 1), 10, Uint32Array.of(1))).toThrow(InvalidArgumentError);
      expect(() => g.scanLabels(queries.subarray(0, dim), 10, Int32Array.of(1) as unknown as Uint32Array)).toThrow(InvalidArgumentError);
      g.free();
    }
  });
});
