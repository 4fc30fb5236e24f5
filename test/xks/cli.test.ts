import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { registerXksCommands } from '../../src/cli/commands/xks.js';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';

const run = promisify(execFile);

/** `vectorseal xks ...` end to end: config, a key in the token, `xks serve`, curl --aws-sigv4 (Appendix D), rotation by SIGHUP. */
describeSoftHsm('vectorseal xks (command line)', () => {
  let hsm: SoftHsm;
  let pki: TestPki;
  let dir: string;

  beforeAll(async () => {
    hsm = createSoftHsm(['xks-cli']);
    pki = createTestPki();
    dir = await mkdtemp(join(tmpdir(), 'vs-xks-cli-'));
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    hsm?.cleanup();
    pki?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('init-config, create-key, serve; curl --aws-sigv4 gets answers; add-credential + SIGHUP rotates without a restart', async () => {
    const t = hsm.tokens['xks-cli']!;
    const token = ['--pkcs11-module', hsm.module, '--token', t.label, '--pin-env', t.pinEnv];
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => (out.push(String(c)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (err.push(String(c)), true));
    const handlers = new Map<string, () => void>();
    const grab = ((event: string, fn: () => void) => (handlers.set(event, fn), process)) as typeof process.once;
    vi.spyOn(process, 'once').mockImplementation(grab);
    vi.spyOn(process, 'on').mockImplementation(grab as typeof process.on);
    const exited = new Promise<number>((resolve) => {
      vi.spyOn(process, 'exit').mockImplementation(((code?: number) => resolve(code ?? 0)) as typeof process.exit);
    });
    const cli = async (...args: string[]) => {
      const program = new Command().exitOverride();
      registerXksCommands(program);
      await program.parseAsync(['node', 'vectorseal', 'xks', ...args]);
    };
    const config = join(dir, 'xks.json');
    await cli('init-config', '--config', config, '--uri-prefix', '/cli/kms/xks/v1');
    const first = JSON.parse(out.join('').slice(out.join('').indexOf('{'))) as {
      XksProxyUriPath: string;
      XksProxyAuthenticationCredential: { AccessKeyId: string; RawSecretAccessKey: string };
    };
    expect(first.XksProxyUriPath).toBe('/cli/kms/xks/v1');
    await cli('create-key', '--id', 'cli-key', ...token);
    await writeFile(join(dir, 'cert.pem'), pki.server.cert);
    await writeFile(join(dir, 'key.pem'), pki.server.key, { mode: 0o600 });
    await cli(
      'serve',
      '--port',
      '0',
      '--config',
      config,
      '--tls-cert',
      join(dir, 'cert.pem'),
      '--tls-key',
      join(dir, 'key.pem'),
      '--audit-file',
      join(dir, 'audit.log'),
      ...token,
    );
    const base = /listening on (\S+)/.exec(err.join(''))?.[1];
    expect(base).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/cli\/kms\/xks\/v1$/);

    const body = join(dir, 'xks_encrypt_request.json');
    await writeFile(
      body,
      JSON.stringify({
        requestMetadata: {
          awsPrincipalArn: 'arn:aws:iam::123456789012:user/Alice',
          kmsKeyArn: 'arn:aws:kms:us-east-2:123456789012:/key/1234abcd-12ab-34cd-56ef-1234567890ab',
          kmsOperation: 'GenerateDataKey',
          kmsRequestId: '4112f4d6-db54-4af4-ae30-c55a22a8dfae',
        },
        plaintext: 'SGVsbG8gV29ybGQh',
        encryptionAlgorithm: 'AES_GCM',
      }),
    );
    const curl = (c: { AccessKeyId: string; RawSecretAccessKey: string }) =>
      run('curl', [
        '--silent',
        '--cacert',
        pki.caFile,
        '--aws-sigv4',
        'aws:amz:us-east-1:kms-xks-proxy',
        '--user',
        `${c.AccessKeyId}:${c.RawSecretAccessKey}`,
        '-X',
        'POST',
        '-H',
        'Content-Type:application/json',
        '--data',
        `@${body}`,
        '-w',
        '\n%{response_code}',
        `${base}/keys/cli-key/encrypt`,
      ]).then((r) => ({ status: r.stdout.split('\n').at(-1), json: r.stdout.split('\n')[0] }));
    const r1 = await curl(first.XksProxyAuthenticationCredential);
    expect(r1.status).toBe('200');
    expect(JSON.parse(r1.json!)).toHaveProperty('authenticationTag');

    // Rotation: a second credential, SIGHUP, both work; remove the first, SIGHUP, it stops.
    out.length = 0;
    await cli('add-credential', '--config', config);
    const second = JSON.parse(out.join('')) as typeof first;
    expect((await curl(second.XksProxyAuthenticationCredential)).status).toBe('401');
    handlers.get('SIGHUP')!();
    await vi.waitFor(() => expect(err.join('')).toContain('2 credentials'));
    expect((await curl(second.XksProxyAuthenticationCredential)).status).toBe('200');
    expect((await curl(first.XksProxyAuthenticationCredential)).status).toBe('200');
    await cli('remove-credential', '--config', config, '--access-key-id', first.XksProxyAuthenticationCredential.AccessKeyId);
    handlers.get('SIGHUP')!();
    await vi.waitFor(() => expect(err.join('')).toContain('1 credentials'));
    expect((await curl(first.XksProxyAuthenticationCredential)).status).toBe('401');
    expect((await curl(second.XksProxyAuthenticationCredential)).status).toBe('200');
    expect((await readFile(config, 'utf8')).includes(first.XksProxyAuthenticationCredential.RawSecretAccessKey)).toBe(false);

    handlers.get('SIGTERM')!();
    expect(await exited).toBe(0);
    const audit = await readFile(join(dir, 'audit.log'), 'utf8');
    expect(audit).toContain('4112f4d6-db54-4af4-ae30-c55a22a8dfae');
    expect(audit).not.toContain('SGVsbG8gV29ybGQh');
  });
});
