import { closeSync, constants, fsyncSync, openSync, promises as fs, unlinkSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/**
 * How a file is opened for writing:
 * - `create`: a new file that must not exist (O_CREAT | O_EXCL);
 * - `truncate`: created or emptied (O_CREAT | O_TRUNC);
 * - `append`: every write goes to the end (O_APPEND), `appendCreate` also creates it;
 * - `write`: an existing file, written in place.
 */
export type OpenMode = 'create' | 'truncate' | 'append' | 'appendCreate' | 'write';

/** A file open for writing through the file layer. Nothing it writes is durable before `fsync`/`fdatasync`. */
export interface DurableFile {
  readonly path: string;
  /** Writes all of `data` at the file's offset (the end, for an append handle). */
  write(data: Uint8Array): Promise<void>;
  /** Writes all of `data` at `position`, leaving the offset alone. */
  pwrite(data: Uint8Array, position: number): Promise<void>;
  /** `write` for callers that cannot wait (the audit trail's synchronous lines). */
  writeSync(data: Uint8Array): void;
  /** Cuts or extends the file to `length` bytes. */
  truncate(length: number): Promise<void>;
  fsync(): Promise<void>;
  fdatasync(): Promise<void>;
  fsyncSync(): void;
  close(): Promise<void>;
  closeSync(): void;
}

/**
 * The one way vectorseal changes files it keeps. Everything durable goes
 * through here so that a test can swap in a layer that forgets what a power
 * cut would forget (see fault-file-layer.ts). Reads stay on node:fs: they
 * change nothing.
 */
export interface FileLayer {
  open(path: string, mode: OpenMode, perm?: number): Promise<DurableFile>;
  openSync(path: string, mode: OpenMode, perm?: number): DurableFile;
  rename(from: string, to: string): Promise<void>;
  link(existing: string, newPath: string): Promise<void>;
  /** Removes a file; ENOENT when it is not there. */
  unlink(path: string): Promise<void>;
  /** `unlink` for an exit handler. */
  unlinkSync(path: string): void;
  /** Creates one directory; EEXIST when it is there. */
  mkdir(path: string, perm?: number): Promise<void>;
  /** Removes an empty directory. */
  rmdir(path: string): Promise<void>;
  chmod(path: string, perm: number): Promise<void>;
  /** Makes the entries of `dir` (creations, renames, unlinks) durable. */
  fsyncDir(dir: string): Promise<void>;
}

const FLAGS: Record<OpenMode, number> = {
  create: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
  truncate: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
  append: constants.O_WRONLY | constants.O_APPEND,
  appendCreate: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
  write: constants.O_WRONLY,
};

/** The open(2) flags of a mode, for layers built over the real file system. */
export function openFlags(mode: OpenMode): number {
  return FLAGS[mode];
}

class RealFile implements DurableFile {
  private offset = 0;
  constructor(
    readonly path: string,
    private readonly handle: FileHandle | undefined,
    private readonly fd: number,
    /** O_APPEND: the kernel puts every write at the end, so no offset is passed. */
    private readonly append: boolean,
  ) {}

  private at(): number | null {
    return this.append ? null : this.offset;
  }

  async write(data: Uint8Array): Promise<void> {
    // A positionless write on an append handle goes to the end; elsewhere the layer keeps the offset.
    for (let done = 0; done < data.length; ) {
      const { bytesWritten } = await this.h().write(data, done, data.length - done, this.at());
      done += bytesWritten;
      this.offset += bytesWritten;
    }
  }

  async pwrite(data: Uint8Array, position: number): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const { bytesWritten } = await this.h().write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  }

  writeSync(data: Uint8Array): void {
    for (let done = 0; done < data.length; ) {
      const n = writeSync(this.fd, data, done, data.length - done, this.at());
      done += n;
      this.offset += n;
    }
  }

  truncate(length: number): Promise<void> {
    return this.h().truncate(length);
  }

  fsync(): Promise<void> {
    return this.handle === undefined ? Promise.resolve(fsyncSync(this.fd)) : this.handle.sync();
  }

  fdatasync(): Promise<void> {
    return this.handle === undefined ? Promise.resolve(fsyncSync(this.fd)) : this.handle.datasync();
  }

  fsyncSync(): void {
    fsyncSync(this.fd);
  }

  close(): Promise<void> {
    return this.handle === undefined ? Promise.resolve(closeSync(this.fd)) : this.handle.close();
  }

  closeSync(): void {
    closeSync(this.fd);
  }

  private h(): FileHandle {
    if (this.handle === undefined) throw new Error(`${this.path} was opened synchronously`);
    return this.handle;
  }
}

const isAppend = (mode: OpenMode): boolean => mode === 'append' || mode === 'appendCreate';

async function openReal(path: string, mode: OpenMode, perm: number): Promise<DurableFile> {
  const handle = await fs.open(path, FLAGS[mode], perm);
  return new RealFile(path, handle, handle.fd, isAppend(mode));
}

/** The layer over the real file system. */
export const realFileLayer: FileLayer = {
  open: (path, mode, perm = 0o600) => openReal(path, mode, perm),
  openSync(path, mode, perm = 0o600) {
    return new RealFile(path, undefined, openSync(path, FLAGS[mode], perm), isAppend(mode));
  },
  rename: (from, to) => fs.rename(from, to),
  link: (existing, newPath) => fs.link(existing, newPath),
  unlink: (path) => fs.unlink(path),
  unlinkSync: (path) => unlinkSync(path),
  mkdir: async (path, perm = 0o700) => {
    await fs.mkdir(path, { mode: perm });
  },
  rmdir: (path) => fs.rmdir(path),
  chmod: (path, perm) => fs.chmod(path, perm),
  async fsyncDir(dir) {
    const handle = await fs.open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

let current: FileLayer = realFileLayer;

/** The file layer in use (the real one, unless a test swapped it). */
export function fileLayer(): FileLayer {
  return current;
}

/** Swaps the file layer (tests only); returns a function that puts the previous one back. */
export function useFileLayer(layer: FileLayer): () => void {
  const previous = current;
  current = layer;
  return () => {
    current = previous;
  };
}
