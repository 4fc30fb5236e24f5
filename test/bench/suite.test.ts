import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EsdkContender } from '../../bench/lib/aws-esdk.js';
import { renderChart } from '../../bench/lib/chart.js';
import { runEndToEnd, type EndToEndResult } from '../../bench/lib/end-to-end.js';
import { diffSnapshots, snapshotFiles } from '../../bench/lib/file-snapshot.js';
import { describeMachine } from '../../bench/lib/machine.js';
import { renderMarkdown } from '../../bench/lib/markdown.js';
import { runPageSuite, type PageSuiteResult } from '../../bench/lib/pages-suite.js';
import { loadAwsEsdk, loadSqliteCipher, peerInstalled } from '../../bench/lib/peers.js';
import { silentLog } from '../../bench/lib/progress.js';
import { rotateCollections, rotateWithData, type CollectionsRotation, type DataRotation } from '../../bench/lib/rotation.js';
import { summarize } from '../../bench/lib/summary.js';

/**
 * The benchmark's code paths on tiny sizes: each contender runs, its output
 * is verified, and the summary has every field the issue asks for. No timing
 * is asserted. The AWS SDK and SQLite cipher parts need the peers in
 * bench/node_modules (`npm run bench` installs them) and are skipped without.
 */
const hasEsdk = peerInstalled('@aws-crypto/client-node');
const hasSqlite = peerInstalled('better-sqlite3-multiple-ciphers');
if (!hasEsdk || !hasSqlite)
  console.warn('test/bench: benchmark peers not installed in bench/ (run `npm run bench` once); their contenders are skipped');

const work = mkdtempSync(join(tmpdir(), 'vs-bench-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let pages: PageSuiteResult | undefined;
let endToEnd: EndToEndResult | undefined;
let rotation: { collections: CollectionsRotation[]; data: DataRotation[] } | undefined;

describe('benchmark suite on tiny sizes', () => {
  it('pages: every contender verified and measured at 16 KiB', { timeout: 120_000 }, async () => {
    pages = await runPageSuite({
      sizes: [16384],
      rounds: 1,
      seconds: 1,
      quick: true,
      ...(hasEsdk ? { esdk: loadAwsEsdk() } : {}),
      log: silentLog,
    });
    const seal = pages.rows.find((r) => r.op === 'seal');
    expect(seal?.mbps.native).toBeGreaterThan(0);
    expect(seal?.mbps.node).toBeGreaterThan(0);
    expect(seal?.mbps.cipheriv).toBeGreaterThan(0);
    if (hasEsdk) expect(seal?.mbps['aws-esdk']).toBeGreaterThan(0);
  });

  it.skipIf(!hasEsdk)('AWS Encryption SDK: uses the committing suite without signatures, in frames of the page size', async () => {
    const esdk = new EsdkContender(loadAwsEsdk());
    const sealed = await esdk.verify(4096);
    // 1 MiB in 256 frames of 4 KiB, each with its own 16-byte tag (and IV): well over 1 MiB + 256 × 16.
    expect(sealed.length).toBeGreaterThan(1024 * 1024 + 256 * 16);
  });

  it('end to end: flush, reopen and search verified on both sides', { timeout: 120_000 }, async () => {
    endToEnd = await runEndToEnd({
      count: 300,
      dim: 16,
      M: 8,
      efConstruction: 16,
      ef: 16,
      k: 5,
      queries: 20,
      reopenRounds: 1,
      plaintextFlushes: 2,
      sqlcipherRuns: 1,
      ...(hasSqlite ? { sqlite: loadSqliteCipher() } : {}),
      workDir: join(work, 'e2e'),
      log: silentLog,
    });
    expect(endToEnd.records).toBe(300);
    expect(endToEnd.flush.plaintextSeconds).toHaveLength(2);
    expect(endToEnd.flush.vectorsealFileBytes).toBeGreaterThan(300 * 16 * 4);
    // The same parameters on both sides; vectorseal's graph is built on two
    // threads, so a busy machine can reorder its insertions and tip a near
    // tie, but the answers must be nearly all the same ids.
    expect(endToEnd.search.sharedIds).toBeGreaterThanOrEqual(0.9);
    expect(endToEnd.search.identicalResults).toBeGreaterThanOrEqual(10);
    if (hasSqlite) expect(endToEnd.sqlcipher?.fileBytes).toBeGreaterThan(0);
  });

  it('rotation: every DEK rewrapped and still unwrapping, no data byte rewritten', { timeout: 120_000 }, async () => {
    const collections = [await rotateCollections(work, 20, 1, silentLog)];
    const data = [await rotateWithData(work, 1e6, 1, silentLog)];
    // The 20 collections' DEKs, and the store's own audit and state keys.
    expect(collections[0]?.rewrapped).toBe(22);
    expect(data[0]?.dataBytesRewritten).toBe(0);
    expect(data[0]?.dataBytes).toBeGreaterThan(1e6);
    rotation = { collections, data };
  });

  it('the fingerprint catches a rewritten file', async () => {
    const dir = join(work, 'fp');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    writeFileSync(join(dir, 'a'), 'same bytes');
    const before = await snapshotFiles(dir);
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(join(dir, 'a'), 'same bytes');
    const diff = diffSnapshots(before, await snapshotFiles(dir));
    expect(diff.changed).toEqual(['a']);
    expect(diff.bytesRewritten).toBe(10);
  });

  it('summary, Markdown and chart carry every field the issue names', async () => {
    expect(pages && endToEnd && rotation).toBeTruthy();
    const machine = await describeMachine();
    const summary = summarize({
      date: new Date().toISOString(),
      quick: true,
      command: 'test',
      seconds: 1,
      machine: { ...machine, loadAverageAtStart: machine.loadAverage },
      ...(pages ? { pages } : {}),
      ...(endToEnd ? { endToEnd } : {}),
      ...(rotation ? { rotation } : {}),
    });
    const json = JSON.parse(JSON.stringify(summary)) as Record<string, Record<string, unknown>>;
    for (const k of ['pageSize', 'opensslMBps', 'sealMBps', 'openMBps', 'ratioToOpenssl', 'allCoresScaling', 'nodeCryptoMBps'])
      expect(json['hotPath']).toHaveProperty(k);
    expect(json['hotPath']?.['pageSize']).toBe(16384);
    if (hasEsdk) expect(json['hotPath']).toHaveProperty('awsEsdkMBps.seal');
    for (const k of ['flushRatio', 'openRatio', 'searchP50Ratio']) expect(json['endToEnd']).toHaveProperty(k);
    if (hasSqlite) expect(json['endToEnd']).toHaveProperty('sqlcipherFlushRatio');
    for (const k of ['collections', 'seconds', 'dataBytesRewritten']) expect(json['rotation']).toHaveProperty(k);
    expect(json['rotation']?.['dataBytesRewritten']).toBe(0);
    expect(json['machine']?.['cpu']).toBeTruthy();
    const md = renderMarkdown(summary);
    expect(md).toContain('| goal | measured |');
    expect(md).toContain('throughput.svg');
    const svg = renderChart(pages as PageSuiteResult, 'test');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('seal (encrypt)');
    expect(svg).toContain('open (decrypt)');
  });
});
