import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { realFileLayer, type DurableFile, type FileLayer, type OpenMode } from './file-layer.js';

/**
 * A file layer for power-cut tests. It changes the real files (so every read
 * sees what a running process would see) and keeps, beside them, a model of
 * what the disk holds durably under `root`:
 * - a file's data is durable up to its last fsync/fdatasync; writes since
 *   then are pending;
 * - a directory's entries (creations, renames, links, unlinks) are durable up
 *   to its last directory fsync; changes since then are pending. An fsync of a
 *   file does not make its name durable (POSIX does not promise it, whatever
 *   ext4 does).
 *
 * The layer counts every durable operation. At operation `cutAt` the power
 * goes: that operation and every later one throws PowerCutError, and the
 * model freezes. `materialize()` then rewrites `root` as a disk could be left:
 * each file with pending writes keeps a prefix of them, the next one torn at
 * a sector boundary (often none: unsynced data dropped); each directory keeps
 * a prefix of its pending changes (often none: undone). Paths outside `root`
 * pass straight through to the real layer.
 *
 * `failFsync` makes the fsync/fdatasync of chosen files fail with EIO, as a
 * failing disk does (no real disk here can be made to): the call is counted,
 * nothing becomes durable, and the pending writes stay pending (a power cut
 * afterwards drops them, as Linux may drop the pages of a failed fsync).
 */
export class FaultFileLayer implements FileLayer {
  /** Durable operations under root so far. */
  ops = 0;
  /** The operation the power went at (a short label), once it has. */
  cutOp: string | undefined;
  private readonly root: string;
  private readonly rootNode: DirNode;
  private readonly cutAt: number;
  private readonly random: () => number;
  private readonly byIno = new Map<number, FileNode>();
  private inflight = 0;
  private queue: Promise<void> = Promise.resolve();
  /** Handles opened and not closed yet (closed at the cut by `materialize`). */
  readonly openFiles = new Set<FaultFile>();
  private readonly labels: string[] | undefined;
  private readonly crash: CrashMode;
  private readonly failFsync: ((relPath: string) => boolean) | undefined;

  constructor(options: {
    root: string;
    cutAt?: number;
    seed?: number;
    trace?: boolean;
    crash?: CrashMode;
    /** Which files' fsyncs fail with EIO (given the path relative to root, '/'-separated). */
    failFsync?: (relPath: string) => boolean;
  }) {
    this.crash = options.crash ?? 'random';
    this.failFsync = options.failFsync;
    this.root = resolve(options.root);
    this.rootNode = newDir(this.root, lstatSync(this.root).mode & 0o7777);
    this.cutAt = options.cutAt ?? Number.POSITIVE_INFINITY;
    this.random = mulberry32(options.seed ?? 1);
    this.labels = options.trace === true ? [] : undefined;
  }

  /** Whether the power has gone. */
  get cut(): boolean {
    return this.cutOp !== undefined;
  }

  /** The label of every operation so far (with `trace: true`). */
  get trace(): readonly string[] {
    return this.labels ?? [];
  }

  // Each operation changes the model before the real call (so that operations running
  // at the same time see each other, as they do on the real disk) and takes the change
  // back when the real call fails. After the cut the model no longer changes.

