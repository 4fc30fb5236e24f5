import { join } from 'node:path';
import type { Command } from 'commander';
import { AlreadyExistsError } from '../../errors.js';
import { defaultLocalKeyDir } from '../../keys/key-manager.js';
import { resolve } from 'node:path';
import { MASTER_KEY_ENV } from '../../keys/local.js';
import { upgradeStore } from '../../store/index.js';
import { configPath, readStoreConfig, storeIdOf, writeStoreConfig } from '../config-file.js';
import { exists } from '../../util/durable.js';
import type { Store } from '../../store/index.js';
import { compareFingerprints, fingerprintDataFiles } from '../data-files.js';
import {
  kekOptions,
  openFromCli,
  output,
  storeDir,
  storeOptions,
  withStore,
  type KekCliOptions,
  type StoreCliOptions,
} from '../context.js';

/** Everything `info` shows: counts, segments, key references and versions, never key material. */
export function describeStore(store: Store): Record<string, unknown> {
  const ring = store.keys.keyring;
  return {
    dir: store.dir,
    storeId: store.storeId,
    keks: Object.entries(ring.keks).map(([name, k]) => ({
      name,
      provider: k.provider,
      keyId: k.keyId,
      currentVersion: k.currentVersion ?? null,
      ...(store.keys.kekConfigs[name]?.config?.['keyDir'] === undefined ? {} : { keyDir: store.keys.kekConfigs[name]?.config?.['keyDir'] }),
    })),
    collections: store.listCollections().map((c) => {
      const s = store.collection(c.name).stats();
      const keys = ring.collections[c.id];
      return {
        name: c.name,
        id: c.id,
        dim: c.dim,
        space: c.space,
        tenant: c.tenant ?? null,
        count: s.count,
        unflushed: s.unflushed,
        segments: s.segments,
        segmentFiles: s.segmentFiles,
        segmentBytes: s.segmentBytes,
        deadRecords: s.deadRecords,
        manifestGeneration: s.generation,
        activeDekVersion: keys?.activeVersion ?? null,
        deks: (keys?.deks ?? []).map((d) => ({
          version: d.version,
          state: d.state,
          wrappedUnder: d.wraps.map((w) => `${w.kek} (${w.keyId} v${w.kekVersion ?? '?'})`),
        })),
      };
    }),
  };
}

