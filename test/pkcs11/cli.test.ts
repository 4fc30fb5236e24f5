import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';
import { CLI_BIN, cliJson, runCli } from '../helpers/cli.js';
import { storeDirs } from '../helpers/store.js';

describeSoftHsm('vectorseal init --kek pkcs11', () => {
  let hsm: SoftHsm;
  beforeAll(async () => {
    await fs.access(CLI_BIN); // the built CLI: `npm test` builds first
    hsm = createSoftHsm(['cli']);
  });
  afterAll(() => hsm?.cleanup());

  it('creates a store whose KEK is generated in the token, and rotates it there', async () => {
    const t = hsm.tokens['cli']!;
    const d = storeDirs();
    // The PIN reaches the child only through the variable named by --pin-env (set by createSoftHsm).
    const cli = async (...args: string[]) => cliJson(await runCli([...args, '--dir', d.dir, '--json']), args);
    const init = await cli(
      'init',
      '--kek',
      'pkcs11',
      '--pkcs11-module',
      hsm.module,
      '--token',
      t.label,
      '--pin-env',
      t.pinEnv,
      '--key-label',
      'cli-kek',
    );
    expect(init).toMatchObject({ keyProvider: 'pkcs11', keyId: 'cli-kek' });
    await cli('collection', 'create', 'docs', '--dim', '4');
    const rotated = JSON.stringify(await cli('rotate-kek'));
    expect(rotated).toMatch(/"rewrapped":3/); // the collection's DEK and the store's audit and state keys
    expect(rotated).toMatch(/"toVersion":"2"|"toVersion":"v2"/);
    const keyring = await fs.readFile(join(d.dir, 'KEYRING'), 'utf8');
    expect(keyring).not.toContain(t.pin);
  });
});