  async open(path: string, mode: OpenMode, perm = 0o600): Promise<DurableFile> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.open(path, mode, perm);
    const { node, undo } = this.openModel(at, path, mode, perm);
    const real = await this.attempt(undo, () => realFileLayer.open(path, mode, perm));
    return this.track(new FaultFile(this, node, real, mode === 'append' || mode === 'appendCreate'));
  }

  openSync(path: string, mode: OpenMode, perm = 0o600): DurableFile {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.openSync(path, mode, perm);
    const { node, undo } = this.openModel(at, path, mode, perm);
    const real = this.attemptSync(undo, () => realFileLayer.openSync(path, mode, perm));
    return this.track(new FaultFile(this, node, real, mode === 'append' || mode === 'appendCreate'));
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.locate(from);
    const dst = this.locate(to);
    if (src === undefined && dst === undefined) return realFileLayer.rename(from, to);
    if (src === undefined || dst === undefined) throw new Error(`fault layer: rename across its root (${from} -> ${to})`);
    this.step(`rename ${this.rel(from)} -> ${this.rel(to)}`);
    const node = this.nodeAt(src);
    const sp = src.parent;
    const dp = dst.parent;
    if (node === undefined || sp === undefined || dp === undefined) return this.diverged(() => realFileLayer.rename(from, to), from);
    this.captureDeep(node);
    const over = this.nodeAt(dst);
    if (over !== undefined) this.captureDeep(over);
    const undo =
      sp === dp
        ? this.changeEntries(sp, { t: 'mv', from: src.name, to: dst.name, node })
        : chain(this.changeEntries(sp, { t: 'del', name: src.name }), this.changeEntries(dp, { t: 'set', name: dst.name, node }));
    await this.attempt(undo, () => realFileLayer.rename(from, to));
  }

  async link(existing: string, newPath: string): Promise<void> {
    const src = this.locate(existing);
    const dst = this.locate(newPath);
    if (src === undefined && dst === undefined) return realFileLayer.link(existing, newPath);
    if (src === undefined || dst === undefined) throw new Error(`fault layer: link across its root (${existing} -> ${newPath})`);
    this.step(`link ${this.rel(existing)} -> ${this.rel(newPath)}`);
    const node = this.nodeAt(src);
    const dp = dst.parent;
    if (node === undefined || dp === undefined || this.nodeAt(dst) !== undefined)
      return this.diverged(() => realFileLayer.link(existing, newPath), newPath);
    this.captureDeep(node);
    await this.attempt(this.changeEntries(dp, { t: 'set', name: dst.name, node }), () => realFileLayer.link(existing, newPath));
  }

  async unlink(path: string): Promise<void> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.unlink(path);
    const undo = this.removeModel(at, `unlink ${this.rel(path)}`);
    if (undo === undefined) return this.diverged(() => realFileLayer.unlink(path), path);
    await this.attempt(undo, () => realFileLayer.unlink(path));
  }

  unlinkSync(path: string): void {
    const at = this.locate(path);
    if (at === undefined) {
      realFileLayer.unlinkSync(path);
      return;
    }
    const undo = this.removeModel(at, `unlink ${this.rel(path)}`);
    if (undo === undefined) {
      realFileLayer.unlinkSync(path);
      throw new Error(`fault layer: ${path} changed but is not in the model`);
    }
    this.attemptSync(undo, () => realFileLayer.unlinkSync(path));
  }

  async mkdir(path: string, perm = 0o700): Promise<void> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.mkdir(path, perm);
    this.step(`mkdir ${this.rel(path)}`);
    const parent = at.parent;
    if (parent === undefined || this.nodeAt(at) !== undefined) return this.diverged(() => realFileLayer.mkdir(path, perm), path);
    const node = newDir(path, perm);
    node.entries = new Map();
    node.durable = new Map();
    await this.attempt(this.changeEntries(parent, { t: 'set', name: at.name, node }), () => realFileLayer.mkdir(path, perm));
  }

  async rmdir(path: string): Promise<void> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.rmdir(path);
    const undo = this.removeModel(at, `rmdir ${this.rel(path)}`);
    if (undo === undefined) return this.diverged(() => realFileLayer.rmdir(path), path);
    await this.attempt(undo, () => realFileLayer.rmdir(path));
  }

  async chmod(path: string, perm: number): Promise<void> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.chmod(path, perm);
    this.step(`chmod ${this.rel(path)}`);
    const node = this.nodeAt(at);
    await this.run(() => realFileLayer.chmod(path, perm));
    // Permission bits are kept as set: the harness studies data and names, not metadata.
    if (!this.cut && node !== undefined) node.mode = perm;
  }

  async fsyncDir(dir: string): Promise<void> {
    const at = this.locate(dir);
    if (at === undefined) return realFileLayer.fsyncDir(dir);
    this.step(`fsync dir ${this.rel(dir) || '.'}`);
    const node = this.nodeAt(at);
    if (node?.kind !== 'dir') return this.diverged(() => realFileLayer.fsyncDir(dir), dir);
    const entries = this.entries(node);
    const before = { durable: node.durable, log: node.log };
    node.durable = new Map(entries);
    node.log = [];
    await this.attempt(
      () => {
        node.durable = before.durable;
        node.log = before.log;
      },
      () => realFileLayer.fsyncDir(dir),
    );
  }

  /** Waits until no real operation started before the cut is still running. */
  async settle(): Promise<void> {
    for (let i = 0; i < 10_000 && this.inflight > 0; i++) await new Promise((r) => setImmediate(r));
    if (this.inflight > 0) throw new Error('fault layer: operations still running after the cut');
  }

  /**
   * Rewrites `root` as the disk could hold it after the power went now
   * (or at the cut). Call once, after `settle()`, with nothing else writing.
   */
  materialize(): void {
    this.cutOp ??= 'end';
    // The process the handles belonged to is gone: close them (closing is not a durable operation).
    for (const f of this.openFiles) f.closeQuietly();
    this.openFiles.clear();
    const image = this.imageOf(this.rootNode, new Map());
    if (image.kind !== 'dir') throw new Error('fault layer: root is not a directory');
    for (const name of readdirSync(this.root)) rmSync(join(this.root, name), { recursive: true, force: true });
    for (const [name, child] of image.entries) writeImage(join(this.root, name), child);
  }

  private track(file: FaultFile): FaultFile {
    this.openFiles.add(file);
    return file;
  }

  // --- the model -----------------------------------------------------------

  /** Counts one durable operation; throws once the power has gone. */
  step(label: string): void {
    if (this.cut) throw new PowerCutError(label);
    this.ops += 1;
    this.labels?.push(label);
    if (this.ops >= this.cutAt) {
      this.cutOp = label;
      throw new PowerCutError(label);
    }
  }

  /**
   * Runs a real operation, counted so that `settle()` can wait for it. Real
   * operations run one at a time in the order they were issued: the order
   * the model applied them in.
   */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.inflight += 1;
    const result = this.queue.then(fn);
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await result;
    } finally {
      this.inflight -= 1;
    }
  }

  rel(path: string): string {
    return relative(this.root, resolve(path)).split(sep).join('/');
  }

  private locate(path: string): Located | undefined {
    const rel = relative(this.root, resolve(path));
    if (rel === '') return { parent: undefined, name: '' };
    if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
    const parts = rel.split(sep);
    const name = parts.pop() ?? '';
    let dir: DirNode | undefined = this.rootNode;
    for (const p of parts) {
      const next: Node | undefined = this.entries(dir).get(p);
      if (next?.kind !== 'dir') {
        dir = undefined;
        break;
      }
      dir = next;
    }
    return { parent: dir, name };
  }

  private nodeAt(at: Located): Node | undefined {
    if (at.parent === undefined) return at.name === '' ? this.rootNode : undefined;
    return this.entries(at.parent).get(at.name);
  }

  /** A directory's current entries, read from the real directory the first time (all durable then). */
  private entries(dir: DirNode): Map<string, Node> {
    if (dir.entries !== undefined) return dir.entries;
    const entries = new Map<string, Node>();
    for (const e of readdirSync(dir.origin, { withFileTypes: true })) {
      const path = join(dir.origin, e.name);
      const st = lstatSync(path);
      if (e.isDirectory()) entries.set(e.name, newDir(path, st.mode & 0o7777));
      else if (e.isFile()) {
        let node = this.byIno.get(st.ino);
        if (node === undefined) {
          node = { kind: 'file', origin: path, durable: undefined, current: undefined, pending: [], mode: st.mode & 0o7777 };
          this.byIno.set(st.ino, node);
        }
        entries.set(e.name, node);
      }
    }
    dir.entries = entries;
    dir.durable = new Map(entries);
    return entries;
  }

  /** Reads a file's contents into the model before anything changes it (they are durable until then). */
  content(file: FileNode): Buffer {
    if (file.current === undefined) {
      const bytes = readFileSync(file.origin);
      file.durable = bytes;
      file.current = Buffer.from(bytes);
    }
    return file.current;
  }

  /** Takes a node wholly into the model, so that it no longer depends on where it sits on the real disk. */
  private captureDeep(node: Node): void {
    if (node.kind === 'file') {
      this.content(node);
      return;
    }
    for (const child of this.entries(node).values()) this.captureDeep(child);
  }

  /** The model's side of an open: a new file entry, or the truncation of an existing file. */
  private openModel(at: Located, path: string, mode: OpenMode, perm: number): { node: FileNode; undo: () => void } {
    this.step(`open(${mode}) ${this.rel(path)}`);
    const existing = this.nodeAt(at);
    if (existing?.kind === 'file') {
      this.content(existing);
      // 'create' fails with EEXIST on the real disk; the model then keeps the file as it is.
      if (mode === 'create') return { node: existing, undo: () => undefined };
      if (mode !== 'truncate') return { node: existing, undo: () => undefined };
      return { node: existing, undo: this.fileChange(existing, { t: 't', len: 0 }) };
    }
    const node: FileNode = { kind: 'file', origin: '', durable: Buffer.alloc(0), current: Buffer.alloc(0), pending: [], mode: perm };
    const creates = mode === 'create' || mode === 'truncate' || mode === 'appendCreate';
    if (!creates || at.parent === undefined || existing !== undefined) return { node, undo: () => undefined };
    return { node, undo: this.changeEntries(at.parent, { t: 'set', name: at.name, node }) };
  }

  /** The model's side of an unlink or rmdir; undefined when the entry is not in the model. */
  private removeModel(at: Located, label: string): (() => void) | undefined {
    this.step(label);
    const node = this.nodeAt(at);
    if (node === undefined || at.parent === undefined) return undefined;
    this.captureDeep(node);
    return this.changeEntries(at.parent, { t: 'del', name: at.name });
  }

  /** Applies one pending change to a directory's entries; returns how to take it back. */
  private changeEntries(dir: DirNode, op: DirOp): () => void {
    if (this.cut) return () => undefined;
    const entries = this.entries(dir);
    const names = op.t === 'mv' ? [op.from, op.to] : [op.name];
    const before = names.map((n) => [n, entries.get(n)] as const);
    if (op.t === 'set') entries.set(op.name, op.node);
    else if (op.t === 'del') entries.delete(op.name);
    else {
      entries.delete(op.from);
      entries.set(op.to, op.node);
    }
    dir.log.push(op);
    return () => {
      for (const [n, node] of before) {
        if (node === undefined) entries.delete(n);
        else entries.set(n, node);
      }
      const i = dir.log.indexOf(op);
      if (i >= 0) dir.log.splice(i, 1);
    };
  }

  /** Applies one pending write or truncation to a file; returns how to take it back. */
  fileChange(file: FileNode, op: FileOp): () => void {
    if (this.cut) return () => undefined;
    const before = { current: this.content(file), pending: [...file.pending] };
    applyOp(file, op);
    return () => {
      file.current = before.current;
      file.pending = before.pending;
    };
  }

  /** Marks a file's data durable; returns how to take it back. */
  fileSynced(file: FileNode): () => void {
    if (this.cut) return () => undefined;
    const before = { durable: file.durable, pending: file.pending };
    file.durable = Buffer.from(this.content(file));
    file.pending = [];
    return () => {
      file.durable = before.durable;
      file.pending = before.pending;
    };
  }

  /** Throws the injected EIO of an fsync of `path`, when `failFsync` chose it. */
  checkFsync(path: string, syscall: string): void {
    if (this.cut || this.failFsync?.(this.rel(path)) !== true) return;
    throw Object.assign(new Error(`EIO: i/o error, ${syscall} (injected)`), { code: 'EIO', errno: -5, syscall });
  }

  /** Runs the real call; takes the model's change back if it fails. */
  async attempt<T>(undo: () => void, real: () => Promise<T>): Promise<T> {
    try {
      return await this.run(real);
    } catch (err) {
      if (!this.cut) undo();
      throw err;
    }
  }

  attemptSync<T>(undo: () => void, real: () => T): T {
    try {
      return real();
    } catch (err) {
      if (!this.cut) undo();
      throw err;
    }
  }

  /** A change the model cannot place: the real call should fail; if it does not, the model is wrong. */
  private async diverged(real: () => Promise<void>, path: string): Promise<void> {
    await this.run(real);
    if (!this.cut) throw new Error(`fault layer: ${path} changed but the model does not know the entry or its directory`);
  }

  // --- the crash image ---------------------------------------------------

  private imageOf(node: Node, files: Map<FileNode, Image>): Image {
    if (node.kind === 'file') {
      let image = files.get(node);
      if (image === undefined) {
        image = { kind: 'file', mode: node.mode, data: this.crashContent(node) };
        files.set(node, image);
      }
      return image;
    }
    if (node.entries === undefined) return { kind: 'dir', mode: node.mode, entries: realTree(node.origin) };
    const listing = new Map(node.durable);
    const keep = this.crash === 'random' ? this.prefixLength(node.log.length, 0.5, 0.2) : 0;
    for (const op of node.log.slice(0, keep)) {
      if (op.t === 'set') listing.set(op.name, op.node);
      else if (op.t === 'del') listing.delete(op.name);
      else {
        listing.delete(op.from);
        listing.set(op.to, op.node);
      }
    }
    const entries = new Map<string, Image>();
    for (const [name, child] of listing) entries.set(name, this.imageOf(child, files));
    return { kind: 'dir', mode: node.mode, entries };
  }

  /** What the disk holds of a file: its durable bytes and a prefix of its pending writes, the next one torn. */
  private crashContent(file: FileNode): Buffer {
    if (file.current === undefined) return readFileSync(file.origin);
    const n = file.pending.length;
    const probe: FileNode = { ...file, current: Buffer.from(file.durable ?? Buffer.alloc(0)), pending: [] };
    if (n === 0) return probe.current ?? Buffer.alloc(0);
    // Mostly the last write torn or everything dropped: the states that lose the most.
    const r = this.crash === 'drop' ? 0 : this.crash === 'tear' ? 0.5 : this.random();
    const keep = r < 0.35 ? 0 : r < 0.7 ? n - 1 : r < 0.85 ? n : Math.floor(this.random() * n);
    for (const op of file.pending.slice(0, keep)) applyOp(probe, op);
    const next = file.pending[keep];
    if (next?.t === 'w') {
      const first = (Math.floor(next.pos / SECTOR) + 1) * SECTOR;
      const end = next.pos + next.data.length;
      if (first < end) {
        const boundaries = Math.ceil((end - first) / SECTOR);
        const cut = first + (this.crash === 'tear' ? boundaries - 1 : Math.floor(this.random() * boundaries)) * SECTOR;
        applyOp(probe, { t: 'w', pos: next.pos, data: next.data.subarray(0, cut - next.pos) });
      }
    }
    return probe.current ?? Buffer.alloc(0);
  }

  /** How many of `n` pending changes survive: none with probability `none`, all with `all`, else a random prefix. */
  private prefixLength(n: number, none: number, all: number): number {
    if (n === 0) return 0;
    const r = this.random();
    if (r < none) return 0;
    if (r < none + all) return n;
    return Math.floor(this.random() * (n + 1));
  }
}

