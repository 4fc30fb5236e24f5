import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';

/**
 * How the caller reaches one KEK. This is the trust root of a store: it comes
 * from `openStore` options or the CLI's config file (outside the data
 * directory), never from the keyring, so nothing an attacker writes into the
 * data directory decides which key directory, endpoint or native module the
 * process uses.
 *
 * `config` by provider (all strings, none secret):
 * - local: `keyDir` (the key directory holding `<keyId>/v<N>.key`) or
 *   `masterKeyEnv` (the environment variable holding the key, e.g.
 *   `VECTORSEAL_MASTER_KEY`).
 * - aws-kms: `region`, `endpoint`.
 * - pkcs11: `module` (the PKCS#11 library), `token` or `slot`, `pinEnv` or
 *   `pinFile`, `maxSessions`.
 */
export interface KekConfig {
  provider: string;
  /** A local key id, a KMS key ARN/alias, a PKCS#11 key label. */
  keyId: string;
  config?: Record<string, string>;
}

/** Where local master keys go by default: outside any data directory. */
export function defaultLocalKeyDir(): string {
  const env = process.env['VECTORSEAL_KEY_DIR'];
  if (env) return env;
  const base = process.env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config');
  return join(base, 'vectorseal', 'keys');
}

const KEK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CONFIG_KEYS: Record<string, readonly string[]> = {
  local: ['keyDir', 'masterKeyEnv'],
  'aws-kms': ['region', 'endpoint'],
  pkcs11: ['module', 'token', 'slot', 'pinEnv', 'pinFile', 'maxSessions'],
};

/** Throws unless `name` is a KEK name (1-64 of [A-Za-z0-9._-], starting with a letter or digit). */
export function checkKekName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !KEK_NAME.test(name)) {
    throw new InvalidArgumentError('KEK name expected 1-64 characters [A-Za-z0-9._-] starting with a letter or digit');
  }
}

/**
 * Checks one KEK configuration and returns a plain copy of it (own string
 * properties only: inherited keys, getters and `__proto__` members are not
 * taken over).
 */
export function checkKekConfig(name: string, value: unknown): KekConfig {
  checkKekName(name);
  if (typeof value !== 'object' || value === null) throw new InvalidArgumentError(`KEK "${name}" expected { provider, keyId, config? }`);
  const v = value as Record<string, unknown>;
  const provider = ownString(v, 'provider');
  const keyId = ownString(v, 'keyId');
  if (provider === undefined || provider.length === 0 || provider.length > 64)
    throw new InvalidArgumentError(`KEK "${name}": "provider" expected a provider name`);
  if (keyId === undefined || keyId.length === 0 || keyId.length > 2048)
    throw new InvalidArgumentError(`KEK "${name}": "keyId" expected 1-2048 characters`);
  const out: KekConfig = { provider, keyId };
  const raw = Object.prototype.hasOwnProperty.call(v, 'config') ? v['config'] : undefined;
  if (raw !== undefined) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new InvalidArgumentError(`KEK "${name}": "config" expected an object of strings`);
    const allowed = CONFIG_KEYS[provider];
    const config: Record<string, string> = {};
    for (const key of Object.keys(raw)) {
      const s = ownString(raw as Record<string, unknown>, key);
      if (s === undefined) throw new InvalidArgumentError(`KEK "${name}": config "${key.slice(0, 64)}" expected a string`);
      if (key === 'pin') throw new InvalidArgumentError(`KEK "${name}": a PIN is never configured in a file; use "pinEnv" or "pinFile"`);
      if (allowed && !allowed.includes(key))
        throw new InvalidArgumentError(
          `KEK "${name}": config "${key.slice(0, 64)}" is not a ${provider} setting (expected ${allowed.join(', ')})`,
        );
      Object.defineProperty(config, key, { value: s, enumerable: true, writable: true, configurable: true });
    }
    out.config = config;
  }
  return out;
}

/** Checks a map of KEK configurations by name. */
export function checkKekConfigs(value: unknown): Record<string, KekConfig> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidArgumentError('"keks" expected an object of KEK configurations by name');
  const out: Record<string, KekConfig> = Object.create(null) as Record<string, KekConfig>;
  for (const name of Object.keys(value)) {
    const desc = Object.getOwnPropertyDescriptor(value, name);
    if (!desc || !('value' in desc)) throw new InvalidArgumentError(`KEK "${name.slice(0, 64)}" expected a plain value`);
    out[name] = checkKekConfig(name, desc.value);
  }
  return out;
}

function ownString(o: Record<string, unknown>, key: string): string | undefined {
  const desc = Object.getOwnPropertyDescriptor(o, key);
  if (!desc || !('value' in desc) || typeof desc.value !== 'string') return undefined;
  return desc.value;
}
