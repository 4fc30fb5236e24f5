import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Test certificates made with the openssl command line: a CA, a server
 * certificate for 127.0.0.1/localhost, client certificates from the CA (the
 * right CN and a wrong one) and a self-signed client certificate.
 */
export interface TestPki {
  dir: string;
  caFile: string;
  ca: Buffer;
  server: { cert: Buffer; key: Buffer };
  client: { cert: Buffer; key: Buffer; certFile: string; keyFile: string };
  wrongCn: { cert: Buffer; key: Buffer };
  selfSigned: { cert: Buffer; key: Buffer };
  cleanup(): void;
}

export const CLIENT_CN = 'cks.kms.us-east-1.amazonaws.com';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'vs-pki-'));
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=vectorseal test CA',
    ],
    dir,
  );
  const issue = (name: string, cn: string, ext?: string): void => {
    openssl(
      [
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        `/CN=${cn}`,
      ],
      dir,
    );
    const args = [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
    ];
    if (ext) {
      writeFileSync(join(dir, `${name}.ext`), ext);
      args.push('-extfile', `${name}.ext`);
    }
    openssl(args, dir);
  };
  issue('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  issue('client', CLIENT_CN, 'extendedKeyUsage=clientAuth\n');
  issue('wrong', 'someone-else.example.com', 'extendedKeyUsage=clientAuth\n');
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'self.key',
      '-out',
      'self.pem',
      '-days',
      '2',
      '-subj',
      `/CN=${CLIENT_CN}`,
    ],
    dir,
  );
  const read = (f: string) => readFileSync(join(dir, f));
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    ca: read('ca.pem'),
    server: { cert: read('server.pem'), key: read('server.key') },
    client: { cert: read('client.pem'), key: read('client.key'), certFile: join(dir, 'client.pem'), keyFile: join(dir, 'client.key') },
    wrongCn: { cert: read('wrong.pem'), key: read('wrong.key') },
    selfSigned: { cert: read('self.pem'), key: read('self.key') },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
