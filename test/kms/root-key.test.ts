import { afterEach, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CorruptDataError, InvalidArgumentError, WrongKeyError } from '../../src/errors.js';
import { LocalRootKeyFile } from '../../src/kms/index.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('creates a 0600 root key file and round trips with bound associated data', async () => {
  dir = await mkdtemp(join(tmpdir(), 'vs-root-'));
  const file = join(dir, 'sub', 'root.key');
  const rk = await LocalRootKeyFile.open(file);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  expect(await readFile(file)).toHaveLength(32);
  const aad = Buffer.from('key-1/1');
  const blob = await rk.wrap(Buffer.from('material'), aad);
  expect(Buffer.from(await rk.unwrap(blob, aad)).toString()).toBe('material');
  // Reopening reads the same key.
  expect(Buffer.from(await (await LocalRootKeyFile.open(file)).unwrap(blob, aad)).toString()).toBe('material');
  await expect(rk.unwrap(blob, Buffer.from('key-1/2'))).rejects.toBeInstanceOf(CorruptDataError);
  const tampered = Buffer.from(blob);
  tampered[tampered.length - 5]! ^= 1;
  await expect(rk.unwrap(tampered, aad)).rejects.toBeInstanceOf(CorruptDataError);
  const other = await LocalRootKeyFile.open(join(dir, 'other.key'));
  await expect(other.unwrap(blob, aad)).rejects.toBeInstanceOf(WrongKeyError);
  await chmod(file, 0o644);
  await expect(LocalRootKeyFile.open(file)).rejects.toBeInstanceOf(InvalidArgumentError);
});
