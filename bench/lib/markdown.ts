import { renderIngest1m } from './ingest-1m.js';
import { SUITE_CONTENDERS, rowRatios } from './pages-suite.js';
import { median, ratio } from './stats.js';
import type { Summary } from './summary.js';

const LABELS: Record<string, string> = {
  openssl: 'openssl speed',
  native: 'vectorseal fast path (1 thread)',
  'native-batch': 'fast path, 4 MiB batches (1 thread)',
  'native-pool': 'vectorseal fast path (all cores)',
  node: 'vectorseal node:crypto path',
  cipheriv: 'createCipheriv loop',
  'aws-esdk': 'AWS Encryption SDK',
};

/** A contender's display name (tables and the chart). */
export function contenderLabel(name: string): string {
  return LABELS[name] ?? name;
}

const n0 = (x: number | undefined): string => (x === undefined ? 'n/a' : x.toFixed(0));
const x2 = (x: number | undefined): string => (x === undefined ? 'n/a' : `${x.toFixed(2)}×`);
const mark = (met: boolean | undefined): string => (met === undefined ? 'not measured' : met ? 'met' : 'missed');

/** bench/results/latest.md: the tables a reader (and the README) needs. */
export function renderMarkdown(s: Summary): string {
  const m = s.machine;
  const out: string[] = [
    '# vectorseal benchmark results',
    '',
    `${s.quick ? 'Quick run' : 'Full run'} of \`${s.command}\` on ${s.date}.`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, ${m.platform}; Node ${m.node} (OpenSSL ${m.nodeOpenssl}); ${m.openssl}. ` +
      `Load average ${m.loadAverageAtStart.join(' ')} at the start and ${m.loadAverage.join(' ')} at the end: ` +
      (Math.max(...m.loadAverageAtStart, ...m.loadAverage) > m.cores * 0.75
        ? 'the machine was busy with other work, so absolute figures are low and noisy; ' + 'the ratios were measured side by side.'
        : 'the machine was mostly idle.'),
    '',
    '## Goals',
    '',
    '| goal | measured | |',
    '|---|---|---|',
    ...s.goals.map((g) => `| ${g.goal} | ${g.measured} | ${mark(g.met)} |`),
  ];
  const pages = s.details.pages;
  if (pages) {
    out.push(
      '',
      '## Sealing and opening pages (MB/s of plaintext)',
      '',
      `Best of ${pages.rounds} interleaved round(s) of ${pages.seconds} s per cell, wall clock; ` +
        `"all cores" uses ${pages.poolThreads} threads. The AWS Encryption SDK encrypts a 1 MiB segment in ` +
        'frames of the page size (committing suite, no signatures, ' +
        'raw AES keyring). ![throughput by page size](throughput.svg)',
      '',
      `| page | op | ${SUITE_CONTENDERS.map(contenderLabel).join(' | ')} | fast path / openssl | per CPU-s ` +
        '| all cores / 1 thread | / createCipheriv | / AWS SDK |',
      `|---|---|${SUITE_CONTENDERS.map(() => '---:').join('|')}|---:|---:|---:|---:|---:|`,
      ...pages.rows.map((r) => {
        const q = rowRatios(r);
        return (
          `| ${r.pageSize / 1024} KiB | ${r.op} | ${SUITE_CONTENDERS.map((c) => n0(r.mbps[c])).join(' | ')} | ` +
          `${x2(q['nativeToOpenssl'])} | ${x2(q['nativeToOpensslCpu'])} | ${x2(q['allCoresScaling'])} | ` +
          `${x2(q['nativeToCipheriv'])} | ${x2(q['nativeToAwsEsdk'])} |`
        );
      }),
    );
  }
  const big = s.details.sealLarge;
  if (big) {
    out.push(
      '',
      `## Sealing 64 MiB (${big.bytes / 1024 / 1024} MiB of ${big.pageSize / 1024} KiB pages, one thread, MB/s)`,
      '',
      'One pass over a buffer far larger than the caches per contender and round, ' +
        `${big.rounds} paired rounds of the engine and createCipheriv in rotating order; their ratio is the median of the ` +
        `per-round ratios. createCipheriv keeps node:crypto's own output buffers (no concatenation). openssl speed runs ` +
        `on its cache-resident 16 KiB buffer, before and after the rounds (a child process between passes would make ` +
        `the next pass pay copy-on-write faults): the hardware limit, not a pass over memory. Engine: ${big.engine}.`,
      '',
      '| op | vectorseal page engine | createCipheriv, no extra copy | openssl speed | engine / createCipheriv | engine / openssl |',
      '|---|---:|---:|---:|---:|---:|',
      `| seal | ${n0(median(big.seal.engine))} | ${n0(median(big.seal.cipheriv))} | ` +
        `${n0(big.seal.openssl.length > 0 ? median(big.seal.openssl) : undefined)} | ` +
        `${x2(big.ratios.sealToCipheriv)} | ${x2(big.ratios.sealToOpenssl)} |`,
      `| open | ${n0(median(big.open.engine))} | ${n0(median(big.open.cipheriv))} | ` +
        `${n0(big.open.openssl.length > 0 ? median(big.open.openssl) : undefined)} | ` +
        `${x2(big.ratios.openToCipheriv)} | ${x2(big.ratios.openToOpenssl)} |`,
    );
  }
  const sc = s.details.scale;
  if (sc) {
    // The flush took the memtable's graph grown during ingest (it only caught up), or built one.
    const grown = sc.flush.steps?.grownGraph === true;
    const mb = (b: number | undefined): string => (b === undefined ? 'n/a' : `${(b / 1e6).toFixed(1)} MB`);
    const sv = sc.search.sqliteVec;
    out.push(
      '',
      `## The store at scale: ${sc.records.toLocaleString('en-US')} × ${sc.dim} clustered float32 vectors with metadata`,
      '',
      `HNSW M=${sc.M}, efConstruction=${sc.efConstruction}, ef=${sc.ef}, ` +
        `k=${sc.k} on both HNSW sides. Lean plaintext: hnswlib-node writeIndex plus one msgpackr file of ids ` +
        'and metadata, each fsynced (the index already holds the vectors), each flush round into a new directory ' +
        '(none removed until all ran, as vectorseal writes new files). SQLCipher + sqlite-vec: ' +
        'better-sqlite3-multiple-ciphers (raw key) with the vec0 extension, ' +
        'records and vectors inserted in one transaction; its k-NN is an exact scan. Recall@10 is against ' +
        'exact brute force.',
      '',
      '| step | vectorseal (encrypted) | lean plaintext | ratio | SQLCipher + sqlite-vec |',
      '|---|---:|---:|---:|---:|',
      `| ingest, durable and searchable (s) | ${sc.ingest.vectorsealSeconds} (upserts: WAL` +
        `${grown ? '; the graph grows in the background' : sc.flush.steps ? '; the graph is built in the flush' : ' + graph'}) ` +
        `| ${sc.ingest.leanBuildSeconds} (graph build) | ${x2(ratio(sc.ingest.vectorsealSeconds, sc.ingest.leanBuildSeconds))} ` +
        `| ${sc.ingest.sqliteVecSeconds ?? 'n/a'} (bulk insert, no graph) |`,
      ...(sc.ingest.vectorsealIndexedSeconds === undefined
        ? []
        : [
            `| ingest, durable, searchable and indexed (s) | ${sc.ingest.vectorsealIndexedSeconds} (until the ` +
              `background graph caught up) | ${sc.ingest.leanBuildSeconds} | ` +
              `${x2(ratio(sc.ingest.vectorsealIndexedSeconds, sc.ingest.leanBuildSeconds))} | |`,
          ]),
      `| flush (s) | ${sc.flush.vectorsealSeconds}${grown ? ' (catch-up + writes)' : sc.flush.steps ? ' (graph build + writes)' : ''} ` +
        `| ${sc.flush.leanMedianSeconds} (median of ${sc.flush.leanSeconds.join(', ')}) | ${x2(sc.flush.ratio)} | (in the insert) |`,
      ...(sc.flush.steps
        ? [
            `| flush: ${grown ? 'graph catch-up' : 'graph build'} (s) | ${sc.flush.steps.graphSeconds} | (in the ingest) | | |`,
            `| flush: segment writes, durable (s) | ${sc.flush.steps.writeSeconds} (graph load beside them: ` +
              `${sc.flush.steps.loadSeconds}) | ${sc.flush.leanMedianSeconds} | ${x2(sc.flush.writeRatio)} | |`,
          ]
        : []),
      ...(sc.flush.toIndexed
        ? [
            `| ingest + flush, durable and indexed (s) | ${sc.flush.toIndexed.vectorsealSeconds} ` +
              `| ${sc.flush.toIndexed.leanSeconds} | ${x2(sc.flush.toIndexed.ratio)} | |`,
          ]
        : []),
      `| bytes on disk | ${mb(sc.bytes.vectorseal)} | ${mb(sc.bytes.lean)} | | ${mb(sc.bytes.sqliteVec)} |`,
      `| reopen (s, median) | ${sc.reopen.vectorsealMedianSeconds} (` +
        `${sc.reopen.vectorsealSeconds.join(', ')}) | ${sc.reopen.leanMedianSeconds} (` +
        `${sc.reopen.leanSeconds.join(', ')}) | ${x2(sc.reopen.ratio)} | ` +
        `${sc.reopen.sqliteVecSeconds ?? 'n/a'} (open, key, extension) |`,
      `| memory after reopen (RSS growth) | ${sc.memory.vectorsealReopenMB} MB | ${sc.memory.leanReopenMB} MB | | |`,
      `| search p50 (ms) | ${sc.search.vectorseal.p50Ms} | ${sc.search.lean.p50Ms} | ` +
        `${sc.search.p50Ratio ?? 'n/a'}× | ${sv ? sv.p50Ms : 'n/a'} |`,
      `| search p99 (ms) | ${sc.search.vectorseal.p99Ms} | ${sc.search.lean.p99Ms} | ` +
        `${sc.search.p99Ratio ?? 'n/a'}× | ${sv ? sv.p99Ms : 'n/a'} |`,
      `| recall@10 | ${sc.search.vectorseal.recall} | ${sc.search.lean.recall} | | ${sv ? sv.recall : 'n/a'} |`,
      '',
      `Search: ${sc.search.queries} queries alternating side by side` +
        `${sv ? `; sqlite-vec ${sv.queries} queries` : ''}. Memory: ${sc.memory.note}; ` +
        `process peak ${sc.memory.processPeakMB} MB.`,
      '',
      '### Filtered search (p50 ms, recall@10)',
      '',
      '| filter | vectorseal | vectorseal unfiltered, same queries and loop | ×unfiltered | ' +
        'lean plaintext (hnswlib filter callback) | SQLCipher + sqlite-vec (vec0 metadata column) |',
      '|---|---:|---:|---:|---:|---:|',
      ...sc.filtered.map(
        (f) =>
          `| ${f.label} | ${f.vectorseal.p50Ms} ms, ${f.vectorseal.recall} | ${f.unfilteredP50Ms} ms | ${x2(f.toUnfiltered)} | ` +
          `${f.lean.p50Ms} ms, ${f.lean.recall} | ` +
          `${f.sqliteVec ? `${f.sqliteVec.p50Ms} ms, ${f.sqliteVec.recall}` : 'n/a'} |`,
      ),
    );
  }
  const e = s.details.endToEnd;
  if (e) {
    out.push(
      '',
      '## Former baseline (vectors written twice; flatters vectorseal): ' +
        `${e.records.toLocaleString('en-US')} × ${e.dim} float32 vectors with metadata`,
      '',
      `HNSW M=${e.M}, efConstruction=${e.efConstruction} on both sides. Timed: ` +
        `${e.timed}. Graph build (not timed in the ratios): vectorseal ${e.build.vectorsealSeconds} s ` +
        `(upserts, WAL included), plaintext ${e.build.plaintextSeconds} s.`,
      '',
      '| step | vectorseal (encrypted) | plaintext hnswlib + msgpackr | ratio | SQLite cipher (SQLCipher scheme) |',
      '|---|---:|---:|---:|---:|',
      `| flush (s) | ${e.flush.vectorsealSeconds} | ${e.flush.plaintextMedianSeconds} (median of ` +
        `${e.flush.plaintextSeconds.join(', ')}) | ${x2(e.flush.ratio)} | ` +
        `${e.sqlcipher ? `${e.sqlcipher.bestSeconds} (bulk insert, one transaction)` : 'n/a'} |`,
      `| flush, MB/s of vectors | ${e.flush.vectorsealVectorMBps} | ${e.flush.plaintextVectorMBps} | | ` +
        `${e.sqlcipher ? e.sqlcipher.vectorMBps : 'n/a'} (vectorseal flush: ` +
        `${e.sqlcipher?.flushRatio ?? 'n/a'}× this throughput) |`,
      `| bytes on disk | ${(e.flush.vectorsealFileBytes / 1e6).toFixed(1)} MB | ` +
        `${(e.flush.plaintextFileBytes / 1e6).toFixed(1)} MB | | ` +
        `${e.sqlcipher ? `${(e.sqlcipher.fileBytes / 1e6).toFixed(1)} MB` : 'n/a'} |`,
      `| reopen (s, median) | ${e.reopen.vectorsealMedianSeconds} (${e.reopen.vectorsealSeconds.join(', ')}` +
        `) | ${e.reopen.plaintextMedianSeconds} (${e.reopen.plaintextSeconds.join(', ')}) ` +
        `| ${x2(e.reopen.ratio)} | |`,
      `| search p50 (ms) | ${e.search.vectorseal.p50Ms} | ${e.search.plaintext.p50Ms} | ${e.search.p50Ratio ?? 'n/a'}× | |`,
      `| search p99 (ms) | ${e.search.vectorseal.p99Ms} | ${e.search.plaintext.p99Ms} | ${e.search.p99Ratio ?? 'n/a'}× | |`,
      '',
      `Search: ${e.search.queries} queries, k=${e.search.k}, ef=${e.search.ef}, ` +
        `alternating query by query; ${e.search.identicalResults}/${e.search.queries} returned identical ids on both sides` +
        // Results written before the field existed render without it.
        (e.search.sharedIds === undefined
          ? '.'
          : `, and ${e.search.sharedIds} of the plaintext side's ids came back from vectorseal too ` +
            '(its graph is built on two threads, so a near tie can fall the other way).'),
    );
  }
  const r = s.details.rotation;
  if (r) {
    out.push(
      '',
      '## KEK rotation (local provider)',
      '',
      '| store | rotation (s, median) | rounds | data bytes rewritten |',
      '|---|---:|---|---:|',
      ...r.collections.map(
        (c) =>
          `| ${c.collections.toLocaleString('en-US')} collections, ` +
          `no data | ${c.medianSeconds} | ${c.seconds.join(', ')} | 0 (no data files) |`,
      ),
      ...r.data.map(
        (d) =>
          `| 1 collection, ${(d.dataBytes / 1e6).toFixed(0)} MB in ${d.dataFiles} files | ${d.medianSeconds} | ` +
          `${d.seconds.join(', ')} | ${d.dataBytesRewritten} |`,
      ),
      '',
      '',
      '| collections | created through createCollections (s) | batch | one createCollection call each | keyring after rotation (bytes) |',
      '|---:|---:|---:|---|---:|',
      ...r.collections.map(
        (c) =>
          `| ${c.collections.toLocaleString('en-US')} | ${c.createSeconds} | ${c.batch} | ` +
          `${c.oneByOne ? `${c.oneByOne.collections} in ${c.oneByOne.seconds} s` : '-'} | ${c.keyringBytes} |`,
      ),
      '',
      'Data bytes rewritten: every file but the keyring (which rotation rewrites) ' +
        'and the audit trail (which records it) fingerprinted (SHA-256, mtime, size) ' +
        'before and after each rotation.',
    );
  }
  if (s.kmsLoad) {
    const k = s.kmsLoad;
    out.push(
      '',
      '## Key service load (bench/kms-load.ts)',
      '',
      `${String(k['clients'])} SDK clients, ${String(k['seconds'])} s: ` +
        `${String(k['requestsPerSecond'])} requests/s (GenerateDataKey + Decrypt), ` +
        `${String(k['errors'])} errors (${String(k['date'])}).`,
    );
  }
  if (s.details.ingest1m) out.push(...renderIngest1m(s.details.ingest1m));
  return `${out.join('\n')}\n`;
}
