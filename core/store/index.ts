import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PgferryError } from '../errors';
import { LocalStore } from './local-store';
import type { BackupStore } from './store';

export { LocalStore } from './local-store';
export type { BackupStore, StoreEntry, UploadOptions } from './store';

/**
 * Normalises what a user typed as `--store` into the URL carried by payloads:
 * `file:///abs/dir` and `s3://bucket/prefix` as they are, a plain path made absolute.
 */
export function normaliseStoreUrl(input: string, cwd: string = process.cwd()): string {
  if (input.startsWith('s3://') || input.startsWith('file://')) return openStore(input).url;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    throw new PgferryError(
      'InvalidInput',
      `unsupported store URL (use file:///abs/dir or s3://bucket/prefix): ${input}`,
    );
  }
  return new LocalStore(path.resolve(cwd, input)).url;
}

export function openStore(url: string): BackupStore {
  if (url.startsWith('file://')) {
    let dir: string;
    try {
      dir = fileURLToPath(url);
    } catch {
      throw new PgferryError('InvalidInput', `not a local store URL (use file:///absolute/dir): ${url}`);
    }
    return new LocalStore(dir);
  }
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (s3) {
    const [, bucket, prefix] = s3;
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new PgferryError('InvalidInput', `not a valid S3 bucket name: ${bucket}`);
    }
    // Loaded only for S3 stores: the AWS SDK is a third of the CLI's and the runner's start-up.
    const { S3Store } = require('./s3-store') as typeof import('./s3-store');
    return new S3Store(bucket, prefix);
  }
  throw new PgferryError(
    'InvalidInput',
    `unsupported store URL (use file:///abs/dir or s3://bucket/prefix): ${url}`,
  );
}
