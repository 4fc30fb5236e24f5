import { randomUUID, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { createAuditLog, type AuditRecord } from './audit.js';
import { systemClock, type Clock } from './clock.js';
import { loadKeyServiceConfig, validateKeyServiceConfig, type KeyServiceConfig, type PrincipalConfig } from './config.js';
import { KmsException, kmsErrors } from './errors.js';
import { KeyService } from './key-service.js';
import { createPeers, type PeerRegion } from './peers.js';
import { EtcdKeyStore, type EtcdStoreOptions } from './etcd-key-store.js';
import { FileKeyStore } from './file-key-store.js';
import type { KeyRecord, KeyStore } from './key-store.js';
import { authorize, principalArn, type Caller } from './access.js';
import { LocalRootKeyFile, type RootKeyProtector } from './root-key.js';
import { Pkcs11RootKey, type Pkcs11RootKeyOptions } from './root-pkcs11.js';
import { verifySigV4 } from './sigv4.js';
import { collectHeaders } from '../util/sigv4.js';
import { createHttpServer, type HttpRequest, type Reply } from './http-server.js';
import type { HttpRejection } from './http-parser.js';
import { answerJson, type WireInput } from './wire.js';
import { mkdirs } from '../util/durable.js';

export interface KeyServiceOptions {
  /** TCP port; 0 picks a free one. */
  port?: number;
  /** Listen address. Default 127.0.0.1. */
  host?: string;
  /** Where the key store (and, by default, the root key file and audit log) live. */
  dataDir: string;
  /** Path of the JSON configuration (region, account id, principals); or pass `config`. */
  configFile?: string;
  config?: KeyServiceConfig;
  /** Time for key lifecycle (deletion windows, rotation, import tokens). Default: the system clock. */
  clock?: Clock;
  /**
   * Time for the SigV4 clock-skew check. Default: the system clock, because
   * clients sign with real time even when tests move the lifecycle clock.
   */
  authClock?: Clock;
  /**
   * Serve HTTPS with this certificate and key (PEM). With `clientCa`, clients
   * must also present a certificate issued by that CA (mutual TLS); the
   * handshake fails otherwise, before any request is read.
   */
  tls?: { cert: string | Buffer; key: string | Buffer; clientCa?: string | Buffer };
  /**
   * Keep the state in an etcd cluster instead of `<dataDir>/kms-state.json`, so
   * several key-service processes serve the same keys. Access keys then live in
   * etcd too: the configuration's principals replace etcd's at start and on
   * `reload()`, and every node follows the change through its watch.
   */
  etcd?: EtcdStoreOptions;
  /**
   * Other regions' key services, for multi-region keys (ReplicateKey,
   * UpdatePrimaryRegion, rotation of a primary). Regions that replicate to
   * each other must share the root key.
   */
  peers?: Record<string, PeerRegion>;
  /** Protects stored key material. Default: a local root key file. */
  rootKey?: RootKeyProtector;
  /** Keep the root key in a PKCS#11 token (an HSM) instead of a file; the service logs in at start and out at close. */
  rootPkcs11?: Pkcs11RootKeyOptions;
  /** The local root key file. Default `<dataDir>/root.key`. */
  rootKeyFile?: string;
  /**
   * Create the root key (file, or token object) when it is missing. Default
   * true; `kms serve` passes false unless --create-root.
   */
  createRoot?: boolean;
  /** The audit log file. Default `<dataDir>/audit.log`. */
  auditFile?: string;
  /** Also write audit lines to stdout. */
  auditStdout?: boolean;
  /** Largest accepted request body. Default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * Deadlines against slow clients: a request head must be whole this long
   * after its first byte (default 10 s), its body this long after the head
   * (default 30 s); an idle keep-alive connection closes after `idleMs`
   * (default 5 s).
   */
  timeouts?: { headersMs?: number; bodyMs?: number; idleMs?: number };
  /** How often scheduled deletions and rotations are checked besides on each request. Default 60 s. */
  sweepIntervalMs?: number;
}

export interface RunningKeyService {
  url: string;
  port: number;
  /**
   * Re-reads access keys and policies (from `configFile`, or the given
   * configuration) without a restart; the CLI calls it on SIGHUP.
   */
  reload(config?: KeyServiceConfig): Promise<void>;
  close(): Promise<void>;
}

const SERVICE_PREFIX = 'TrentService.';
const JSON_CONTENT_TYPE = 'application/x-amz-json-1.1';

/** Starts vectorseal's AWS-KMS-compatible key service. */
export async function startKeyService(options: KeyServiceOptions): Promise<RunningKeyService> {
  if (options.config === undefined && options.configFile === undefined) {
    throw new InvalidArgumentError('startKeyService expected "config" or "configFile"');
  }
  const config = options.config !== undefined ? validateKeyServiceConfig(options.config) : await loadKeyServiceConfig(options.configFile!);
  await mkdirs(options.dataDir, 0o700);
  const clock = options.clock ?? systemClock;
  const authClock = options.authClock ?? systemClock;
  if (options.rootPkcs11 !== undefined && (options.rootKey !== undefined || options.rootKeyFile !== undefined)) {
    throw new InvalidArgumentError('startKeyService expected one root key: "rootPkcs11", "rootKey" or "rootKeyFile"');
  }
  const create = options.createRoot ?? true;
  const pkcs11Root =
    options.rootPkcs11 === undefined
      ? undefined
      : await Pkcs11RootKey.open({ ...options.rootPkcs11, create: (options.rootPkcs11.create ?? true) && create });
  const protector =
    options.rootKey ?? pkcs11Root ?? (await LocalRootKeyFile.open(options.rootKeyFile ?? join(options.dataDir, 'root.key'), { create }));
  const store: KeyStore = await (options.etcd !== undefined
    ? EtcdKeyStore.open(options.etcd, protector)
    : FileKeyStore.open(options.dataDir, protector)
  ).catch(async (err: unknown) => {
    await pkcs11Root?.close();
    throw err;
  });
  const service = new KeyService(
    store,
    config.region,
    config.accountId,
    clock,
    options.peers === undefined ? undefined : createPeers(options.peers),
  );
  const audit = await createAuditLog({
    file: options.auditFile ?? join(options.dataDir, 'audit.log'),
    stdout: options.auditStdout ?? false,
  });
  // With the file store the configuration is the source of access keys; with etcd, etcd is.
  let filePrincipals = new Map<string, PrincipalConfig>(config.principals.map((p) => [p.accessKeyId, p]));
  const principalFor = (id: string): PrincipalConfig | undefined => {
    if (options.etcd === undefined) return filePrincipals.get(id);
    const all = store.snapshot.principals;
    return Object.hasOwn(all, id) ? all[id] : undefined;
  };
  const publishPrincipals = async (next: KeyServiceConfig): Promise<void> => {
    if (options.etcd === undefined) {
      filePrincipals = new Map(next.principals.map((p) => [p.accessKeyId, p]));
      return;
    }
    await store.mutate((draft) => {
      for (const id of Object.keys(draft.principals)) delete draft.principals[id];
      for (const p of next.principals) draft.principals[p.accessKeyId] = structuredClone(p);
    });
  };
  try {
    if (options.etcd !== undefined) await publishPrincipals(config);
  } catch (err) {
    await store.close();
    await pkcs11Root?.close();
    throw err;
  }
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;

  const handle = (req: HttpRequest, reply: Reply): void => {
    const started = Date.now();
    const requestId = randomUUID();
    const entry: AuditRecord = { requestId, outcome: 'error', status: 500, durationMs: 0 };
    if (req.remoteAddress !== undefined) entry.remoteAddress = req.remoteAddress;
    const fail = (err: unknown): void => {
      const e = err instanceof KmsException ? err : kmsErrors.internal('An internal error occurred');
      entry.outcome = e.type === 'AccessDeniedException' ? 'denied' : 'error';
      // Only the exception name of unexpected faults is recorded: their messages are not vetted for secrets.
      entry.errorType = err instanceof KmsException ? e.type : `KMSInternalException:${(err as Error)?.name ?? 'unknown'}`;
      answer(reply, entry, started, e.status, JSON.stringify({ __type: e.type, message: e.message }), e.status === 405);
    };
    // One header map serves the signature check and every decision after it, so what is acted on is what was signed.
    const headers = collectHeaders(req.rawHeaders);
    const succeed = (output: WireInput): void => {
      try {
        entry.outcome = 'success';
        answer(reply, entry, started, 200, answerJson(output), false);
      } catch (err) {
        fail(err);
      }
    };
    let output: WireInput | Promise<WireInput>;
    try {
      output = serve(req, headers, entry);
    } catch (err) {
      fail(err);
      return;
    }
    // The crypto operations answer synchronously (no promise per request); the rest may wait.
    if (output instanceof Promise) output.then(succeed, fail);
    else succeed(output);
  };

  /** Answers once the audit line is written; if that fails the request is not acknowledged. */
  const answer = (reply: Reply, entry: AuditRecord, started: number, status: number, payload: string, allowPost: boolean): void => {
    entry.status = status;
    entry.durationMs = Date.now() - started;
    audit.record(entry, (err) => {
      if (err !== undefined) reply(500, responseHeaders(entry.requestId, false), AUDIT_FAILED, true);
      else reply(status, responseHeaders(entry.requestId, allowPost), payload);
    });
  };

  /** A request the transport refused (malformed, too large, too slow): audited and answered in the AWS error shape. */
  const refuse = (rejection: HttpRejection, remoteAddress: string | undefined, reply: Reply): void => {
    const entry: AuditRecord = { requestId: randomUUID(), outcome: 'error', status: 500, durationMs: 0 };
    if (remoteAddress !== undefined) entry.remoteAddress = remoteAddress;
    // An oversized body keeps the answer the service always gave it (400 ValidationException); the rest keep their HTTP status.
    const status = rejection.kind === 'body-too-large' ? 400 : rejection.status;
    const type = rejection.kind === 'timeout' ? 'RequestTimeoutException' : 'ValidationException';
    entry.errorType = type;
    answer(reply, entry, Date.now(), status, JSON.stringify({ __type: type, message: rejection.reason }), false);
  };

  /** The caller object of a principal, made once per principal record (a reload makes new records). */
  const callers = new WeakMap<PrincipalConfig, Caller>();
  const callerOf = (principal: PrincipalConfig): Caller => {
    let caller = callers.get(principal);
    if (caller === undefined) {
      caller = { name: principal.name, arn: principalArn(config.accountId, principal.name), policy: principal.policy };
      callers.set(principal, caller);
    }
    return caller;
  };

  const serve = (req: HttpRequest, headers: Map<string, string>, entry: AuditRecord): WireInput | Promise<WireInput> => {
    const target = headers.get('x-amz-target');
    if (typeof target === 'string' && target.startsWith(SERVICE_PREFIX)) entry.operation = target.slice(SERVICE_PREFIX.length);
    // Recorded before verification, so failed authentications name the access key that was tried.
    const tried = triedAccessKey(headers.get('authorization'));
    if (tried !== undefined) entry.accessKeyId = tried;

    // The protocol has one resource and one method; anything else is refused before the signature is checked.
    if (req.target !== '/') throw new KmsException('UnknownOperationException', 'Requests must be POST /', 404);
    if (req.method !== 'POST') throw new KmsException('UnknownOperationException', 'Requests must be POST /', 405);
    const body = req.body;
    const { accessKeyId } = verifySigV4(
      { method: req.method, url: req.target, rawHeaders: req.rawHeaders, body, headers },
      {
        region: config.region,
        service: 'kms',
        now: authClock.now(),
        secretFor: (id) => principalFor(id)?.secretAccessKey,
      },
    );
    const principal = principalFor(accessKeyId)!;
    entry.accessKeyId = accessKeyId;
    entry.principal = principal.name;
    if (principal.sessionToken !== undefined && !sameSecret(headers.get('x-amz-security-token'), principal.sessionToken)) {
      throw kmsErrors.unrecognizedClient('The security token included in the request is invalid.');
    }

    // Anything else is not this protocol's body, however it parses.
    if (!/^application\/x-amz-json-1\.[01]\s*(;|$)/i.test(headers.get('content-type') ?? '')) {
      throw kmsErrors.serialization(`Content-Type must be ${JSON_CONTENT_TYPE}`);
    }
    const operation = entry.operation;
    if (operation !== undefined && KeyService.isUnsupported(operation)) {
      throw kmsErrors.unsupportedOperation(`${operation} is not supported by this key service`);
    }
    if (operation === undefined || !service.supports(operation)) {
      throw kmsErrors.unknownOperation(`Operation ${operation ?? '(none)'} is not supported`);
    }
    const input = parseJson(body);

    store.assertFresh();
    // Something (a deletion, a rotation) falls due: rare, and only then does the request wait.
    if (service.sweepDue()) return service.sweep().then(() => authorizeAndRun(operation, input, principal, entry));
    return authorizeAndRun(operation, input, principal, entry);
  };

  /**
   * Policy, grants and the operation itself, on the current snapshot; records the targets in the audit entry.
   * A name that does not resolve (or a NotFoundException) may be a change another node committed that this
   * one's watch has not delivered yet: the request is then answered once more after a quorum read caught the
   * snapshot up, so what one node created every node finds at once. Handlers throw before they change state.
   */
  const authorizeAndRun = (
    operation: string,
    input: WireInput,
    principal: PrincipalConfig,
    entry: AuditRecord,
    caughtUp = false,
  ): WireInput | Promise<WireInput> => {
    const again = (): Promise<WireInput> | undefined =>
      caughtUp ? undefined : store.catchUp()?.then(() => authorizeAndRun(operation, input, principal, entry, true));
    const retryMissing = (err: unknown): WireInput | Promise<WireInput> => {
      const retry = err instanceof KmsException && err.type === 'NotFoundException' ? again() : undefined;
      if (retry === undefined) throw err;
      return retry;
    };
    const state = store.snapshot;
    const caller = callerOf(principal);
    const targets = service.targets(operation, input);
    if (targets.some((t) => t.keyId === undefined && (t.keyNames?.length ?? 0) > 0)) {
      const retry = again();
      if (retry !== undefined) return retry;
    }
    const arns = targets.map((t) => t.keyArn).filter((a): a is string => a !== undefined);
    if (arns.length > 0) entry.keyArns = arns;
    const context = targets.find((t) => t.encryptionContext !== undefined)?.encryptionContext;
    if (context !== undefined) entry.encryptionContext = context;
    for (const t of targets) {
      const key = t.keyId === undefined ? undefined : state.keys[t.keyId];
      if (!authorize(caller, t, key, state, config.accountId)) {
        const resource = t.keyArn ?? t.keyNames?.[0] ?? '*';
        throw kmsErrors.accessDenied(`User: ${principal.name} is not authorized to perform: kms:${t.operation} on resource: ${resource}`);
      }
    }
    const serviceCaller = {
      arn: caller.arn,
      may: (op: string, key: KeyRecord) =>
        authorize(
          caller,
          { operation: op, keyNames: [key.keyId, service.keyArn(key.keyId)], keyArn: service.keyArn(key.keyId) },
          key,
          store.snapshot,
          config.accountId,
        ),
    };
    let output: WireInput | Promise<WireInput>;
    try {
      output = service.run(operation, input, serviceCaller);
    } catch (err) {
      return retryMissing(err);
    }
    if (output instanceof Promise) output = output.catch(retryMissing);
    if (operation === 'CreateKey') {
      return Promise.resolve(output).then((created) => {
        const arn = (created.KeyMetadata as { Arn?: unknown } | undefined)?.Arn;
        if (typeof arn === 'string') entry.keyArns = [arn];
        return created;
      });
    }
    return output;
  };

  const http = createHttpServer({
    maxBodyBytes: maxBody,
    ...(options.timeouts?.headersMs === undefined ? {} : { headersTimeoutMs: options.timeouts.headersMs }),
    ...(options.timeouts?.bodyMs === undefined ? {} : { bodyTimeoutMs: options.timeouts.bodyMs }),
    ...(options.timeouts?.idleMs === undefined ? {} : { idleTimeoutMs: options.timeouts.idleMs }),
    ...(options.tls === undefined
      ? {}
      : {
          tls: {
            cert: options.tls.cert,
            key: options.tls.key,
            ...(options.tls.clientCa === undefined ? {} : { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: true }),
          },
        }),
    onRequest: handle,
    onReject: refuse,
  });
  const sweepTimer = setInterval(() => {
    service.sweep().catch(() => {
      audit.record({ requestId: 'sweep', outcome: 'error', errorType: 'SweepFailed', status: 500, durationMs: 0 });
    });
  }, options.sweepIntervalMs ?? 60_000);
  sweepTimer.unref();

  const host = options.host ?? '127.0.0.1';
  const address = await http.listen(options.port ?? 0, host).catch(async (err: unknown) => {
    clearInterval(sweepTimer);
    await store.close();
    await pkcs11Root?.close();
    await audit.close();
    throw err;
  });
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  return {
    url: `${options.tls ? 'https' : 'http'}://${urlHost}:${address.port}`,
    port: address.port,
    async reload(next) {
      const fresh =
        next !== undefined
          ? validateKeyServiceConfig(next)
          : options.configFile !== undefined
            ? await loadKeyServiceConfig(options.configFile)
            : undefined;
      if (fresh === undefined) throw new InvalidArgumentError('reload expected a configuration: the service was not started from a file');
      if (fresh.region !== config.region || fresh.accountId !== config.accountId) {
        throw new InvalidArgumentError('reload cannot change the region or account id; restart the service');
      }
      await publishPrincipals(fresh);
    },
    close() {
      closed ??= (async () => {
        clearInterval(sweepTimer);
        await http.close();
        await store.close();
        await pkcs11Root?.close();
        await audit.close();
      })();
      return closed;
    },
  };
}

const AUDIT_FAILED = JSON.stringify({ __type: 'KMSInternalException', message: 'The request could not be recorded in the audit log' });

/** The answer's headers: the request id, and for a 405 the one method there is. */
function responseHeaders(requestId: string, allowPost: boolean): string[] {
  return allowPost
    ? ['Content-Type', JSON_CONTENT_TYPE, 'x-amzn-RequestId', requestId, 'Allow', 'POST']
    : ['Content-Type', JSON_CONTENT_TYPE, 'x-amzn-RequestId', requestId];
}

function parseJson(body: Buffer): WireInput {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw kmsErrors.serialization('The request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw kmsErrors.serialization('The request body must be a JSON object');
  }
  return value as WireInput;
}

/** The access key id named in an Authorization header's Credential, when it looks like one. */
function triedAccessKey(authorization: string | undefined): string | undefined {
  const m = /Credential=([A-Za-z0-9]{1,128})\//.exec(authorization ?? '');
  return m?.[1];
}

function sameSecret(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