/** Thrown by every durable operation from the power cut on. */
export class PowerCutError extends Error {
  readonly code = 'VS_TEST_POWER_CUT';
  constructor(op: string) {
    super(`simulated power cut (at ${op})`);
    this.name = 'PowerCutError';
  }
}

/**
 * How the crash image is drawn: `random` (seeded) mixes every state below;
 * `drop` loses all unsynced data; `tear` keeps all unsynced writes but the
 * last, which is torn at its last sector boundary. `drop` and `tear` undo
 * every directory change not made durable by a directory fsync.
 */
export type CrashMode = 'random' | 'drop' | 'tear';

const SECTOR = 512;

type FileOp = { t: 'w'; pos: number; data: Buffer } | { t: 't'; len: number };

interface FileNode {
  kind: 'file';
  /** Where the contents sit on the real disk while the model has not read them. */
  origin: string;
  durable: Buffer | undefined;
  current: Buffer | undefined;
  pending: FileOp[];
  mode: number;
}

type DirOp = { t: 'set'; name: string; node: Node } | { t: 'del'; name: string } | { t: 'mv'; from: string; to: string; node: Node };

interface DirNode {
  kind: 'dir';
  origin: string;
  entries: Map<string, Node> | undefined;
  durable: Map<string, Node> | undefined;
  log: DirOp[];
  mode: number;
}

