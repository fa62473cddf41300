/**
 * Over HTTPS the S3 store signs its uploads without hashing their bodies (`UNSIGNED-PAYLOAD`) and
 * sends each body's CRC32 for S3 to check, so no byte is hashed twice; over plain HTTP the body
 * stays signed. Both against the S3 server, each part's headers watched as they leave the client.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { crc32 } from 'node:zlib';
import {
  CreateBucketCommand,
  S3Client,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-s3';
import { createS3Client, S3Store } from '../../../../core/store/s3-store';
import { type RunningS3, runS3rverInProcess, s3ClientConfig } from '../../../../scripts/support/s3-server';
import { makeCa, makeServerCert } from '../../../support/certificates';

const MiB = 1024 * 1024;
const PART = 5 * MiB;

interface SentRequest {
  command: string;
  headers: Record<string, string>;
  body: unknown;
}

let dir: string;
let https: RunningS3;
let http: RunningS3;
const defaultCas = getCACertificates('default');

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-s3-tls-'));
  const caFile = await makeCa(dir, 'ca');
  await makeServerCert(dir, 'ca');
  // The client trusts the test's CA as it would a public one (this process only).
  setDefaultCACertificates([...defaultCas, readFileSync(caFile, 'utf8')]);
  const tls = {
    key: readFileSync(path.join(dir, 'server.key'), 'utf8'),
    cert: readFileSync(path.join(dir, 'server.crt'), 'utf8'),
  };
  https = await runS3rverInProcess({ directory: path.join(dir, 'https'), tls });
  http = await runS3rverInProcess({ directory: path.join(dir, 'http') });
});

afterAll(async () => {
  setDefaultCACertificates(defaultCas);
  await https?.close();
  await http?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Uploads 12 MiB in 5 MiB parts through the store's own client for `server` (its endpoint and
 * credentials from the environment, as the CLI's), recording each request as it was signed;
 * returns the parts as sent and what reads back.
 */
async function upload(
  server: RunningS3,
): Promise<{ parts: SentRequest[]; original: Buffer; stored: Buffer }> {
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_S3: server.info.endpoint,
    AWS_ACCESS_KEY_ID: server.info.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.info.secretAccessKey,
    AWS_REGION: server.info.region,
  });
  const client = createS3Client();
  try {
    const sent: SentRequest[] = [];
    type Handler = (args: {
      input: ServiceInputTypes;
      request: unknown;
    }) => Promise<{ output: ServiceOutputTypes; response: unknown }>;
    client.middlewareStack.addRelativeTo(
      (next: Handler, context: { commandName?: string }): Handler =>
        async (args) => {
          const request = args.request as { headers: Record<string, string>; body: unknown };
          sent.push({
            command: context.commandName ?? '',
            headers: { ...request.headers },
            body: request.body,
          });
          return next(args);
        },
      { name: 'testWatch', relation: 'after', toMiddleware: 'httpSigningMiddleware' },
    );
    const original = Buffer.alloc(12 * MiB);
    for (let i = 0; i < original.length; i += 4) original.writeUInt32LE((i * 2654435761) >>> 0, i);
    const store = new S3Store(server.info.bucket, 'tls-test', client);
    await store.upload('object.bin', Readable.from([original]), { partBytes: PART });
    const chunks: Buffer[] = [];
    for await (const chunk of await store.download('object.bin')) chunks.push(chunk as Buffer);
    return {
      parts: sent.filter((r) => r.command === 'UploadPartCommand'),
      original,
      stored: Buffer.concat(chunks),
    };
  } finally {
    client.destroy();
    process.env = saved;
  }
}

function crc32Base64(body: Uint8Array): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(body) >>> 0);
  return out.toString('base64');
}

test('over HTTPS each part is sent unsigned with its CRC32, and the object reads back whole', async () => {
  const { parts, original, stored } = await upload(https);
  expect(https.info.endpoint).toMatch(/^https:/);
  expect(parts).toHaveLength(3);
  for (const part of parts) {
    expect(part.headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
    expect(part.body).toBeInstanceOf(Uint8Array);
    expect(part.headers['x-amz-checksum-crc32']).toBe(crc32Base64(part.body as Uint8Array));
  }
  expect(stored.equals(original)).toBe(true);
});

test('over plain HTTP each part stays signed with its SHA-256', async () => {
  const { parts, original, stored } = await upload(http);
  expect(parts).toHaveLength(3);
  for (const part of parts) {
    const sha256 = createHash('sha256')
      .update(part.body as Uint8Array)
      .digest('hex');
    expect(part.headers['x-amz-content-sha256']).toBe(sha256);
  }
  expect(stored.equals(original)).toBe(true);
});

/**
 * `listFolders` names the folders directly under a prefix however deep their objects lie, as S3's
 * delimited listing does: a catalog name's folder holds only backup folders, never an object of
 * its own (resolving a backup by id without a name lists them).
 */
test.each([
  ['without a store prefix', ''],
  ['under a store prefix', 'deep/store'],
])('listFolders finds folders whose objects lie two folders deep, %s', async (_, storePrefix) => {
  const client = new S3Client(s3ClientConfig(http.info));
  const bucket = `folders-${storePrefix ? 'prefixed' : 'root'}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const store = new S3Store(bucket, storePrefix, client);
  const segments = ['shop', 'a.b', 'my%20db', '%C3%A9t%C3%A9', 'x-y_z'];
  const ids = ['20261202T120000Z-aaaa', '20261202T130000Z-bbbb'];
  try {
    for (const segment of segments) {
      for (const id of ids) await store.putJson(`${segment}/${id}/manifest.json`, { id });
    }
    await store.putJson('direct/object.json', {});
    expect((await store.listFolders('')).sort()).toEqual([...segments, 'direct'].sort());
    expect(await store.listFolders('my%20db/')).toEqual(ids);
    expect(await store.listFolders('no-such/')).toEqual([]);
  } finally {
    client.destroy();
  }
});
