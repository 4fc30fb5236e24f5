import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { openStore, type SearchResult, type VectorRecord } from '../../store/index.js';
import { compareFingerprints, fingerprintDataFiles } from '../data-files.js';
import { readRecords } from '../import-reader.js';
import { makeTempDir, removeTree } from '../../util/durable.js';
import { EXIT } from '../exit-codes.js';

const FIXTURE = fileURLToPath(new URL('../../../fixtures/demo-articles.jsonl', import.meta.url));

interface DemoOptions {
  dir?: string;
  keyDir?: string;
  stagingDir?: string;
  json?: boolean;
}

/** A seeded clustered data set, for when the fixture is not there. */
function generated(n: number, dim: number): VectorRecord[] {
  let s = 7;
  const rand = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  const topics = ['alpha', 'beta', 'gamma', 'delta'];
  const centers = topics.map(() => Array.from({ length: dim }, () => rand() * 2 - 1));
  return Array.from({ length: n }, (_, i) => ({
    id: `item-${i}`,
    vector: (centers[i % 4] as number[]).map((c) => c + (rand() - 0.5) * 0.5),
    metadata: { title: `${topics[i % 4]} item ${i}`, topic: topics[i % 4] as string, year: 2015 + (i % 10) },
  }));
}

/** How many times any of `needles` occurs in the files under `dir`. */
async function occurrences(dir: string, needles: Buffer[]): Promise<number> {
  let n = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const bytes = await fs.readFile(p);
        for (const x of needles) if (bytes.includes(x)) n++;
      }
    }
  };
  await walk(dir);
  return n;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('build an encrypted store, import, search, rotate the KEK and show the data files did not change')
    .option('--dir <dir>', 'directory for the demo (default: a new temp directory); data goes to <dir>/data')
    .option('--key-dir <dir>', 'master key directory (default: <dir>/keys, beside the data)')
    .option('--staging-dir <dir>', 'staging directory for hnswlib (default: RAM-backed /dev/shm)')
    .option('--json', 'print a JSON summary')
    .action(async (opts: DemoOptions) => {
      const say = (line = ''): void => {
        if (!opts.json) process.stdout.write(`${line}\n`);
      };
      const root = opts.dir ? resolve(opts.dir) : await makeTempDir(join(tmpdir(), 'vectorseal-demo-'));
      // Without --dir everything the demo made (store, data, key) is removed at the end, also when it fails.
      const keep = opts.dir !== undefined;
      let storeKeyDir: string | undefined;
      try {
        const dataDir = join(root, 'data');
        const keyDir = opts.keyDir ? resolve(opts.keyDir) : join(root, 'keys');
        const open = () =>
          openStore({
            dir: dataDir,
            create: true,
            keys: { provider: 'local', keyDir },
            ...(opts.stagingDir ? { stagingDir: opts.stagingDir } : {}),
          });

        say(`vectorseal demo — every persisted byte encrypted under a per-collection key`);
        say(`1. creating a store in ${dataDir} (local master key in ${keyDir})`);
        let store = await open();
        storeKeyDir = join(keyDir, `store-${store.storeId}`);
        const haveFixture = await fs.access(FIXTURE).then(
          () => true,
          () => false,
        );
        const dim = haveFixture ? 32 : 64;
        const name = `articles-${Date.now().toString(36)}`;
        const col = await store.createCollection(name, { dim, space: 'cosine' });

        const records: VectorRecord[] = [];
        if (haveFixture) for await (const { batch } of readRecords(FIXTURE, 1000)) records.push(...batch);
        else records.push(...generated(2000, dim));
        say(
          `2. importing ${records.length} records from ` +
            `${haveFixture ? relative(process.cwd(), FIXTURE) || FIXTURE : 'a generated data set'} into ` +
            `collection "${name}"`,
        );
        for (let i = 0; i < records.length; i += 500) await col.upsert(records.slice(i, i + 500));
        await col.flush();
        const stats = col.stats();
        say(
          `   ${stats.count} records in ${stats.segments} encrypted segment group(s), ` +
            `${stats.segmentFiles} files, ${stats.segmentBytes} bytes`,
        );

        const probe = records[3] as VectorRecord;
        const query = Array.from(probe.vector);
        const search = (): { top: SearchResult[]; recent: SearchResult[] } => {
          const c = store.collection(name);
          return { top: c.search(query, 5), recent: c.search(query, 3, { filter: { year: { $gte: 2020 } } }) };
        };
        const before = search();
        say(`3. searching with the vector of ${probe.id}:`);
        for (const h of before.top) say(`     ${h.id}  similarity ${h.score.toFixed(4)}  ${JSON.stringify(h.metadata)}`);
        say(`   with filter {"year":{"$gte":2020}}: ${before.recent.map((h) => h.id).join(', ')}`);

        const title = String((probe.metadata as { title?: string } | undefined)?.title ?? probe.id);
        const vec = probe.vector instanceof Float32Array ? probe.vector : Float32Array.from(probe.vector);
        const needles = [Buffer.from(title), Buffer.from(probe.id), Buffer.from(vec.buffer, vec.byteOffset, 16)];
        const found = await occurrences(dataDir, needles);
        say(`4. scanning ${dataDir} for "${title}", "${probe.id}" and that vector's float32 bytes: ${found} occurrence(s)`);

        const fpBefore = await fingerprintDataFiles(dataDir);
        const report = await store.rotateKek();
        const fpAfter = await fingerprintDataFiles(dataDir);
        const diff = compareFingerprints(fpBefore, fpAfter);
        const after = search();
        const sameResults = JSON.stringify(after) === JSON.stringify(before);
        say(
          `5. rotating the KEK: ${report.keyId} version ${report.fromVersion} -> ${report.toVersion}, ${report.rewrapped} DEK(s) rewrapped`,
        );
        say(
          `   data files: ${diff.files} checked by SHA-256 and mtime: ` +
            `${diff.identical ? 'all byte-identical' : `changed: ${diff.changed.join(', ')}`}`,
        );
        say(`   search results after rotation: ${sameResults ? 'identical' : 'DIFFERENT'}`);

        await store.close();
        store = await open();
        const reopened = search();
        const sameAfterReopen = JSON.stringify(reopened) === JSON.stringify(before);
        say(`6. closed and reopened (DEKs unwrapped under the new KEK version): results ${sameAfterReopen ? 'identical' : 'DIFFERENT'}`);
        await store.close();

        say(
          keep ? `7. where everything is (kept: --dir was given):` : `7. where everything was (removed at the end; pass --dir to keep it):`,
        );
        say(`   data (encrypted segments, WAL, sealed manifests): ${dataDir}`);
        say(`   keyring (wrapped DEKs only):                      ${join(dataDir, 'KEYRING')}`);
        say(`   local master key (KEK versions, mode 0600):        ${join(keyDir, `store-${store.storeId}`)}`);
        say(`   index staging (RAM-backed, unlinked at once):     ${opts.stagingDir ?? '/dev/shm/vectorseal-<pid>-*'}`);
        for (const f of fpAfter) say(`     ${f.path}  ${f.size} bytes  sha256 ${f.sha256.slice(0, 16)}…`);
        const ok = found === 0 && diff.identical && sameResults && sameAfterReopen;
        say(
          ok ? 'demo passed: no plaintext on disk, rotation left every data file untouched, results unchanged.' : 'demo FAILED: see above',
        );
        if (opts.json) {
          const summary = {
            ok,
            dataDir,
            keyDir,
            kept: keep,
            collection: name,
            records: records.length,
            plaintextOccurrences: found,
            rotation: report,
            dataFiles: diff,
            sameResultsAfterRotation: sameResults,
            sameResultsAfterReopen: sameAfterReopen,
            results: before,
          };
          process.stdout.write(`${JSON.stringify(summary)}\n`);
        }
        if (!ok) process.exitCode = EXIT.INTERNAL;
      } finally {
        if (!keep) {
          await removeTree(root);
          // A --key-dir outside the temp directory: remove the demo store's own key there.
          if (storeKeyDir) await removeTree(storeKeyDir);
        }
      }
    });
}