type Node = FileNode | DirNode;

function chain(a: () => void, b: () => void): () => void {
  return () => {
    b();
    a();
  };
}

interface Located {
  /** Undefined for the root itself, or when the parent is not a directory in the model. */
  parent: DirNode | undefined;
  name: string;
}

type Image = { kind: 'file'; mode: number; data: Buffer } | { kind: 'dir'; mode: number; entries: Map<string, Image> };

function newDir(origin: string, mode: number): DirNode {
  return { kind: 'dir', origin, entries: undefined, durable: undefined, log: [], mode };
}

function applyOp(file: FileNode, op: FileOp): void {
  const cur = file.current ?? Buffer.alloc(0);
  if (op.t === 't') {
    file.current = op.len <= cur.length ? Buffer.from(cur.subarray(0, op.len)) : Buffer.concat([cur, Buffer.alloc(op.len - cur.length)]);
  } else {
    const end = op.pos + op.data.length;
    const next = end <= cur.length ? Buffer.from(cur) : Buffer.concat([cur, Buffer.alloc(end - cur.length)]);
    next.set(op.data, op.pos);
    file.current = next;
  }
  file.pending.push(op);
}

function realTree(dir: string): Map<string, Image> {
  const out = new Map<string, Image>();
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    const mode = lstatSync(path).mode & 0o7777;
    if (e.isDirectory()) out.set(e.name, { kind: 'dir', mode, entries: realTree(path) });
    else if (e.isFile()) out.set(e.name, { kind: 'file', mode, data: readFileSync(path) });
  }
  return out;
}

