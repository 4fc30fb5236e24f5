import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import type * as Pkcs11Js from 'pkcs11js';
import { importOptional } from '../util/optional-module.js';
import { AccessDeniedError, InvalidArgumentError, KeyProviderUnavailableError, UnsupportedOperationError } from '../errors.js';
import { ckrName, isKeyHandleGone, isNotLoggedIn, isSessionBroken, mapPkcs11Error } from './errors.js';
import { resolvePin, type PinSource } from './pin.js';
import { SerialQueue } from '../util/serial-queue.js';

/**
 * A logged-in connection to one PKCS#11 token, with a pool of sessions.
 *
 * PKCS#11 state is per process, not per object: a module is initialized once
 * (a second C_Initialize fails), and C_Login on one session logs every session
 * of the application into that token. So modules and tokens live in a
 * process-wide registry, reference counted: several providers (and the key
 * service's root key) on one token share one login and one session pool, and
 * the module is finalized when the last of them closes.
 *
 * Because a second C_Login only answers CKR_USER_ALREADY_LOGGED_IN without
 * checking the PIN, the registry keeps a keyed hash of the PIN that logged in
 * (under a random per-process key) and refuses a later opener whose PIN does
 * not match; otherwise a wrong PIN would work whenever a right one came first.
 *
 * Production tokens fail in ways a test token does not: a session is closed
 * under us (C_CloseAllSessions elsewhere in the process, a token reset), the
 * application is logged out (C_Logout elsewhere, an HSM failover), the device
 * errs. The pool checks each session before handing it out (alive, logged
 * in), drops a session an operation found broken, logs in again when the
 * token says the user is not logged in, and retries the operation once. A
 * re-login invalidates the object handles of private objects, so it bumps
 * `generation`; callers that cache key handles look them up again when it
 * changed. The last close waits for operations still holding a session
 * before it logs out and finalizes the module.
 */

export type Pkcs11Lib = typeof Pkcs11Js;
export type Handle = Pkcs11Js.Handle;
export type PKCS11 = Pkcs11Js.PKCS11;

export interface Pkcs11TokenOptions extends PinSource {
  /** Path of the PKCS#11 library (`/usr/lib/softhsm/libsofthsm2.so`, the HSM vendor's module). */
  module: string;
  /** The token's label. Either this or `slot`. */
  token?: string;
  /** The slot id (as `pkcs11-tool -L` or `softhsm2-util --show-slots` print it), when no label is given. */
  slot?: number;
  /** Most sessions open at once on this token (concurrent operations). Default 8. */
  maxSessions?: number;
}

export interface TokenDescription {
  label: string;
  serialNumber: string;
  manufacturer: string;
  model: string;
  slot: string;
}

interface ModuleState {
  lib: Pkcs11Lib;
  p11: PKCS11;
  refs: number;
  /** False when something else in the process initialized the module: then we never finalize it. */
  ownsInit: boolean;
}

interface TokenState {
  key: string;
  module: ModuleState;
  modulePath: string;
  slot: Handle;
  info: TokenDescription;
  refs: number;
  /** Held open for the life of the login: closing the last session of a token logs the application out. */
  loginSession: Handle;
  pinTag: Buffer;
  idle: Handle[];
  open: number;
  max: number;
  waiters: Array<{ resolve: (session: Handle) => void; reject: (err: unknown) => void }>;
  /** Set once the last opener closed: sessions still out are closed on return. */
  dead: boolean;
  /** Where the PIN comes from, for logging in again; holds the PIN itself only when the caller passed it directly. */
  pinSource: PinSource;
  /** Bumped on every re-login: object handles from before are invalid. */
  generation: number;
  /** Sessions handed out and not yet returned (operations in flight). */
  busy: number;
  /** Resolves the last close's wait once `busy` reaches zero. */
  drained: (() => void) | undefined;
  relogin: Promise<void> | undefined;
}

