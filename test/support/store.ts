/** Reading what a backup stored, independently of pgferry's own store code. */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { testEnv } from './env';

function s3(): S3Client {
  return new S3Client(testEnv().s3.clientConfig());
}

/** The bytes at `key` (relative to the store root) of a file:// or s3:// store. */
export async function readStored(storeUrl: string, key: string): Promise<Buffer> {
  if (storeUrl.startsWith('file://')) return readFile(`${fileURLToPath(storeUrl)}/${key}`);
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(storeUrl);
  if (!m) throw new Error(`unsupported store ${storeUrl}`);
  const out = await s3().send(new GetObjectCommand({ Bucket: m[1], Key: `${m[2]}/${key}` }));
  return Buffer.from(
    await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
  );
}

/** Every key under a s3:// store prefix (relative to it). */
export async function listS3Keys(storeUrl: string): Promise<string[]> {
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(storeUrl);
  if (!m) throw new Error(`not an s3 store: ${storeUrl}`);
  const out = await s3().send(new ListObjectsV2Command({ Bucket: m[1], Prefix: `${m[2]}/` }));
  return (out.Contents ?? []).map((c) => (c.Key ?? '').slice(m[2].length + 1));
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
