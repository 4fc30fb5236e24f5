import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

const here = dirname(fileURLToPath(import.meta.url));

describe('pkcs11js and @aws-sdk/client-kms are optional peers', () => {
  it(
    'without them the default (local key) store works in full, ' + 'and each provider that needs one names the package to install',
    async () => {
      await fs.access(join(here, '../../dist/index.js'));
      const root = tempDir('vs-peers-');
      const r = spawnSync(
        process.execPath,
        ['--import', join(here, 'register-block-optional-peers.mjs'), join(here, 'optional-peers-child.mjs'), root],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as {
        local: string;
        awsKms: { code: string; message: string };
        pkcs11: { code: string; message: string };
      };
      expect(out.local).toBe('a');
      expect(out.awsKms.code).toBe('VS_PROVIDER_UNAVAILABLE');
      expect(out.awsKms.message).toContain('npm install @aws-sdk/client-kms');
      expect(out.pkcs11.code).toBe('VS_PROVIDER_UNAVAILABLE');
      expect(out.pkcs11.message).toContain('npm install pkcs11js');
    },
  );
});