const modules = new Map<string, ModuleState>();
const tokens = new Map<string, TokenState>();
/** Serializes registry changes so that two opens of one token do not both log in. */
const registryQueue = new SerialQueue();
const pinKey = randomBytes(32);

async function loadLibrary(): Promise<Pkcs11Lib> {
  // An optional peer dependency: loaded (and required) only when a PKCS#11 token is used.
  const mod = await importOptional<Pkcs11Lib & { default?: Pkcs11Lib }>('pkcs11js', 'the pkcs11 key provider');
  return mod.default ?? mod;
}

async function acquireModule(path: string): Promise<ModuleState> {
  const existing = modules.get(path);
  if (existing) {
    existing.refs += 1;
    return existing;
  }
  const lib = await loadLibrary();
  const p11 = new lib.PKCS11();
  try {
    p11.load(path);
  } catch (cause) {
    throw new KeyProviderUnavailableError(`PKCS#11 module ${path} could not be loaded`, { cause });
  }
  let ownsInit = true;
  try {
    // OS locking: operations run on libuv worker threads, so the module must lock for itself.
    p11.C_Initialize({ flags: lib.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (ckrName(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      closeQuietly(() => p11.close());
      throw mapPkcs11Error(err, `C_Initialize of module ${path}`);
    }
    ownsInit = false;
  }
  const state: ModuleState = { lib, p11, refs: 1, ownsInit };
  modules.set(path, state);
  return state;
}

function releaseModule(path: string, state: ModuleState): void {
  state.refs -= 1;
  if (state.refs > 0) return;
  modules.delete(path);
  if (state.ownsInit) closeQuietly(() => state.p11.C_Finalize());
  closeQuietly(() => state.p11.close());
}

function closeQuietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // Tearing down: the token may already be gone, and there is nobody to tell.
  }
}

function trimPadded(value: string): string {
  return value.replace(/[\s\0]+$/, '');
}

function slotNumber(slot: Handle): bigint {
  return slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0));
}

function findSlot(module: ModuleState, options: Pkcs11TokenOptions): { slot: Handle; info: TokenDescription } {
  let slots: Handle[];
  try {
    slots = module.p11.C_GetSlotList(true);
  } catch (err) {
    throw mapPkcs11Error(err, `C_GetSlotList of module ${options.module}`);
  }
  const seen: string[] = [];
  for (const slot of slots) {
    let info: Pkcs11Js.TokenInfo;
    try {
      info = module.p11.C_GetTokenInfo(slot);
    } catch {
      continue;
    }
    const label = trimPadded(info.label);
    seen.push(label);
    const id = slotNumber(slot);
    const matches = options.token !== undefined ? label === options.token : BigInt(options.slot as number) === id;
    // An uninitialized token has a blank label; it can never be ours.
    if (matches && (info.flags & module.lib.CKF_TOKEN_INITIALIZED) !== 0) {
      return {
        slot,
        info: {
          label,
          serialNumber: trimPadded(info.serialNumber),
          manufacturer: trimPadded(info.manufacturerID),
          model: trimPadded(info.model),
          slot: id.toString(),
        },
      };
    }
  }
  const wanted = options.token !== undefined ? `token "${options.token}"` : `slot ${options.slot}`;
  const labels = seen.filter(Boolean).map((l) => `"${l}"`);
  throw new KeyProviderUnavailableError(
    `PKCS#11 ${wanted} is not present in module ${options.module} (tokens present: ${labels.length ? labels.join(', ') : 'none'})`,
  );
}

function pinTag(pin: string): Buffer {
  return createHmac('sha256', pinKey).update(pin, 'utf8').digest();
}

