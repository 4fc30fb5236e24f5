/**
 * Load benchmark for vectorseal's key service: N concurrent official SDK
 * clients on loopback call GenerateDataKey and Decrypt (the provider's hot
 * pair) for a fixed time, then print requests/second and the error count.
 *
 * Build and run (Node 20 cannot run TypeScript directly):
 *   npx tsc -p bench/tsconfig.kms-load.json && node dist/bench-kms/bench/kms-load.js [--clients 8] [--seconds 10]
 * Run from the repository root; writes bench/results/kms-load.json there. Loopback only; bounded in time and clients.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { createKeyServiceConfig, startKeyService } from '../src/kms/index.js';

const MAX_CLIENTS = 64;
const MAX_SECONDS = 60;

function arg(name: string, fallback: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`--${name} expected a positive number`);
  return Math.min(v, max);
}

async function main(): Promise<void> {
  const clients = Math.floor(arg('clients', 8, MAX_CLIENTS));
  const seconds = arg('seconds', 10, MAX_SECONDS);
  const dataDir = await mkdtemp(join(tmpdir(), 'vs-kms-bench-'));
  const config = createKeyServiceConfig('us-east-1', '000000000000');
  const service = await startKeyService({ port: 0, host: '127.0.0.1', dataDir, config, sweepIntervalMs: 60_000 });
  const creds = config.principals[0]!;
  const sdk = Array.from(
    { length: clients },
    () => new KMSClient({ endpoint: service.url, region: 'us-east-1', credentials: creds, maxAttempts: 1 }),
  );
  try {
    const keyId = (await sdk[0]!.send(new CreateKeyCommand({ Description: 'bench' }))).KeyMetadata!.KeyId!;
    const context = { 'vectorseal:store': 'bench', 'vectorseal:collection': 'c', 'vectorseal:dek-version': '1' };

    // Verify the round trip before timing anything.
    const probe = await sdk[0]!.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
    const back = await sdk[0]!.send(new DecryptCommand({ CiphertextBlob: probe.CiphertextBlob, KeyId: keyId, EncryptionContext: context }));
    if (!Buffer.from(back.Plaintext!).equals(Buffer.from(probe.Plaintext!))) throw new Error('round trip mismatch');

    let requests = 0;
    let errors = 0;
    const deadline = Date.now() + seconds * 1000;
    const started = process.hrtime.bigint();
    await Promise.all(
      sdk.map(async (client) => {
        while (Date.now() < deadline) {
          try {
            const dk = await client.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
            requests++;
            await client.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, KeyId: keyId, EncryptionContext: context }));
            requests++;
          } catch {
            errors++;
          }
        }
      }),
    );
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    const result = {
      benchmark: 'kms-load',
      operations: ['GenerateDataKey', 'Decrypt'],
      clients,
      seconds: Number(elapsed.toFixed(3)),
      requests,
      requestsPerSecond: Math.round(requests / elapsed),
      errors,
      node: process.version,
      date: new Date().toISOString(),
    };
    const resultsDir = join(process.cwd(), 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    await writeFile(join(resultsDir, 'kms-load.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${clients} clients, ${result.seconds}s: ${result.requestsPerSecond} requests/s, ${errors} errors\n`);
    if (errors !== 0) process.exitCode = 1;
  } finally {
    for (const c of sdk) c.destroy();
    await service.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
