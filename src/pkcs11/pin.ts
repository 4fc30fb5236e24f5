import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';

/**
 * Where a token's user PIN comes from. Exactly one of the three. The PIN is
 * read when the token is opened, used for C_Login, and not kept: it never
 * goes into a log line, an error message or the keyring.
 */
export interface PinSource {
  /** The PIN itself, for programs that fetch it from a secret store. */
  pin?: string;
  /** Name of an environment variable holding the PIN. */
  pinEnv?: string;
  /** A file holding the PIN (owned by this process's user, mode 0600 or stricter; one trailing newline is ignored). */
  pinFile?: string;
}

/** Resolves a PIN source to the PIN. Errors name the source, never the value. */
export async function resolvePin(source: PinSource): Promise<string> {
  const given = [source.pin, source.pinEnv, source.pinFile].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new InvalidArgumentError(`a PKCS#11 PIN expected exactly one of "pin", "pinEnv" or "pinFile", got ${given}`);
  }
  let pin: string;
  if (source.pin !== undefined) {
    if (typeof source.pin !== 'string') throw new InvalidArgumentError(`"pin" expected a string, got ${typeof source.pin}`);
    pin = source.pin;
  } else if (source.pinEnv !== undefined) {
    const value = process.env[source.pinEnv];
    if (value === undefined) throw new InvalidArgumentError(`PIN environment variable ${source.pinEnv} is not set`);
    pin = value;
  } else {
    pin = (await readPinFile(source.pinFile as string)).replace(/\r?\n$/, '');
  }
  if (pin.length === 0) throw new InvalidArgumentError('the PKCS#11 PIN is empty');
  return pin;
}

/**
 * Reads a PIN file through one descriptor: the owner and mode are checked on
 * that descriptor (fstat), so the file that was checked is the file that is
 * read, even if the path is swapped in between. A file owned by another user
 * is refused like one readable by others: that user can rewrite the PIN.
 */
async function readPinFile(file: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOCTTY);
  } catch (err) {
    throw new InvalidArgumentError(`PIN file ${file} is not readable`, { cause: err });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new InvalidArgumentError(`PIN file ${file} is not a regular file`);
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      throw new InvalidArgumentError(`PIN file ${file} must be owned by the user running vectorseal (uid ${uid}), not uid ${st.uid}`);
    }
    // A PIN readable by other users is as good as published; refuse rather than use it.
    if ((st.mode & 0o077) !== 0) {
      throw new InvalidArgumentError(`PIN file ${file} must not be accessible to group or others (chmod 600)`);
    }
    if (st.size > 4096) throw new InvalidArgumentError(`PIN file ${file} is larger than 4096 bytes`);
    return await handle.readFile('utf8');
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(`PIN file ${file} is not readable`, { cause: err });
  } finally {
    await handle.close();
  }
}