async function acquireToken(options: Pkcs11TokenOptions): Promise<TokenState> {
  const pin = await resolvePin(options);
  const module = await acquireModule(options.module);
  try {
    const { slot, info } = findSlot(module, options);
    const key = `${options.module}\0${info.slot}`;
    const existing = tokens.get(key);
    if (existing) {
      if (!timingSafeEqual(existing.pinTag, pinTag(pin))) {
        throw new AccessDeniedError(
          `PKCS#11 login to token "${info.label}" refused: the PIN differs from the one this process logged in with`,
        );
      }
      existing.refs += 1;
      releaseModule(options.module, module); // the token state already holds a module reference
      return existing;
    }
    let loginSession: Handle;
    try {
      loginSession = module.p11.C_OpenSession(slot, module.lib.CKF_SERIAL_SESSION | module.lib.CKF_RW_SESSION);
    } catch (err) {
      throw mapPkcs11Error(err, `C_OpenSession on token "${info.label}"`);
    }
    try {
      module.p11.C_Login(loginSession, module.lib.CKU_USER, pin);
    } catch (err) {
      // Logged in by something else in this process (another library): we cannot check the PIN, so refuse.
      closeQuietly(() => module.p11.C_CloseSession(loginSession));
      if (ckrName(err) === 'CKR_USER_ALREADY_LOGGED_IN') {
        throw new AccessDeniedError(`PKCS#11 token "${info.label}" is already logged in by other code in this process`, { cause: err });
      }
      throw mapPkcs11Error(err, `C_Login to token "${info.label}"`);
    }
    const state: TokenState = {
      key,
      module,
      modulePath: options.module,
      slot,
      info,
      refs: 1,
      loginSession,
      pinTag: pinTag(pin),
      idle: [],
      open: 0,
      max: options.maxSessions ?? 8,
      waiters: [],
      dead: false,
      pinSource: pinSourceOf(options),
      generation: 0,
      busy: 0,
      drained: undefined,
      relogin: undefined,
    };
    tokens.set(key, state);
    return state;
  } catch (err) {
    releaseModule(options.module, module);
    throw err;
  }
}

function pinSourceOf(options: PinSource): PinSource {
  if (options.pin !== undefined) return { pin: options.pin };
  if (options.pinEnv !== undefined) return { pinEnv: options.pinEnv };
  return { pinFile: options.pinFile as string };
}

async function releaseToken(state: TokenState): Promise<void> {
  state.refs -= 1;
  if (state.refs > 0) return;
  tokens.delete(state.key);
  state.dead = true;
  for (const w of state.waiters.splice(0))
    w.reject(new KeyProviderUnavailableError(`PKCS#11 token "${state.info.label}" connection is closed`));
  // Finalizing the module under an operation that still holds a session would fail it (or crash the module).
  if (state.busy > 0) await new Promise<void>((resolve) => (state.drained = resolve));
  for (const s of state.idle) closeQuietly(() => state.module.p11.C_CloseSession(s));
  state.idle = [];
  closeQuietly(() => state.module.p11.C_Logout(state.loginSession));
  closeQuietly(() => state.module.p11.C_CloseSession(state.loginSession));
  releaseModule(state.modulePath, state.module);
}

/** CKS_RO_USER_FUNCTIONS (1) and CKS_RW_USER_FUNCTIONS (3): the session is logged in as the user. */
function isUserState(state: number): boolean {
  return state === 1 || state === 3;
}

function serialized<T>(fn: () => Promise<T>): Promise<T> {
  return registryQueue.run(fn);
}

/** One opener's handle on a shared token connection. */
export class Pkcs11Token {
  private closed = false;

  private constructor(private readonly state: TokenState) {}

