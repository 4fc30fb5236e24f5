import { afterEach, expect, it } from 'vitest';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, KMSClient, ListKeysCommand } from '@aws-sdk/client-kms';
import { registerKmsCommands } from '../../src/cli/commands/kms.js';
import { loadKeyServiceConfig, startKeyService } from '../../src/kms/index.js';
import { runCommands } from '../helpers/cli-in-process.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const run = async (args: string[]): Promise<string> => (await runCommands(registerKmsCommands, args)).stdout;

it('init-config and add-access-key write a working configuration', async () => {
  dir = await mkdtemp(join(tmpdir(), 'vs-kms-cli-'));
  const file = join(dir, 'kms.json');
  const printed = await run(['kms', 'init-config', '--config', file, '--account-id', '123456789012']);
  expect(printed).toContain('secret access key');
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  const added = await run(['kms', 'add-access-key', '--config', file, '--name', 'lister', '--operations', 'ListKeys']);
  const config = await loadKeyServiceConfig(file);
  expect(config.principals.map((p) => p.name)).toEqual(['admin', 'lister']);
  expect(added).toContain(config.principals[1]!.accessKeyId);

  const service = await startKeyService({ port: 0, dataDir: join(dir, 'data'), configFile: file });
  try {
    const [admin, lister] = config.principals.map(
      (p) => new KMSClient({ endpoint: service.url, region: 'us-east-1', credentials: p, maxAttempts: 1 }),
    );
    await admin!.send(new CreateKeyCommand({}));
    expect((await lister!.send(new ListKeysCommand({}))).Keys).toHaveLength(1);
    await expect(lister!.send(new CreateKeyCommand({}))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    admin!.destroy();
    lister!.destroy();
  } finally {
    await service.close();
  }
});