function writeImage(path: string, image: Image): void {
  if (image.kind === 'file') {
    writeFileSync(path, image.data, { mode: image.mode });
    return;
  }
  mkdirSync(path, { mode: image.mode | 0o700 });
  for (const [name, child] of image.entries) writeImage(join(path, name), child);
}

/** mulberry32: a small seeded generator, so that a cut can be replayed from its seed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An open file under the fault layer: the real handle plus the model's record of what it wrote. */
class FaultFile implements DurableFile {
  private offset = 0;
  constructor(
    private readonly layer: FaultFileLayer,
    private readonly node: FileNode,
    private readonly real: DurableFile,
    private readonly append: boolean,
  ) {}

  get path(): string {
    return this.real.path;
  }

  private position(): number {
    return this.append ? this.layer.content(this.node).length : this.offset;
  }

  private change(pos: number, data: Uint8Array): () => void {
    return this.layer.fileChange(this.node, { t: 'w', pos, data: Buffer.from(data) });
  }

  async write(data: Uint8Array): Promise<void> {
    this.layer.step(`write ${this.layer.rel(this.path)}`);
    const pos = this.position();
    this.offset = pos + data.length;
    await this.layer.attempt(this.change(pos, data), () => this.real.write(data));
  }

  async pwrite(data: Uint8Array, position: number): Promise<void> {
    this.layer.step(`pwrite ${this.layer.rel(this.path)}`);
    await this.layer.attempt(this.change(position, data), () => this.real.pwrite(data, position));
  }

