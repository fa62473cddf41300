import type { Readable } from 'node:stream';

/** A stored object, with its key relative to the store's root. */
export interface StoreEntry {
  key: string;
  bytes: number;
}

export interface UploadOptions {
  /** Expected size, when known: lets S3 size its multipart parts. */
  expectedBytes?: number;
  contentType?: string;
}

/**
 * Where backups live: a local folder or an S3 (-compatible) bucket prefix. Keys are relative to
 * the store's root and always come from `core/store-keys.ts`.
 */
export interface BackupStore {
  /** The store as the user named it, e.g. `s3://bucket/prefix` (no credentials in it). */
  readonly url: string;
  /** Streams `body` to `key`; on failure nothing usable is left behind under `key`. */
  upload(key: string, body: Readable, options?: UploadOptions): Promise<void>;
  /** Writes a small JSON document atomically (readers see the old state or the new one). */
  putJson(key: string, value: unknown): Promise<void>;
  /** Reads a JSON document; `undefined` when it does not exist. */
  getJson(key: string): Promise<unknown | undefined>;
  /** Opens an object for reading; throws `BackupNotFound` when it does not exist. */
  download(key: string): Promise<Readable>;
  /** Every object under `prefix`, recursively. */
  list(prefix: string): AsyncIterable<StoreEntry>;
  /** The immediate "folders" below `prefix` (names without slashes). */
  listFolders(prefix: string): Promise<string[]>;
  /** Removes every object under `prefix`, and any unfinished multipart upload there. */
  deletePrefix(prefix: string): Promise<number>;
  /** Fails with `StoreNotWritable` unless a small object can be written and removed. */
  checkWritable(): Promise<void>;
}
