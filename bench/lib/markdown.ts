import { SUITE_CONTENDERS, rowRatios } from './pages-suite.js';
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
      `${Math.max(...m.loadAverageAtStart, ...m.loadAverage) > m.cores * 0.75 ? 'the machine was busy with other work, so absolute figures are low and noisy; the ratios were measured side by side.' : 'the machine was mostly idle.'}`,
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
      `Best of ${pages.rounds} interleaved round(s) of ${pages.seconds} s per cell, wall clock; "all cores" uses ${pages.poolThreads} threads. The AWS Encryption SDK encrypts a 1 MiB segment in frames of the page size (committing suite, no signatures, raw AES keyring). ![throughput by page size](throughput.svg)`,
      '',
      `| page | op | ${SUITE_CONTENDERS.map(contenderLabel).join(' | ')} | fast path / openssl | per CPU-s | all cores / 1 thread | / createCipheriv | / AWS SDK |`,
      `|---|---|${SUITE_CONTENDERS.map(() => '---:').join('|')}|---:|---:|---:|---:|---:|`,
      ...pages.rows.map((r) => {
        const q = rowRatios(r);
        return `| ${r.pageSize / 1024} KiB | ${r.op} | ${SUITE_CONTENDERS.map((c) => n0(r.mbps[c])).join(' | ')} | ${x2(q['nativeToOpenssl'])} | ${x2(q['nativeToOpensslCpu'])} | ${x2(q['allCoresScaling'])} | ${x2(q['nativeToCipheriv'])} | ${x2(q['nativeToAwsEsdk'])} |`;
      }),
    );
  }
  const e = s.details.endToEnd;
  if (e) {
    out.push(
      '',
      `## End to end: ${e.records.toLocaleString('en-US')} × ${e.dim} float32 vectors with metadata`,
      '',
      `HNSW M=${e.M}, efConstruction=${e.efConstruction} on both sides. Timed: ${e.timed}. Graph build (not timed in the ratios): vectorseal ${e.build.vectorsealSeconds} s (upserts, WAL included), plaintext ${e.build.plaintextSeconds} s.`,
      '',
      '| step | vectorseal (encrypted) | plaintext hnswlib + msgpackr | ratio | SQLite cipher (SQLCipher scheme) |',
      '|---|---:|---:|---:|---:|',
      `| flush (s) | ${e.flush.vectorsealSeconds} | ${e.flush.plaintextMedianSeconds} (median of ${e.flush.plaintextSeconds.join(', ')}) | ${x2(e.flush.ratio)} | ${e.sqlcipher ? `${e.sqlcipher.bestSeconds} (bulk insert, one transaction)` : 'n/a'} |`,
      `| flush, MB/s of vectors | ${e.flush.vectorsealVectorMBps} | ${e.flush.plaintextVectorMBps} | | ${e.sqlcipher ? e.sqlcipher.vectorMBps : 'n/a'} (vectorseal flush: ${e.sqlcipher?.flushRatio ?? "n/a"}× this throughput) |`,
      `| bytes on disk | ${(e.flush.vectorsealFileBytes / 1e6).toFixed(1)} MB | ${(e.flush.plaintextFileBytes / 1e6).toFixed(1)} MB | | ${e.sqlcipher ? `${(e.sqlcipher.fileBytes / 1e6).toFixed(1)} MB` : 'n/a'} |`,
      `| reopen (s, median) | ${e.reopen.vectorsealMedianSeconds} (${e.reopen.vectorsealSeconds.join(', ')}) | ${e.reopen.plaintextMedianSeconds} (${e.reopen.plaintextSeconds.join(', ')}) | ${x2(e.reopen.ratio)} | |`,
      `| search p50 (ms) | ${e.search.vectorseal.p50Ms} | ${e.search.plaintext.p50Ms} | ${e.search.p50Ratio ?? 'n/a'}× | |`,
      `| search p99 (ms) | ${e.search.vectorseal.p99Ms} | ${e.search.plaintext.p99Ms} | ${e.search.p99Ratio ?? 'n/a'}× | |`,
      '',
      `Search: ${e.search.queries} queries, k=${e.search.k}, ef=${e.search.ef}, alternating query by query; ${e.search.identicalResults}/${e.search.queries} returned identical ids on both sides.`,
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
      ...r.collections.map((c) => `| ${c.collections.toLocaleString('en-US')} collections, no data | ${c.medianSeconds} | ${c.seconds.join(', ')} | 0 (no data files) |`),
      ...r.data.map((d) => `| 1 collection, ${(d.dataBytes / 1e6).toFixed(0)} MB in ${d.dataFiles} files | ${d.medianSeconds} | ${d.seconds.join(', ')} | ${d.dataBytesRewritten} |`),
      '',
      '',
      '| collections | created through createCollections (s) | batch | one createCollection call each | keyring after rotation (bytes) |',
      '|---:|---:|---:|---|---:|',
      ...r.collections.map((c) => `| ${c.collections.toLocaleString('en-US')} | ${c.createSeconds} | ${c.batch} | ${c.oneByOne ? `${c.oneByOne.collections} in ${c.oneByOne.seconds} s` : '-'} | ${c.keyringBytes} |`),
      '',
      'Data bytes rewritten: every file but the keyring (which rotation rewrites) and the audit trail (which records it) fingerprinted (SHA-256, mtime, size) before and after each rotation.',
    );
  }
  if (s.kmsLoad) {
    const k = s.kmsLoad;
    out.push('', '## Key service load (bench/kms-load.ts)', '', `${String(k['clients'])} SDK clients, ${String(k['seconds'])} s: ${String(k['requestsPerSecond'])} requests/s (GenerateDataKey + Decrypt), ${String(k['errors'])} errors (${String(k['date'])}).`);
  }
  return `${out.join('\n')}\n`;
}
