import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { UnsupportedVersionError } from '../../src/errors.js';
import { openStore, upgradeStore, type Store } from '../../src/store/index.js';
import { runCliSync } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, '../../fixtures/v0.1-store');
/** The fixture's master key (fixtures/v0.1-store.README.md). */
const FIXTURE_KEY = 'dmVjdG9yc2VhbC12MC4xLWZpeHR1cmUta2V5LTMyYnk=';

const opened: Store[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close({ flush: false }).catch(() => undefined);
});

async function copyFixture(): Promise<{ root: string; dir: string }> {
  const root = tempDir('vs-upgrade-');
  const dir = join(root, 'data');
  await fs.cp(fixture, dir, { recursive: true });
  return { root, dir };
}

async function checkContents(s: Store): Promise<void> {
  expect(
    s
      .listCollections()
      .map((c) => [c.name, c.count])
      .sort(),
  ).toEqual([
    ['acme-notes', 1],
    ['docs', 21],
    ['paused', 0],
  ]);
  const docs = s.collection('docs');
  expect((await docs.get('doc-7'))?.metadata).toEqual({ n: 7, tag: 'odd' });
  expect((await docs.get('doc-wal'))?.metadata).toEqual({ n: 99, tag: 'wal' });
  expect((await s.collection('acme-notes').get('a1'))?.metadata).toEqual({ who: 'acme' });
  // The disabled collection stays disabled.
  await expect((async () => s.collection('paused').get('x'))()).rejects.toMatchObject({ code: 'VS_KEY_DISABLED' });
}

describe('stores made by 0.1.0', () => {
  it("get a typed error saying how to upgrade, and upgradeStore converts them with the owner's KEK, verifying every wrap", async () => {
    const { dir } = await copyFixture();
    const keks = { default: { provider: 'local', keyId: '', config: { masterKeyEnv: 'VS_TEST_FIXTURE_KEY' } } };
    process.env['VS_TEST_FIXTURE_KEY'] = FIXTURE_KEY;
    try {
      const err = await openStore({ dir, maintainOnOpen: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsupportedVersionError);
      expect((err as UnsupportedVersionError).code).toBe('VS_UNSUPPORTED_VERSION');
      expect((err as Error).message).toContain('vectorseal upgrade');
      const storeId = JSON.parse(await fs.readFile(join(dir, 'STORE'), 'utf8')).storeId as string;
      keks.default.keyId = `store-${storeId}`;
      // A wrong key: nothing is converted.
      process.env['VS_TEST_FIXTURE_KEY'] = Buffer.alloc(32, 7).toString('base64');
      await expect(upgradeStore({ dir, keks })).rejects.toMatchObject({ code: 'VS_WRONG_KEY' });
      await expect(openStore({ dir, keks, maintainOnOpen: false })).rejects.toBeInstanceOf(UnsupportedVersionError);
      process.env['VS_TEST_FIXTURE_KEY'] = FIXTURE_KEY;
      const report = await upgradeStore({ dir, keks });
      // docs, acme-notes, paused, and the audit key: one wrap each.
      expect(report).toMatchObject({
        storeId,
        collections: 3,
        verifiedWraps: 4,
        keks: { default: { provider: 'local', keyId: `store-${storeId}` } },
      });
      const s = await openStore({ dir, keks, maintainOnOpen: false });
      opened.push(s);
      await checkContents(s);
      // The keyring no longer names the key directory 0.1.0 recorded.
      expect(await fs.readFile(join(dir, 'KEYRING'), 'utf8')).not.toContain('vs-fixture-keys-');
      await expect(upgradeStore({ dir, keks })).rejects.toMatchObject({ code: 'VS_STORE_LOCKED' });
    } finally {
      delete process.env['VS_TEST_FIXTURE_KEY'];
    }
  });

  it('`vectorseal upgrade` converts one with VECTORSEAL_MASTER_KEY and writes its config file; later commands use it', async () => {
    const { root, dir } = await copyFixture();
    const env = { XDG_CONFIG_HOME: join(root, 'config'), VECTORSEAL_MASTER_KEY: FIXTURE_KEY, VECTORSEAL_DIR: dir };
    const unset = { VECTORSEAL_KEY_DIR: undefined, VECTORSEAL_CONFIG: undefined };
    const run = (...args: string[]) => runCliSync(args, { env: { ...env, ...unset } });
    const before = run('info', '--json');
    expect(before.status).not.toBe(0);
    // With --json the error is one JSON line on stdout.
    const error = (JSON.parse(before.stdout) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('VS_UNSUPPORTED_VERSION');
    expect(error.message).toContain('vectorseal upgrade');
    const up = run('upgrade', '--json');
    expect(up.status, up.stderr).toBe(0);
    const report = JSON.parse(up.stdout) as { storeId: string; verifiedWraps: number; config: string };
    expect(report.verifiedWraps).toBe(4);
    expect(report.config).toBe(join(root, 'config', 'vectorseal', 'stores', `${report.storeId}.json`));
    const config = JSON.parse(await fs.readFile(report.config, 'utf8'));
    expect(config.keks.default).toEqual({
      provider: 'local',
      keyId: `store-${report.storeId}`,
      config: { masterKeyEnv: 'VECTORSEAL_MASTER_KEY' },
    });
    const info = run('info', '--json');
    expect(info.status, info.stderr).toBe(0);
    expect(
      JSON.parse(info.stdout)
        .collections.map((c: { name: string; count: number }) => [c.name, c.count])
        .sort(),
    ).toEqual([
      ['acme-notes', 1],
      ['docs', 21],
      ['paused', 0],
    ]);
  });
});
