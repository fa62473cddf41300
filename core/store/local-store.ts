import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  access,
  chmod,
  constants,
  link,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PgferryError } from '../errors';
import type { BackupStore, StoreEntry } from './store';

const LIST_STAT_CONCURRENCY = 64;
/**
 * The chunk of a download's reads: a new buffer each, dead once the reader has hashed and
 * decompressed it. 1 MiB ones kept a streamed restore's runner ~7 MiB higher at the same CPU
 * (benchmark.md, "The streamed restore's peak memory").
 */
const READ_CHUNK_BYTES = 512 * 1024;
const S_ISGID = 0o2000;
const S_IRGRP = 0o040;

/** Modes of the files and folders pgferry creates in a local store. */
export interface StoreModes {
  file: number;
  folder: number;
}

/** Readable by the store's owner alone: dumps hold the data, `globals.sql` password hashes. */
export const PRIVATE_MODES: StoreModes = Object.freeze({ file: 0o600, folder: 0o700 });

/**
 * Readable (never writable) by the group of a store whose root says so — set-group-ID and group
 * read, `chmod 2750` — so that its files are in that group; see `storeModesFor`.
 */
export const GROUP_READABLE_MODES: StoreModes = Object.freeze({ file: 0o640, folder: 0o2750 });

/**
 * The modes for a store whose root folder has `rootMode`: group-readable when the root has the
 * set-group-ID bit and grants its group read — a choice nobody makes by accident, unlike a root
 * that is merely group-readable under the usual umask — and private otherwise, and for a root
 * pgferry creates. The modes are set explicitly, whatever the umask.
 */
export function storeModesFor(rootMode: number | undefined): StoreModes {
  if (rootMode === undefined) return PRIVATE_MODES;
  return (rootMode & S_ISGID) !== 0 && (rootMode & S_IRGRP) !== 0 ? GROUP_READABLE_MODES : PRIVATE_MODES;
}

/**
 * A folder on a local (or mounted) file system. What it creates is private to its owner (files
 * 0600, folders 0700) unless the store's root is shared with a group (`storeModesFor`); a root
 * that does not exist is an error for every read, never an empty store.
 */
export class LocalStore implements BackupStore {
  readonly url: string;
  private modesOnce?: Promise<StoreModes>;

  constructor(private readonly root: string) {
    if (!path.isAbsolute(root))
      throw new PgferryError('InvalidInput', `store folder must be absolute: ${root}`);
    this.root = path.resolve(root);
    this.url = `file://${this.root}`;
  }

  /** Resolves a key to a path, refusing anything that would land outside the root. */
  private pathOf(key: string): string {
    const resolved = path.resolve(this.root, key);
    if (resolved !== this.root && !resolved.startsWith(this.root + path.sep)) {
      throw new PgferryError('InvalidInput', `store key escapes the store: ${JSON.stringify(key)}`);
    }
    return resolved;
  }

  async upload(key: string, body: Readable): Promise<void> {
    const file = this.pathOf(key);
    await this.mkdirFor(file);
    const { file: mode } = await this.modes();
    try {
      await pipeline(body, createWriteStream(file, { flags: 'wx', mode }));
      await chmod(file, mode);
    } catch (err) {
      await rm(file, { force: true });
      throw storeError(err, this.url);
    }
  }

