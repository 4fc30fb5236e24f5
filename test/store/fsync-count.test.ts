import { describe, expect, it } from 'vitest';
import { graphBackend } from '../../src/hnsw/index.js';
import { type DurableFile, type FileLayer, realFileLayer, useFileLayer } from '../../src/util/file-layer.js';
import { openTestStore, storeDirs } from '../helpers/store.js';

/*
 * The fsyncs one flush costs and the files one open writes, counted through
 * the file layer (every durable change goes through it). The durability
 * promise needs, per flush: each new segment file's data, the segment
 * directory's entries, the store state naming the manifest (pending, then
 * committed), the manifest, and the new WAL file; an open needs none.
 */

interface Counts {
  syncs: string[];
  writes: string[];
}

function counting(c: Counts): FileLayer {
  const wrap = (f: DurableFile): DurableFile => ({
    path: f.path,
    write: (d) => (c.writes.push(f.path), f.write(d)),
    pwrite: (d, p) => (c.writes.push(f.path), f.pwrite(d, p)),
    writeSync: (d) => (c.writes.push(f.path), f.writeSync(d)),
    truncate: (n) => (c.writes.push(f.path), f.truncate(n)),
    fsync: () => (c.syncs.push(`fsync ${f.path}`), f.fsync()),
    fdatasync: () => (c.syncs.push(`fdatasync ${f.path}`), f.fdatasync()),
    fsyncSync: () => (c.syncs.push(`fsync ${f.path}`), f.fsyncSync()),
    close: () => f.close(),
    closeSync: () => f.closeSync(),
  });
  return {
    ...realFileLayer,
    open: async (p, m, perm) => (c.writes.push(`open ${m} ${p}`), wrap(await realFileLayer.open(p, m, perm))),
    openSync: (p, m, perm) => (c.writes.push(`open ${m} ${p}`), wrap(realFileLayer.openSync(p, m, perm))),
    rename: (a, b) => (c.writes.push(`rename ${a} ${b}`), realFileLayer.rename(a, b)),
    link: (a, b) => (c.writes.push(`link ${a} ${b}`), realFileLayer.link(a, b)),
    unlink: (p) => (c.writes.push(`unlink ${p}`), realFileLayer.unlink(p)),
    mkdir: (p, perm) => (c.writes.push(`mkdir ${p}`), realFileLayer.mkdir(p, perm)),
    fsyncDir: (d) => (c.syncs.push(`fsyncDir ${d}`), realFileLayer.fsyncDir(d)),
  };
}

describe('fsyncs and writes of a flush and an open', () => {
  it('a flush makes 8 fsyncs, each one the promise needs; an open writes, renames, removes and fsyncs nothing (native)', async () => {
    const d = storeDirs();
    let store = await openTestStore(d, { stagingDir: d.stagingDir });
    const col = await store.createCollection('c', { dim: 16 });
    const records = Array.from({ length: 500 }, (_, i) => ({ id: `r${i}`, vector: Array.from({ length: 16 }, (_, j) => Math.sin(i + j)) }));
    await col.upsert(records.slice(0, 250));
    await col.flush();
    await col.upsert(records.slice(250));
    const flush: Counts = { syncs: [], writes: [] };
    const restore = useFileLayer(counting(flush));
    try {
      await col.flush();
    } finally {
      restore();
    }
    await store.close({ flush: false });
    store = await openTestStore(d, { stagingDir: d.stagingDir });
    const open: Counts = { syncs: [], writes: [] };
    const restore2 = useFileLayer(counting(open));
    try {
      await store.collection('c').load();
      expect(store.collection('c').count).toBe(500);
      const hits = store.collection('c').search(records[7]!.vector, 1);
      expect(hits[0]?.id).toBe('r7');
    } finally {
      restore2();
    }
    const cdir = `./collections/${col.info.id}`;
    const rel = (x: string) =>
      x
        .replaceAll(d.dir, '.')
        .replaceAll(cdir, 'C')
        .replace(/\.STATE\.[0-9a-f]+\.tmp/, '.STATE.tmp');
    expect(flush.syncs.map(rel)).toEqual([
      // The group's three segment files, then their directory (collection-files.ts writeGroup).
      'fsync C/seg/.000000000002.vectors.vseg.tmp',
      'fsync C/seg/.000000000002.metadata.vseg.tmp',
      'fsync C/seg/.000000000002.index.vseg.tmp',
      'fsyncDir C/seg',
      // The manifest, the state naming it, and the rename (collection-files.ts commit).
      'fsync C/.MANIFEST.tmp',
      'fsync ./.STATE.tmp',
      'fsyncDir .',
      'fsyncDir C',
    ]);
    // No graph went through a staging file on the native path.
    if (graphBackend() === 'native') expect(flush.writes.filter((w) => w.includes(d.stagingDir))).toEqual([]);
    // The hnswlib-node fallback stages each graph in the RAM-backed staging directory (and nothing else).
    const openWrites = graphBackend() === 'native' ? open.writes : open.writes.filter((w) => !w.includes(d.stagingDir));
    expect(openWrites.map(rel)).toEqual([]);
    expect(open.syncs.map(rel)).toEqual([]);
  });
});