  /**
   * Opens (or joins) the logged-in connection to a token. Token absent →
   * KeyProviderUnavailableError; wrong PIN → AccessDeniedError.
   */
  static async open(options: Pkcs11TokenOptions): Promise<Pkcs11Token> {
    if (typeof options?.module !== 'string' || options.module.length === 0) {
      throw new InvalidArgumentError('"module" expected the path of a PKCS#11 library');
    }
    if ((options.token === undefined) === (options.slot === undefined)) {
      throw new InvalidArgumentError('a PKCS#11 token expected exactly one of "token" (its label) or "slot"');
    }
    if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length === 0 || options.token.length > 32)) {
      throw new InvalidArgumentError('"token" expected a token label of 1-32 characters');
    }
    if (options.slot !== undefined && (!Number.isSafeInteger(options.slot) || options.slot < 0)) {
      throw new InvalidArgumentError(`"slot" expected a non-negative integer, got ${String(options.slot)}`);
    }
    if (options.maxSessions !== undefined && (!Number.isSafeInteger(options.maxSessions) || options.maxSessions < 1)) {
      throw new InvalidArgumentError(`"maxSessions" expected a positive integer, got ${String(options.maxSessions)}`);
    }
    // One registry entry per library file, however it is named (symlinks, relative paths).
    const module = await realpath(options.module).catch(() => options.module);
    return new Pkcs11Token(await serialized(() => acquireToken({ ...options, module })));
  }

  /** The pkcs11js module: constants (CKA_, CKM_, ...) and classes. */
  get lib(): Pkcs11Lib {
    return this.state.module.lib;
  }

  get p11(): PKCS11 {
    return this.state.module.p11;
  }

  get info(): TokenDescription {
    return this.state.info;
  }

  /** Changes whenever the token was logged in again: key handles found before are invalid. */
  get generation(): number {
    return this.state.generation;
  }

  /** The slot handle, for calls that take one (C_GetMechanismList, C_CloseAllSessions). */
  get slot(): Handle {
    return this.state.slot;
  }

  /** Throws UnsupportedOperationError unless the token offers every mechanism named. */
  requireMechanisms(names: Array<keyof Pkcs11Lib & `CKM_${string}`>): void {
    let list: number[];
    try {
      list = this.p11.C_GetMechanismList(this.state.slot);
    } catch (err) {
      throw mapPkcs11Error(err, `C_GetMechanismList on token "${this.info.label}"`);
    }
    const missing = names.filter((n) => !list.includes(this.lib[n] as number));
    if (missing.length > 0) {
      throw new UnsupportedOperationError(`PKCS#11 token "${this.info.label}" does not support ${missing.join(', ')}`);
    }
  }

  /**
   * Runs `fn` on a session of its own (a session holds one operation at a
   * time). The session is alive and logged in when `fn` gets it. If `fn`
   * fails because the session broke, or because the token logged the
   * application out, the session is dropped (or the token logged in again)
   * and `fn` runs once more on a fresh session; `fn` must therefore look up
   * key handles itself when `generation` changed.
   */
  async withSession<T>(fn: (session: Handle) => Promise<T> | T): Promise<T> {
    let retried = false;
    for (;;) {
      const session = await this.acquire();
      let broken = false;
      let dirty = false;
      try {
        return await fn(session);
      } catch (err) {
        broken = isSessionBroken(err);
        // A session whose call failed half-way may still hold an active operation (CKR_OPERATION_ACTIVE for
        // the next user): it is closed rather than pooled. Opening a session is cheap; a poisoned pool is not.
        dirty = true;
        const loggedOut = !broken && (isNotLoggedIn(err) || (isKeyHandleGone(err) && !this.isLoggedIn(session)));
        if (retried || (!broken && !loggedOut)) throw err;
        retried = true;
        // One session closed from outside usually means all of them were (C_CloseAllSessions, a reset).
        if (broken) this.dropIdle();
        if (loggedOut) await this.relogin();
      } finally {
        this.release(session, broken || dirty);
      }
    }
  }

  /** Leaves the connection; the last one out logs out and finalizes the module. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await serialized(() => releaseToken(this.state));
  }

  private async acquire(): Promise<Handle> {
    const s = this.state;
    // Bounded: every pooled session may have been closed from outside, plus one fresh one.
    for (let attempt = 0; attempt <= s.max + 1; attempt++) {
      const session = await this.take();
      s.busy += 1;
      let state: number;
      try {
        state = Number(s.module.p11.C_GetSessionInfo(session).state);
      } catch (err) {
        this.release(session, true);
        if (isSessionBroken(err)) continue;
        throw mapPkcs11Error(err, `C_GetSessionInfo on token "${s.info.label}"`);
      }
      if (!isUserState(state)) {
        try {
          await this.relogin();
        } catch (err) {
          this.release(session, false);
          throw err;
        }
      }
      return session;
    }
    throw new KeyProviderUnavailableError(`PKCS#11 token "${s.info.label}" keeps closing new sessions`);
  }

  private take(): Promise<Handle> {
    const s = this.state;
    if (this.closed || s.dead)
      return Promise.reject(new KeyProviderUnavailableError(`PKCS#11 token "${s.info.label}" connection is closed`));
    const idle = s.idle.pop();
    if (idle !== undefined) return Promise.resolve(idle);
    if (s.open < s.max) {
      try {
        return Promise.resolve(this.openSession());
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => s.waiters.push({ resolve, reject }));
  }

  private isLoggedIn(session: Handle): boolean {
    const { p11 } = this.state.module;
    try {
      return isUserState(Number(p11.C_GetSessionInfo(session).state));
    } catch {
      return false;
    }
  }

  /** Closes every idle session (they may all be dead); busy ones are checked on return. */
  private dropIdle(): void {
    const s = this.state;
    for (const idle of s.idle.splice(0)) {
      s.open -= 1;
      closeQuietly(() => s.module.p11.C_CloseSession(idle));
    }
  }

  /**
   * Logs the application in again with the PIN from its source (re-read: a
   * PIN file is opened and checked again). One re-login at a time per token;
   * concurrent callers wait for it.
   */
  private relogin(): Promise<void> {
    const s = this.state;
    s.relogin ??= (async () => {
      const pin = await resolvePin(s.pinSource);
      const { p11, lib } = s.module;
      try {
        p11.C_GetSessionInfo(s.loginSession);
      } catch {
        // The login session was closed too: the login is held by a fresh one.
        try {
          s.loginSession = p11.C_OpenSession(s.slot, lib.CKF_SERIAL_SESSION | lib.CKF_RW_SESSION);
        } catch (err) {
          throw mapPkcs11Error(err, `C_OpenSession on token "${s.info.label}"`);
        }
      }
      try {
        p11.C_Login(s.loginSession, lib.CKU_USER, pin);
      } catch (err) {
        if (ckrName(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw mapPkcs11Error(err, `re-login to token "${s.info.label}"`);
      }
      s.generation += 1;
    })().finally(() => {
      s.relogin = undefined;
    });
    return s.relogin;
  }

  private openSession(): Handle {
    const s = this.state;
    try {
      const session = s.module.p11.C_OpenSession(s.slot, s.module.lib.CKF_SERIAL_SESSION | s.module.lib.CKF_RW_SESSION);
      s.open += 1;
      return session;
    } catch (err) {
      throw mapPkcs11Error(err, `C_OpenSession on token "${s.info.label}"`);
    }
  }

  private release(session: Handle, broken: boolean): void {
    const s = this.state;
    s.busy -= 1;
    if (broken || s.dead) {
      s.open -= 1;
      closeQuietly(() => s.module.p11.C_CloseSession(session));
      if (s.dead) {
        if (s.busy === 0) s.drained?.();
        return;
      }
      // A waiter gets a fresh session in place of the broken one.
      const waiter = s.waiters.shift();
      if (waiter) {
        try {
          waiter.resolve(this.openSession());
        } catch (err) {
          waiter.reject(err);
        }
      }
      return;
    }
    const waiter = s.waiters.shift();
    if (waiter) waiter.resolve(session);
    else s.idle.push(session);
  }
}