  writeSync(data: Uint8Array): void {
    this.layer.step(`write ${this.layer.rel(this.path)}`);
    const pos = this.position();
    this.offset = pos + data.length;
    this.layer.attemptSync(this.change(pos, data), () => this.real.writeSync(data));
  }

  async truncate(length: number): Promise<void> {
    this.layer.step(`truncate ${this.layer.rel(this.path)}`);
    await this.layer.attempt(this.layer.fileChange(this.node, { t: 't', len: length }), () => this.real.truncate(length));
  }

  async fsync(): Promise<void> {
    this.layer.step(`fsync ${this.layer.rel(this.path)}`);
    this.layer.checkFsync(this.path, 'fsync');
    await this.layer.attempt(this.layer.fileSynced(this.node), () => this.real.fsync());
  }

  async fdatasync(): Promise<void> {
    this.layer.step(`fdatasync ${this.layer.rel(this.path)}`);
    this.layer.checkFsync(this.path, 'fdatasync');
    await this.layer.attempt(this.layer.fileSynced(this.node), () => this.real.fdatasync());
  }

  fsyncSync(): void {
    this.layer.step(`fsync ${this.layer.rel(this.path)}`);
    this.layer.checkFsync(this.path, 'fsync');
    this.layer.attemptSync(this.layer.fileSynced(this.node), () => this.real.fsyncSync());
  }

  /** Closing is not a durable operation: it works after the cut too, so no descriptor leaks. */
  close(): Promise<void> {
    this.layer.openFiles.delete(this);
    return this.real.close();
  }

  closeSync(): void {
    this.layer.openFiles.delete(this);
    this.real.closeSync();
  }

  closeQuietly(): void {
    void this.real.close().catch(() => undefined);
  }
}
