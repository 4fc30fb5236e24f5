import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createFileAtomic, removeFile, writeFileAtomic } from '../../src/util/durable.js';
import { FaultFileLayer, PowerCutError } from '../../src/util/fault-file-layer.js';
import { useFileLayer } from '../../src/util/file-layer.js';
import { tempDir } from '../helpers/tmp.js';

/** Runs `fn` with `layer` as the file layer. */
async function under<T>(layer: FaultFileLayer, fn: () => Promise<T>): Promise<T> {
  const restore = useFileLayer(layer);
  try {
    return await fn();
  } finally {
    restore();
  }
}

describe('fault-injecting file layer (POSIX, strictly)', () => {
  it('drops data written but not fsynced', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'f'), 'old');
    const layer = new FaultFileLayer({ root, crash: 'drop' });
    await under(layer, async () => {
      const f = await layer.open(join(root, 'f'), 'append');
      await f.write(Buffer.from('-synced'));
      await f.fsync();
      await f.write(Buffer.from('-lost'));
      await f.close();
    });
    expect(readFileSync(join(root, 'f'), 'utf8')).toBe('old-synced-lost');
    layer.materialize();
    expect(readFileSync(join(root, 'f'), 'utf8')).toBe('old-synced');
  });

  it('tears the last unsynced write at a sector boundary', async () => {
    const root = tempDir();
    const layer = new FaultFileLayer({ root, crash: 'tear' });
    const data = Buffer.alloc(2000, 7);
    await under(layer, async () => {
      const f = await layer.open(join(root, 'f'), 'create');
      await f.fsync();
      await layer.fsyncDir(root);
      await f.write(Buffer.alloc(100, 1));
      await f.write(data);
      await f.close();
    });
    layer.materialize();
    const got = readFileSync(join(root, 'f'));
    // The first write stays whole; the second (bytes 100..2100) keeps the sectors before its last boundary (2048).
    expect(got.length).toBe(2048);
    expect(got.subarray(0, 100).every((b) => b === 1)).toBe(true);
    expect(got.subarray(100).every((b) => b === 7)).toBe(true);
  });

  it('undoes a rename, a create and an unlink that no directory fsync made durable', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'target'), 'v1');
    writeFileSync(join(root, 'doomed'), 'still here');
    const layer = new FaultFileLayer({ root, crash: 'drop' });
    await under(layer, async () => {
      const f = await layer.open(join(root, '.tmp'), 'create');
      await f.write(Buffer.from('v2'));
      await f.fsync();
      await f.close();
      await layer.rename(join(root, '.tmp'), join(root, 'target'));
      const g = await layer.open(join(root, 'new'), 'create');
      await g.write(Buffer.from('x'));
      await g.fsync();
      await g.close();
      await removeFile(join(root, 'doomed'));
      await layer.mkdir(join(root, 'sub'));
    });
    expect(readFileSync(join(root, 'target'), 'utf8')).toBe('v2');
    layer.materialize();
    expect(readdirSync(root).sort()).toEqual(['doomed', 'target']);
    expect(readFileSync(join(root, 'target'), 'utf8')).toBe('v1');
    expect(readFileSync(join(root, 'doomed'), 'utf8')).toBe('still here');
  });

  it('keeps what a directory fsync made durable, and a new directory only with its parent fsynced', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'a'));
    const layer = new FaultFileLayer({ root, crash: 'drop' });
    await under(layer, async () => {
      await writeFileAtomic(join(root, 'a', 'kept'), Buffer.from('k'));
      await layer.mkdir(join(root, 'a', 'orphan'));
      await writeFileAtomic(join(root, 'a', 'orphan', 'x'), Buffer.from('lost with its directory'));
      await createFileAtomic(join(root, 'linked'), Buffer.from('l'));
    });
    layer.materialize();
    expect(readdirSync(join(root, 'a'))).toEqual(['kept']);
    expect(readFileSync(join(root, 'a', 'kept'), 'utf8')).toBe('k');
    expect(readFileSync(join(root, 'linked'), 'utf8')).toBe('l');
  });

  it('cuts the power at the n-th durable operation: it and every later one throw', async () => {
    const root = tempDir();
    const counter = new FaultFileLayer({ root, trace: true });
    await under(counter, () => writeFileAtomic(join(root, 'f'), Buffer.from('x')));
    expect(counter.trace.map((l) => l.split(' ')[0])).toEqual(['open(create)', 'write', 'fsync', 'rename', 'fsync']);
    expect(counter.ops).toBe(5);
    for (let cutAt = 1; cutAt <= 5; cutAt++) {
      const dir = join(root, `cut${cutAt}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'f'), 'old');
      const layer = new FaultFileLayer({ root: dir, cutAt, seed: cutAt });
      await expect(under(layer, () => writeFileAtomic(join(dir, 'f'), Buffer.from('new')))).rejects.toBeInstanceOf(PowerCutError);
      expect(layer.cut).toBe(true);
      await expect(under(layer, () => writeFileAtomic(join(dir, 'g'), Buffer.from('late')))).rejects.toBeInstanceOf(PowerCutError);
      await layer.settle();
      layer.materialize();
      // Atomic replace: the old or the new contents, never a mix, never missing.
      expect(['old', 'new']).toContain(readFileSync(join(dir, 'f'), 'utf8'));
      expect(readdirSync(dir).filter((n) => n === 'g')).toEqual([]);
    }
  });
});
