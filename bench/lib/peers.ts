import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { benchDir } from './paths.js';
import type { Log } from './progress.js';

/**
 * The benchmark-only peers live in bench/node_modules (bench/package.json),
 * so the main install stays lean and `npm test` never needs them. They are
 * loaded through a require rooted at bench/ (compiled copies under dist/
 * would not find them by the usual resolution) and typed by the few members
 * used, so that type-checking the repository does not need them either.
 */
export const PEERS = ['@aws-crypto/client-node', 'better-sqlite3-multiple-ciphers', 'sqlite-vec'] as const;
export type PeerName = (typeof PEERS)[number];

function benchRequire(): NodeJS.Require {
  return createRequire(join(benchDir(), 'package.json'));
}

/** Whether a peer resolves from bench/node_modules. */
export function peerInstalled(name: PeerName): boolean {
  try {
    benchRequire().resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Installs bench/package.json's dependencies unless every peer already resolves. */
export async function ensurePeers(log: Log): Promise<void> {
  const missing = PEERS.filter((p) => !peerInstalled(p));
  if (missing.length === 0) return;
  log(`installing benchmark peers into bench/ (${missing.join(', ')}); the first time builds the SQLite cipher addon and can take minutes`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  await new Promise<void>((resolve, reject) => {
    const child = spawn(npm, ['install', '--prefix', benchDir(), '--no-audit', '--no-fund'], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`npm install --prefix bench exited with code ${String(code)}`))));
  });
  const still = PEERS.filter((p) => !peerInstalled(p));
  if (still.length > 0) throw new Error(`benchmark peers still missing after npm install: ${still.join(', ')}`);
}

/** The members of @aws-crypto/client-node the benchmark uses. */
export interface AwsEsdk {
  buildClient(policy: string): {
    encrypt(
      keyring: unknown,
      plaintext: Uint8Array,
      options: { suiteId: number; frameLength: number; encryptionContext?: Record<string, string> },
    ): Promise<{
      result: Buffer;
      messageHeader: { suiteId: number; frameLength: number };
    }>;
    decrypt(keyring: unknown, ciphertext: Uint8Array): Promise<{ plaintext: Buffer; messageHeader: { suiteId: number } }>;
  };
  RawAesKeyringNode: new (input: {
    keyName: string;
    keyNamespace: string;
    unencryptedMasterKey: Uint8Array;
    wrappingSuite: unknown;
  }) => object;
  RawAesWrappingSuiteIdentifier: { AES256_GCM_IV12_TAG16_NO_PADDING: unknown };
  AlgorithmSuiteIdentifier: { ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY: number };
  CommitmentPolicy: { REQUIRE_ENCRYPT_REQUIRE_DECRYPT: string };
}

/** The members of better-sqlite3(-multiple-ciphers) the benchmark uses. */
export interface SqliteStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
export interface SqliteDatabase {
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(sql: string): unknown;
  prepare(sql: string): SqliteStatement;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  loadExtension(path: string): unknown;
  close(): void;
}
export type SqliteConstructor = new (file: string, options?: { readonly?: boolean; fileMustExist?: boolean }) => SqliteDatabase;

export function loadAwsEsdk(): AwsEsdk {
  return benchRequire()('@aws-crypto/client-node') as AwsEsdk;
}

export function loadSqliteCipher(): SqliteConstructor {
  return benchRequire()('better-sqlite3-multiple-ciphers') as SqliteConstructor;
}

/** The member of sqlite-vec the benchmark uses: the path of its loadable extension (vec0) for this platform. */
export interface SqliteVec {
  getLoadablePath(): string;
}

export function loadSqliteVec(): SqliteVec {
  return benchRequire()('sqlite-vec') as SqliteVec;
}
