import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { describe, expect, it } from 'vitest';
import { readIndexSealed, rotateSealedIndexKek, sealedIndexInfo, writeIndexSealed } from '../../src/integrations/hnswlib/index.js';
import { storeDirs } from '../helpers/store.js';
import { prng } from '../store/helpers.js';
import { f32, findPlaintext } from './scan.js';

type Space = 'l2' | 'ip' | 'cosine';

function build(space: Space, n: number, dim: number, seed: number) {
  const r = prng(seed);
  const vectors = Array.from({ length: n }, () => Array.from(Float32Array.from({ length: dim }, () => r() * 2 - 1)));
  const index = new hnswlib.HierarchicalNSW(space, dim);
  index.initIndex({ maxElements: n + 10, m: 12, efConstruction: 100 });
  vectors.forEach((v, i) => index.addPoint(v, i * 3));
  // Some labels deleted: they must stay deleted through the round trip.
  for (let i = 0; i < n; i += 17) index.markDelete(i * 3);
  const queries = Array.from({ length: 25 }, () => Array.from({ length: dim }, () => r() * 2 - 1));
  return { index, vectors, queries };
}

function answers(index: InstanceType<typeof hnswlib.HierarchicalNSW>, queries: number[][]) {
  index.setEf(50);
  return queries.map((q) => index.searchKnn(q, 10));
}

describe('vectorseal/hnswlib: writeIndexSealed / readIndexSealed', () => {
  for (const space of ['l2', 'cosine', 'ip'] as const) {
    it(
      `a ${space} index sealed and read back gives identical searchKnn results, also after a KEK rotation; ` + 'no vector bytes on disk',
      async () => {
        const d = storeDirs();
        const keys = { provider: 'local' as const, keyDir: d.keyDir };
        const { index, vectors, queries } = build(space, 600, 24, space.length);
        const before = answers(index, queries);
        const sealed = join(d.root, 'index.sealed');
        const info = await writeIndexSealed(index, sealed, keys, { space, stagingDir: d.stagingDir });
        expect(info).toMatchObject({ generation: 1, space, dim: 24, count: 600 });

        const back = await readIndexSealed(sealed, keys, { stagingDir: d.stagingDir });
        expect(answers(back, queries)).toEqual(before);
        expect(back.getIdsList().sort((a, b) => a - b)).toEqual(index.getIdsList().sort((a, b) => a - b));
        expect(back.getMaxElements()).toBe(index.getMaxElements());

        // Rotation rewraps the DEK only: the index file is byte-identical and still reads the same.
        const file = join(sealed, info.file);
        const bytes = await fs.readFile(file);
        const report = await rotateSealedIndexKek(sealed, keys, { stagingDir: d.stagingDir });
        expect(report.rewrapped).toBeGreaterThan(0);
        expect((await fs.readFile(file)).equals(bytes)).toBe(true);
        expect(answers(await readIndexSealed(sealed, keys, { stagingDir: d.stagingDir }), queries)).toEqual(before);

        // The vectors in clear are exactly what writeIndex would have put on disk...
        // (The index's own float32 copies: hnswlib normalizes cosine vectors; deleted labels are still in the file.)
        const needles: [string, Buffer][] = vectors.map((v, i) => [
          `vector ${i}`,
          f32(i % 17 === 0 ? v.slice(2, 6) : index.getPoint(i * 3).slice(2, 6)),
        ]);
        const plainFile = join(d.root, 'plain.index');
        index.writeIndexSync(plainFile);
        expect((await findPlaintext([plainFile], needles.slice(0, 5))).length).toBeGreaterThan(0);
        await fs.rm(plainFile);
        // ...and none of them is in the sealed directory or the staging space.
        expect(await findPlaintext([sealed, d.stagingDir], needles)).toEqual([]);
      },
    );
  }

  it('a new generation retires the old file; an older, foreign, changed or missing file is a typed error', async () => {
    const d = storeDirs();
    const keys = { provider: 'local' as const, keyDir: d.keyDir };
    const opts = { space: 'l2' as const, stagingDir: d.stagingDir };
    const sealed = join(d.root, 'idx');
    const a = build('l2', 200, 8, 1);
    await writeIndexSealed(a.index, sealed, keys, opts);
    const gen1 = await fs.readFile(join(sealed, 'index-1.vseg'));
    const b = build('l2', 300, 8, 2);
    const info = await writeIndexSealed(b.index, sealed, keys, opts);
    expect(info.generation).toBe(2);
    expect((await fs.readdir(sealed)).filter((f) => f.endsWith('.vseg'))).toEqual(['index-2.vseg']);
    expect(answers(await readIndexSealed(sealed, keys, opts), b.queries)).toEqual(answers(b.index, b.queries));
    expect(await sealedIndexInfo(sealed, keys, opts)).toMatchObject({ generation: 2, count: 300 });

    const file = join(sealed, 'index-2.vseg');
    const gen2 = await fs.readFile(file);
    // Rolled back to the older sealed file under the current name.
    await fs.writeFile(file, gen1);
    await expect(readIndexSealed(sealed, keys, opts)).rejects.toMatchObject({ code: 'VS_CORRUPT_DATA' });
    // A flipped byte in a page.
    const flipped = Buffer.from(gen2);
    flipped[flipped.length - 100]! ^= 1;
    await fs.writeFile(file, flipped);
    await expect(readIndexSealed(sealed, keys, opts)).rejects.toMatchObject({ code: 'VS_CORRUPT_DATA', file });
    // Another sealed index's file (same KEK, other directory).
    const other = join(d.root, 'other');
    await writeIndexSealed(a.index, other, keys, opts);
    await writeIndexSealed(b.index, other, keys, opts);
    await fs.writeFile(file, await fs.readFile(join(other, 'index-2.vseg')));
    await expect(readIndexSealed(sealed, keys, opts)).rejects.toMatchObject({ code: 'VS_CORRUPT_DATA' });
    // Missing.
    await fs.rm(file);
    await expect(readIndexSealed(sealed, keys, opts)).rejects.toMatchObject({ code: 'VS_CORRUPT_DATA', reason: 'missing' });
    // Put back: reads again.
    await fs.writeFile(file, gen2);
    expect(answers(await readIndexSealed(sealed, keys, opts), b.queries)).toEqual(answers(b.index, b.queries));

    // Bad arguments.
    const plain = join(d.root, 'plain.index');
    b.index.writeIndexSync(plain);
    await expect(writeIndexSealed(b.index, plain, keys, opts)).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(writeIndexSealed(b.index, join(d.root, 'x'), keys, { space: 'hamming' as never })).rejects.toMatchObject({
      code: 'VS_INVALID_ARGUMENT',
    });
    await expect(writeIndexSealed(new hnswlib.HierarchicalNSW('l2', 4), join(d.root, 'y'), keys, opts)).rejects.toMatchObject({
      code: 'VS_INVALID_ARGUMENT',
    });
    await expect(readIndexSealed(join(d.root, 'nothing'), keys, opts)).rejects.toMatchObject({ code: 'VS_NOT_FOUND' });
  });
});
