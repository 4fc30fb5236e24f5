import { InvalidArgumentError, KekNotConfiguredError, WrongKeyError } from '../errors.js';
import { defaultLocalKeyDir, type KekConfig } from './kek-config.js';
import { LocalKekProvider, MASTER_KEY_ENV, parseMasterKeyEnv } from './local.js';
import type { KekProvider } from './provider.js';

/** What the keyring says of a KEK: its provider and key id (the binding), nothing about how to reach it. */
export interface KekBinding {
  provider: string;
  keyId: string;
}

/**
 * Makes a provider instance for a KEK from the caller's configuration of it
 * (`config` is undefined when the caller gave a factory for the provider but
 * no configuration of this KEK name). `binding` is the keyring's entry.
 */
export type ProviderFactory = (binding: KekBinding, name: string, config: KekConfig | undefined) => KekProvider | Promise<KekProvider>;

export interface ProviderRegistryOptions {
  /** The caller's KEKs by keyring name: the only ones, with the local key directory below, ever contacted. */
  keks?: Record<string, KekConfig>;
  /**
   * Where local KEKs not named in `keks` are found (their key id selects a
   * directory in it). Default: VECTORSEAL_MASTER_KEY when set, else
   * VECTORSEAL_KEY_DIR or ~/.config/vectorseal/keys. Always the caller's: a
   * keyring never names a key directory.
   */
  localKeyDir?: string;
  /** Provider factories by provider name (custom providers, a PIN fetched by the program, an injected client). */
  providers?: Record<string, ProviderFactory>;
}

/**
 * The KEK set of one process: for each KEK name the keyring uses, the
 * caller's configuration of it and one provider instance made from that.
 * Provider modules are loaded when a KEK of theirs is configured and first
 * used (AWS SDK and pkcs11js by dynamic import), and never from anything the
 * keyring says.
 */
export class ProviderRegistry {
  private readonly instances = new Map<string, Promise<KekProvider>>();
  private readonly keks: Record<string, KekConfig>;

  constructor(private readonly options: ProviderRegistryOptions = {}) {
    this.keks = Object.assign(Object.create(null) as Record<string, KekConfig>, options.keks ?? {});
  }

  /** Adds the caller's configuration of a KEK being added now (it is not written to the keyring). */
  configure(name: string, config: KekConfig): void {
    const had = this.keks[name];
    if (had && (had.provider !== config.provider || had.keyId !== config.keyId)) {
      throw new WrongKeyError(`KEK "${name}" is already configured as another key`);
    }
    this.keks[name] = config;
  }

  /** The caller's explicit KEK configurations (what a config file records). */
  get configured(): Readonly<Record<string, KekConfig>> {
    return this.keks;
  }

  /**
   * The caller's configuration for a KEK the keyring binds as `binding`, or
   * undefined when a caller factory for its provider takes it. Throws
   * KekNotConfiguredError when the caller did not configure it, WrongKeyError
   * when the caller's configuration of that name names another key.
   */
  configFor(name: string, binding: KekBinding): KekConfig | undefined {
    const own = this.keks[name];
    if (own) {
      if (own.provider !== binding.provider || own.keyId !== binding.keyId) {
        throw new WrongKeyError(
          `KEK "${name}" is bound to ${binding.provider} key ${binding.keyId.slice(0, 256)} in the keyring, ` +
            `but configured as ${own.provider} key ${own.keyId.slice(0, 256)}`,
        );
      }
      return own;
    }
    if (binding.provider === 'local') {
      const env = process.env[MASTER_KEY_ENV];
      if (env && this.options.localKeyDir === undefined)
        return { provider: 'local', keyId: binding.keyId, config: { masterKeyEnv: MASTER_KEY_ENV } };
      return { provider: 'local', keyId: binding.keyId, config: { keyDir: this.options.localKeyDir ?? defaultLocalKeyDir() } };
    }
    if (this.options.providers?.[binding.provider]) return undefined;
    throw new KekNotConfiguredError(
      `KEK "${name}" (${binding.provider}) is not in this process's KEK configuration, ` +
        `so it is not contacted; add it to openStore({ keks }) or the store's config file`,
    );
  }

  /** Whether the caller configured a KEK (without contacting it). */
  isConfigured(name: string, binding: KekBinding): boolean {
    try {
      this.configFor(name, binding);
      return true;
    } catch {
      return false;
    }
  }

  /** The provider instance for a KEK name, made on first use from the caller's configuration. */
  provider(name: string, binding: KekBinding): Promise<KekProvider> {
    let p = this.instances.get(name);
    if (!p) {
      p = Promise.resolve().then(() => this.make(name, binding));
      p.catch(() => this.instances.delete(name));
      this.instances.set(name, p);
    }
    return p;
  }

  /** Makes a provider without keeping it (a KEK being added is checked first). */
  make(name: string, binding: KekBinding): Promise<KekProvider> {
    const config = this.configFor(name, binding);
    return makeProvider(config, binding, name, this.options.providers);
  }

  /** Keeps a provider instance made elsewhere under a name. */
  set(name: string, provider: KekProvider): void {
    this.instances.set(name, Promise.resolve(provider));
  }

  /** The local key directory new local KEKs go in. */
  get localKeyDir(): string {
    return this.options.localKeyDir ?? defaultLocalKeyDir();
  }

  async close(): Promise<void> {
    for (const p of this.instances.values()) await (await p.catch(() => undefined))?.close();
    this.instances.clear();
  }
}

async function makeProvider(
  config: KekConfig | undefined,
  binding: KekBinding,
  name: string,
  factories: Record<string, ProviderFactory> | undefined,
): Promise<KekProvider> {
  const factory = factories?.[binding.provider];
  if (factory && Object.prototype.hasOwnProperty.call(factories, binding.provider)) return factory(binding, name, config);
  if (!config) throw new KekNotConfiguredError(`KEK "${name}" is not configured`);
  const c = config.config ?? {};
  switch (config.provider) {
    case 'local': {
      const envName = c['masterKeyEnv'];
      if (envName !== undefined) {
        const value = process.env[envName];
        if (!value)
          throw new KekNotConfiguredError(
            `KEK "${name}": the environment variable ${envName.slice(0, 64)} holding its master key is not set`,
          );
        return new LocalKekProvider({ keyId: config.keyId, masterKeys: parseMasterKeyEnv(value) });
      }
      return new LocalKekProvider({ keyId: config.keyId, keyDir: c['keyDir'] ?? defaultLocalKeyDir() });
    }
    case 'aws-kms': {
      const { AwsKmsKekProvider } = await import('./aws-kms.js');
      return new AwsKmsKekProvider({
        keyId: config.keyId,
        ...(c['region'] ? { region: c['region'] } : {}),
        ...(c['endpoint'] ? { endpoint: c['endpoint'] } : {}),
      });
    }
    case 'pkcs11': {
      const { Pkcs11KekProvider, pkcs11OptionsFromConfig } = await import('./pkcs11.js');
      return Pkcs11KekProvider.open(pkcs11OptionsFromConfig(config));
    }
    default:
      throw new InvalidArgumentError(`no provider "${config.provider.slice(0, 64)}" is available for KEK "${name}"`);
  }
}
