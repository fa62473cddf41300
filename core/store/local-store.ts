import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  access,
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

/** A folder on a local (or mounted) file system. */
export class LocalStore implements BackupStore {
  readonly url: string;

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
    try {
      await pipeline(body, createWriteStream(file, { flags: 'wx' }));
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
      await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { flag: 'wx' });
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
        await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { flag: 'wx' });
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
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storeError(err, this.url);
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
    return createReadStream(file, { highWaterMark: 1 << 20 });
  }

  async *list(prefix: string): AsyncIterable<StoreEntry> {
    const dir = this.pathOf(prefix);
    let files: string[];
    try {
      const entries = await readdir(dir, { recursive: true, withFileTypes: true });
      files = entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw storeError(err, this.url);
    }
    const keys = files.map((file) => path.relative(this.root, file).split(path.sep).join('/')).sort();
    // Sizes in batches: thousands of sequential stats would dominate listing a large store.
    for (let i = 0; i < keys.length; i += LIST_STAT_CONCURRENCY) {
      const batch = keys.slice(i, i + LIST_STAT_CONCURRENCY);
      const infos = await Promise.all(
        batch.map((key) => stat(path.join(this.root, key)).catch(() => undefined)),
      );
      for (const [j, info] of infos.entries()) if (info?.isFile()) yield { key: batch[j], bytes: info.size };
    }
  }

  async listFolders(prefix: string): Promise<string[]> {
    try {
      const entries = await readdir(this.pathOf(prefix), { withFileTypes: true });
      return entries.filter((e) => e.isDirectory()).map((e) => e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw storeError(err, this.url);
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
      await ensureDir(this.root);
      await writeFile(probe, 'ok');
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
      await ensureDir(path.dirname(file));
    } catch (err) {
      throw storeError(err, this.url);
    }
  }
}

/**
 * `mkdir -p`, without Node's recursive mkdir, which never returns for a path under /proc (it
 * retries ENOENT forever there).
 */
async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
    await ensureDir(parent);
    await mkdir(dir).catch((again: NodeJS.ErrnoException) => {
      if (again.code !== 'EEXIST') throw again;
    });
  }
}

function storeError(err: unknown, url: string): Error {
  if (err instanceof PgferryError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'ENOTDIR' || code === 'ENOENT') {
    return new PgferryError('StoreNotWritable', `store ${url} is not writable (${code})`, { cause: err });
  }
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new PgferryError('StoreNotWritable', `store ${url} is full (${code})`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
