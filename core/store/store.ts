import type { Readable } from 'node:stream';

/** A stored object, with its key relative to the store's root. */
export interface StoreEntry {
  key: string;
  bytes: number;
}

export interface UploadOptions {
  /** Expected size, when known: lets S3 size its multipart parts. */
  expectedBytes?: number;
  /** Multipart part size and parts in flight, where the plan chose them (see core/strategy.ts). */
  partBytes?: number;
  queueSize?: number;
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
  /**
   * Creates a small JSON document at `key` unless an object is already there, in one step: `true`
   * when this call created it, `false` when it existed. A local folder guarantees that of two
   * concurrent calls exactly one creates; S3 does through a conditional write (If-None-Match),
   * which some S3-compatible servers ignore (see `S3Store.putJsonIfAbsent`).
   */
  putJsonIfAbsent(key: string, value: unknown): Promise<boolean>;
  /** Reads a JSON document; `undefined` when it does not exist. */
  getJson(key: string): Promise<unknown | undefined>;
  /** Opens an object for reading; throws `BackupNotFound` when it does not exist. */
  download(key: string): Promise<Readable>;
  /** The object's file, where the store is a local folder: tools can read it in place. */
  localFile?(key: string): string;
  /** Every object under `prefix`, recursively. */
  list(prefix: string): AsyncIterable<StoreEntry>;
  /** The immediate "folders" below `prefix` (names without slashes). */
  listFolders(prefix: string): Promise<string[]>;
  /**
   * Removes every object under `prefix`, and any unfinished multipart upload there; returns how
   * many objects. Fails when any of them could not be removed.
   */
  deletePrefix(prefix: string): Promise<number>;
  /** Removes one object; no error when it does not exist. */
  deleteObject(key: string): Promise<void>;
  /**
   * Sets `tags` on every object under `prefix` (keeping their other tags), the manifest last,
   * so that a manifest carrying a tag means its whole folder does; returns how many objects.
   * Absent where objects carry no tags (a local folder): S3 lifecycle rules act on tags, and
   * stores without them are pruned by `pgferry prune` instead.
   */
  tagObjects?(prefix: string, tags: Record<string, string>): Promise<number>;
  /** The tags of one object; `undefined` when it does not exist. Present with `tagObjects`. */
  objectTags?(key: string): Promise<Record<string, string> | undefined>;
  /** Fails with `StoreNotWritable` unless a small object can be written and removed. */
  checkWritable(): Promise<void>;
}