  async putJson(key: string, value: unknown): Promise<void> {
    const file = this.pathOf(key);
    await this.mkdirFor(file);
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await this.writeNew(tmp, `${JSON.stringify(value, null, 2)}\n`);
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw storeError(err, this.url);
    }
  }

  /** Writes a temporary file and hard-links it into place: `link` fails when the name exists. */
  async putJsonIfAbsent(key: string, value: unknown): Promise<boolean> {
    const file = this.pathOf(key);
    for (let attempt = 1; ; attempt++) {
      await this.mkdirFor(file);
      const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        await this.writeNew(tmp, `${JSON.stringify(value, null, 2)}\n`);
        await link(tmp, file);
        return true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return false;
        // Its folder was removed meanwhile (`deleteObject` of the folder's last object): again.
        if (code === 'ENOENT' && attempt < 3) continue;
        throw storeError(err, this.url);
      } finally {
        await rm(tmp, { force: true });
      }
    }
  }

  async getJson(key: string): Promise<unknown | undefined> {
    let text: string;
    try {
      text = await readFile(this.pathOf(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.assertRootExists();
        return undefined;
      }
      throw storeError(err, this.url, 'read');
    }
    return JSON.parse(text);
  }

  localFile(key: string): string {
    return this.pathOf(key);
  }

  async download(key: string): Promise<Readable> {
    const file = this.pathOf(key);
    try {
      await access(file, constants.R_OK);
    } catch {
      throw new PgferryError('BackupNotFound', `object missing from the store: ${key}`);
    }
    return createReadStream(file, { highWaterMark: READ_CHUNK_BYTES });
  }

  async *list(prefix: string): AsyncIterable<StoreEntry> {
    const dir = this.pathOf(prefix);
    let files: string[];
    try {
      const entries = await readdir(dir, { recursive: true, withFileTypes: true });
      files = entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.assertRootExists();
        return;
      }
      throw storeError(err, this.url, 'read');
    }
    const keys = files.map((file) => path.relative(this.root, file).split(path.sep).join('/')).sort();
    // Sizes in batches: thousands of sequential stats would dominate listing a large store.
    for (let i = 0; i < keys.length; i += LIST_STAT_CONCURRENCY) {
      const batch = keys.slice(i, i + LIST_STAT_CONCURRENCY);
      const infos = await Promise.all(
        batch.map((key) =>
          stat(path.join(this.root, key)).catch((err: NodeJS.ErrnoException) => {
            // Removed since the folder was read (a prune, a lease released): not there.
            if (err.code === 'ENOENT') return undefined;
            throw storeError(err, this.url, 'read');
          }),
        ),
      );
      for (const [j, info] of infos.entries()) if (info?.isFile()) yield { key: batch[j], bytes: info.size };
    }
  }

  async listFolders(prefix: string): Promise<string[]> {
    try {
      const entries = await readdir(this.pathOf(prefix), { withFileTypes: true });
      return entries.filter((e) => e.isDirectory()).map((e) => e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.assertRootExists();
        return [];
      }
      throw storeError(err, this.url, 'read');
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    const dir = this.pathOf(prefix);
    if (dir === this.root) throw new PgferryError('InvalidInput', 'refusing to delete the whole store');
    let count = 0;
    for await (const _ of this.list(prefix)) count++;
    await rm(dir, { recursive: true, force: true });
    return count;
  }

  /** Removes the file, and its folder when it was the last one there (S3 has no empty folders). */
  async deleteObject(key: string): Promise<void> {
    const file = this.pathOf(key);
    try {
      await rm(file, { force: true });
    } catch (err) {
      throw storeError(err, this.url);
    }
    if (path.dirname(file) !== this.root) await rmdir(path.dirname(file)).catch(() => undefined);
  }

  async checkWritable(): Promise<void> {
    const probe = path.join(this.root, `.pgferry-write-test-${randomBytes(4).toString('hex')}`);
    try {
      await ensureDir(this.root, (await this.modes()).folder);
      await writeFile(probe, 'ok', { mode: 0o600 });
      await rm(probe);
    } catch (err) {
      throw new PgferryError(
        'StoreNotWritable',
        `store ${this.url} is not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }

  private async mkdirFor(file: string): Promise<void> {
    try {
      await ensureDir(path.dirname(file), (await this.modes()).folder);
    } catch (err) {
      throw storeError(err, this.url);
    }
  }

  /** Writes a new file (failing if it exists) with the store's file mode, whatever the umask. */
  private async writeNew(file: string, text: string): Promise<void> {
    const { file: mode } = await this.modes();
    await writeFile(file, text, { flag: 'wx', mode });
    await chmod(file, mode);
  }

  /** The modes for what this store creates, from its root folder as it was first seen. */
  private modes(): Promise<StoreModes> {
    this.modesOnce ??= stat(this.root).then(
      (info) => storeModesFor(info.mode),
      () => storeModesFor(undefined),
    );
    return this.modesOnce;
  }

  /**
   * A missing object is `undefined` and a missing folder an empty listing — but only inside a
   * store that exists: a mistyped or unmounted store folder is an error, never an empty store.
   */
  private async assertRootExists(): Promise<void> {
    try {
      if ((await stat(this.root)).isDirectory()) return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storeError(err, this.url, 'read');
      throw new PgferryError(
        'StoreNotWritable',
        `store ${this.url} does not exist (no folder ${this.root}): check the path, or that its file system is mounted`,
        { cause: err },
      );
    }
    throw new PgferryError('StoreNotWritable', `store ${this.url} is not a folder`);
  }
}

/**
 * `mkdir -p`, without Node's recursive mkdir, which never returns for a path under /proc (it
 * retries ENOENT forever there). Each folder it creates gets `mode`, whatever the umask.
 */
async function ensureDir(dir: string, mode: number): Promise<void> {
  try {
    await mkdir(dir, { mode });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
    await ensureDir(parent, mode);
    try {
      await mkdir(dir, { mode });
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw again;
    }
  }
  await chmod(dir, mode);
}

/** A file system error as one line; `action` is what was being done (writing unless told). */
function storeError(err: unknown, url: string, action: 'read' | 'write' = 'write'): Error {
  if (err instanceof PgferryError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (action === 'read' && (code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR')) {
    return new PgferryError('StoreNotWritable', `store ${url} cannot be read (${code})`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'ENOTDIR' || code === 'ENOENT') {
    return new PgferryError('StoreNotWritable', `store ${url} is not writable (${code})`, { cause: err });
  }
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new PgferryError('StoreNotWritable', `store ${url} is full (${code})`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
