import { afterEach, expect, it, vi } from 'vitest';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { CreateKeyCommand, KMSClient, ListKeysCommand } from '@aws-sdk/client-kms';
import { registerKmsCommands } from '../../src/cli/commands/kms.js';
import { loadKeyServiceConfig, startKeyService } from '../../src/kms/index.js';

let dir: string | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]): Promise<string> {
  const out: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  const program = new Command().exitOverride();
  registerKmsCommands(program);
  await program.parseAsync(['node', 'vectorseal', ...args]);
  vi.restoreAllMocks();
  return out.join('');
}

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
