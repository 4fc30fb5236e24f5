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
  private readonly labels: string[] | undefined;
  private readonly crash: CrashMode;

  constructor(options: { root: string; cutAt?: number; seed?: number; trace?: boolean; crash?: CrashMode }) {
    this.crash = options.crash ?? 'random';
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

  async open(path: string, mode: OpenMode, perm = 0o600): Promise<DurableFile> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.open(path, mode, perm);
    const before = this.prepareOpen(at, mode, `open(${mode})`);
    const real = await this.run(() => realFileLayer.open(path, mode, perm));
    return new FaultFile(this, this.afterOpen(at, mode, perm, before), real, mode === 'append' || mode === 'appendCreate');
  }

  openSync(path: string, mode: OpenMode, perm = 0o600): DurableFile {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.openSync(path, mode, perm);
    const before = this.prepareOpen(at, mode, `open(${mode})`);
    const real = realFileLayer.openSync(path, mode, perm);
    return new FaultFile(this, this.afterOpen(at, mode, perm, before), real, mode === 'append' || mode === 'appendCreate');
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.locate(from);
    const dst = this.locate(to);
    if (src === undefined && dst === undefined) return realFileLayer.rename(from, to);
    if (src === undefined || dst === undefined) throw new Error(`fault layer: rename across its root (${from} -> ${to})`);
    this.step(`rename ${this.rel(from)} -> ${this.rel(to)}`);
    const node = src.parent === undefined ? undefined : this.entries(src.parent).get(src.name);
    if (node !== undefined) this.captureDeep(node);
    const over = dst.parent === undefined ? undefined : this.entries(dst.parent).get(dst.name);
    if (over !== undefined) this.captureDeep(over);
    await this.run(() => realFileLayer.rename(from, to));
    if (this.cut) return;
    const sp = this.mustParent(src, from);
    const dp = this.mustParent(dst, to);
    if (node === undefined) throw new Error(`fault layer: ${from} renamed but not in the model`);
    this.entries(sp).delete(src.name);
    this.entries(dp).set(dst.name, node);
    if (sp === dp) sp.log.push({ t: 'mv', from: src.name, to: dst.name, node });
    else {
      sp.log.push({ t: 'del', name: src.name });
      dp.log.push({ t: 'set', name: dst.name, node });
    }
  }

  async link(existing: string, newPath: string): Promise<void> {
    const src = this.locate(existing);
    const dst = this.locate(newPath);
    if (src === undefined && dst === undefined) return realFileLayer.link(existing, newPath);
    if (src === undefined || dst === undefined) throw new Error(`fault layer: link across its root (${existing} -> ${newPath})`);
    this.step(`link ${this.rel(existing)} -> ${this.rel(newPath)}`);
    const node = src.parent === undefined ? undefined : this.entries(src.parent).get(src.name);
    if (node !== undefined) this.captureDeep(node);
    // The new entry's directory is read into the model before it changes, so that the link starts out pending.
    if (dst.parent !== undefined) this.entries(dst.parent);
    await this.run(() => realFileLayer.link(existing, newPath));
    if (this.cut) return;
    const dp = this.mustParent(dst, newPath);
    if (node === undefined) throw new Error(`fault layer: ${existing} linked but not in the model`);
    this.entries(dp).set(dst.name, node);
    dp.log.push({ t: 'set', name: dst.name, node });
  }

  async unlink(path: string): Promise<void> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.unlink(path);
    const node = this.beforeRemove(at, `unlink ${this.rel(path)}`);
    await this.run(() => realFileLayer.unlink(path));
    this.afterRemove(at, path, node);
  }

  unlinkSync(path: string): void {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.unlinkSync(path);
    const node = this.beforeRemove(at, `unlink ${this.rel(path)}`);
    realFileLayer.unlinkSync(path);
    this.afterRemove(at, path, node);
  }

  async mkdir(path: string, perm = 0o700): Promise<void> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.mkdir(path, perm);
    this.step(`mkdir ${this.rel(path)}`);
    if (at.parent !== undefined) this.entries(at.parent);
    await this.run(() => realFileLayer.mkdir(path, perm));
    if (this.cut) return;
    const parent = this.mustParent(at, path);
    const node = newDir(path, perm);
    node.entries = new Map();
    node.durable = new Map();
    this.entries(parent).set(at.name, node);
    parent.log.push({ t: 'set', name: at.name, node });
  }

  async rmdir(path: string): Promise<void> {
    const at = this.locate(path);
    if (at === undefined) return realFileLayer.rmdir(path);
    const node = this.beforeRemove(at, `rmdir ${this.rel(path)}`);
    await this.run(() => realFileLayer.rmdir(path));
    this.afterRemove(at, path, node);
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
    if (node?.kind === 'dir') this.entries(node);
    await this.run(() => realFileLayer.fsyncDir(dir));
    if (this.cut || node?.kind !== 'dir') return;
    node.durable = new Map(this.entries(node));
    node.log = [];
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
    const image = this.imageOf(this.rootNode, new Map());
    if (image.kind !== 'dir') throw new Error('fault layer: root is not a directory');
    for (const name of readdirSync(this.root)) rmSync(join(this.root, name), { recursive: true, force: true });
    for (const [name, child] of image.entries) writeImage(join(this.root, name), child);
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

  /** Runs a real operation, counted so that `settle()` can wait for it. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.inflight += 1;
    try {
      return await fn();
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

  private mustParent(at: Located, path: string): DirNode {
    if (at.parent === undefined) throw new Error(`fault layer: ${path} changed but its directory is not in the model`);
    return at.parent;
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

  private prepareOpen(at: Located, mode: OpenMode, label: string): FileNode | undefined {
    this.step(`${label} ${this.rel(join(at.parent?.origin ?? this.root, at.name))}`);
    const existing = this.nodeAt(at);
    if (existing?.kind === 'file') this.content(existing);
    return existing?.kind === 'file' && mode !== 'create' ? existing : undefined;
  }

  private afterOpen(at: Located, mode: OpenMode, perm: number, existing: FileNode | undefined): FileNode {
    if (existing !== undefined) {
      if (mode === 'truncate' && !this.cut) applyOp(existing, { t: 't', len: 0 });
      return existing;
    }
    const node: FileNode = { kind: 'file', origin: '', durable: Buffer.alloc(0), current: Buffer.alloc(0), pending: [], mode: perm };
    if (this.cut) return node;
    const parent = this.mustParent(at, at.name);
    this.entries(parent).set(at.name, node);
    parent.log.push({ t: 'set', name: at.name, node });
    return node;
  }

  private beforeRemove(at: Located, label: string): Node | undefined {
    this.step(label);
    const node = this.nodeAt(at);
    if (node !== undefined) this.captureDeep(node);
    return node;
  }

  private afterRemove(at: Located, path: string, node: Node | undefined): void {
    if (this.cut) return;
    const parent = this.mustParent(at, path);
    if (node === undefined) throw new Error(`fault layer: ${path} removed but not in the model`);
    this.entries(parent).delete(at.name);
    parent.log.push({ t: 'del', name: at.name });
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

  private record(pos: number, data: Uint8Array): void {
    if (!this.layer.cut) applyOp(this.node, { t: 'w', pos, data: Buffer.from(data) });
  }

  async write(data: Uint8Array): Promise<void> {
    this.layer.step(`write ${this.layer.rel(this.path)}`);
    const pos = this.position();
    await this.layer.run(() => this.real.write(data));
    this.offset = pos + data.length;
    this.record(pos, data);
  }

  async pwrite(data: Uint8Array, position: number): Promise<void> {
    this.layer.step(`pwrite ${this.layer.rel(this.path)}`);
    await this.layer.run(() => this.real.pwrite(data, position));
    this.record(position, data);
  }

  writeSync(data: Uint8Array): void {
    this.layer.step(`write ${this.layer.rel(this.path)}`);
    const pos = this.position();
    this.real.writeSync(data);
    this.offset = pos + data.length;
    this.record(pos, data);
  }

  async truncate(length: number): Promise<void> {
    this.layer.step(`truncate ${this.layer.rel(this.path)}`);
    await this.layer.run(() => this.real.truncate(length));
    if (!this.layer.cut) applyOp(this.node, { t: 't', len: length });
  }

  async fsync(): Promise<void> {
    this.layer.step(`fsync ${this.layer.rel(this.path)}`);
    await this.layer.run(() => this.real.fsync());
    this.synced();
  }

  async fdatasync(): Promise<void> {
    this.layer.step(`fdatasync ${this.layer.rel(this.path)}`);
    await this.layer.run(() => this.real.fdatasync());
    this.synced();
  }

  fsyncSync(): void {
    this.layer.step(`fsync ${this.layer.rel(this.path)}`);
    this.real.fsyncSync();
    this.synced();
  }

  /** Closing is not a durable operation: it works after the cut too, so no descriptor leaks. */
  close(): Promise<void> {
    return this.real.close();
  }

  closeSync(): void {
    this.real.closeSync();
  }

  private synced(): void {
    if (this.layer.cut) return;
    this.node.durable = Buffer.from(this.layer.content(this.node));
    this.node.pending = [];
  }
}
