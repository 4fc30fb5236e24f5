import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The shared test-vector folder: ../shared/testvectors beside the repository. */
export const TESTVECTORS = process.env['VECTORSEAL_TESTVECTORS'] ?? resolve(here, '../../../shared/testvectors');

export interface WycheproofFile<G> {
  algorithm: string;
  numberOfTests: number;
  testGroups: G[];
}

export function loadWycheproof<G>(name: string): WycheproofFile<G> {
  return JSON.parse(readFileSync(join(TESTVECTORS, 'wycheproof', name), 'utf8')) as WycheproofFile<G>;
}

export const hex = (s: string): Buffer => Buffer.from(s, 'hex');