export function registerStoreCommands(program: Command): void {
  kekOptions(
    storeOptions(
      program.command('init').description('create a new store; its KEK is a local master key unless --kek names aws-kms or pkcs11'),
    ),
  )
    .option('--json', 'print JSON')
    .action(async (opts: StoreCliOptions & KekCliOptions) => {
      const dir = storeDir(opts);
      if (await exists(join(dir, 'STORE'))) throw new AlreadyExistsError(`a store already exists in ${dir}`);
      const store = await openFromCli(opts, true);
      const kek = Object.values(store.keys.keyring.keks)[0];
      const cfg = store.keys.kekConfigs['default']?.config ?? {};
      const local = kek?.provider === 'local';
      const info = {
        dir: store.dir,
        storeId: store.storeId,
        config: configPath(store.storeId, opts.config),
        keyProvider: kek?.provider,
        keyId: kek?.keyId,
        ...(local && cfg['masterKeyEnv'] === undefined ? { keyDir: cfg['keyDir'] ?? defaultLocalKeyDir() } : {}),
        ...(local && cfg['masterKeyEnv'] !== undefined ? { masterKeyEnv: cfg['masterKeyEnv'] } : {}),
        ...(cfg['endpoint'] ? { endpoint: cfg['endpoint'] } : {}),
      };
      await store.close();
      output(opts, info, () =>
        [
          `created store ${info.storeId}`,
          `  data:        ${info.dir}`,
          local && info.masterKeyEnv !== undefined
            ? `  master key:  from ${info.masterKeyEnv} (local provider; no key file written)`
            : local
              ? `  master key:  ${info.keyDir}/${info.keyId} (local provider; keep it outside backups of the data)`
              : `  KEK:         ${info.keyProvider} ${info.keyId}${info.endpoint ? ` at ${info.endpoint}` : ''}`,
          `  config:      ${info.config} (the KEKs this store may use; keep it outside the data directory)`,
        ].join('\n'),
      );
    });

  storeOptions(
    program
      .command('upgrade')
      .description("convert a store made by vectorseal 0.1.0 (every DEK wrap verified under the owner's KEKs) and write its config file"),
  )
    .option('--json', 'print JSON')
    .action(async (opts: StoreCliOptions) => {
      const dir = storeDir(opts);
      const storeId = await storeIdOf(dir);
      const file = configPath(storeId, opts.config);
      const existing = await readStoreConfig(file, storeId);
      const keyDir = opts.keyDir === undefined ? undefined : resolve(opts.keyDir);
      const report = await upgradeStore({
        dir,
        ...(existing ? { keks: existing.keks } : {}),
        ...(keyDir === undefined ? {} : { localKeyDir: keyDir }),
      });
      // Record how this process reached the store's local KEKs, so every later command uses the same ones.
      const keks = { ...(existing?.keks ?? {}) };
      for (const [name, entry] of Object.entries(report.keks)) {
        if (keks[name] || entry.provider !== 'local') continue;
        const useEnv = keyDir === undefined && process.env[MASTER_KEY_ENV];
        keks[name] = {
          provider: 'local',
          keyId: entry.keyId,
          config: useEnv ? { masterKeyEnv: MASTER_KEY_ENV } : { keyDir: keyDir ?? defaultLocalKeyDir() },
        };
      }
      await writeStoreConfig(file, { storeId: report.storeId, dir, keks });
      output(opts, { ...report, config: file }, () =>
        [
          `upgraded store ${report.storeId} in ${dir} from 0.1.0: ${report.verifiedWraps} DEK wrap(s) ` +
            `verified, ${report.collections} collection(s)`,
          `  config: ${file} (the KEKs this store may use; keep it outside the data directory)`,
        ].join('\n'),
      );
    });

  storeOptions(program.command('info').description('collections, counts, segments and key versions (never key material)'))
    .option('--json', 'print JSON')
    .action(async (opts: StoreCliOptions) => {
      await withStore(
        opts,
        async (store) => {
          const d = describeStore(store) as ReturnType<typeof describeStore> & {
            collections: Record<string, unknown>[];
            keks: Record<string, unknown>[];
          };
          // Every KEK is asked for its state: one that cannot be reached (or is not enabled) is shown, not thrown.
          const health = new Map((await store.keys.kekHealth()).map((h) => [h.name, h]));
          for (const k of d.keks) {
            const h = health.get(String(k['name']));
            Object.assign(k, { reachable: h?.reachable ?? false, state: h?.state ?? null, ...(h?.error ? { error: h.error } : {}) });
          }
          d['unusableKeks'] = d.keks.filter((k) => !k['reachable'] || k['state'] !== 'enabled').map((k) => k['name']);
          const status = (k: Record<string, unknown>): string =>
            !k['reachable']
              ? ` -- UNREACHABLE (${String(k['error'] ?? k['state'])})`
              : k['state'] !== 'enabled'
                ? ` -- ${String(k['state']).toUpperCase()}`
                : '';
          output(opts, d, () =>
            [
              `store ${String(d['storeId'])} at ${String(d['dir'])}`,
              ...d.keks.map(
                (k) =>
                  `  KEK ${String(k['name'])}: ${String(k['provider'])} ${String(k['keyId'])} version ` +
                  `${String(k['currentVersion'])}${status(k)}`,
              ),
              `  ${d.collections.length} collection(s)`,
              ...d.collections.map(
                (c) =>
                  `  - ${String(c['name'])} (${String(c['space'])}, ` +
                  `dim ${String(c['dim'])}${c['tenant'] ? `, tenant ${String(c['tenant'])}` : ''}): ` +
                  `${String(c['count'])} records, ${String(c['segments'])} segment group(s), ` +
                  `${String(c['segmentBytes'])} bytes, DEK v${String(c['activeDekVersion'])}`,
              ),
            ].join('\n'),
          );
        },
        { readOnly: true, lazy: true },
      );
    });

  storeOptions(program.command('rotate-kek').description('rewrap every DEK under a new KEK version; data files are not touched'))
    .option('--json', 'print JSON')
    .action(async (opts: StoreCliOptions) => {
      await withStore(
        opts,
        async (store) => {
          await store.flush();
          const before = await fingerprintDataFiles(store.dir);
          const report = await store.rotateKek();
          const after = await fingerprintDataFiles(store.dir);
          const diff = compareFingerprints(before, after);
          const result = { ...report, dataFiles: { checked: diff.files, byteIdentical: diff.identical, changed: diff.changed } };
          output(opts, result, () =>
            [
              `rotated KEK "${report.kek}" (${report.keyId}): version ${report.fromVersion ?? '?'} -> ` +
                `${report.toVersion ?? '?'}${report.resumed ? ' (resumed an interrupted rotation)' : ''}`,
              `  DEKs rewrapped: ${report.rewrapped} across ${report.collections} collection(s)` +
                `${report.alreadyCurrent ? `, ${report.alreadyCurrent} already current` : ''}`,
              `  data files: ${diff.files} checked, ` +
                `${diff.identical ? 'all byte-identical (SHA-256 and mtime unchanged)' : `CHANGED: ${diff.changed.join(', ')}`}`,
            ].join('\n'),
          );
        },
        { lazy: true },
      );
    });
}
