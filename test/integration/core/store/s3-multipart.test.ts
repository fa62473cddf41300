/**
 * The S3 store's multipart upload against the S3 server: a stream's bytes go into a fixed set of
 * `queueSize + 1` part buffers, reused from part to part (the runner's memory stays flat whatever
 * the object's size), no more than `queueSize` parts upload at once, every part but the last has
 * the part size, and a failure — of the body or of a part — aborts the upload after the parts in
 * flight have settled, leaving no object.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  S3Client,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-s3';
import { uploadInParts } from '../../../../core/store/s3-multipart';
import { type RunningS3, runS3rverInProcess, s3ClientConfig } from '../../../../scripts/support/s3-server';

const MiB = 1024 * 1024;
const PART = 5 * MiB;
const BUCKET = 'multipart';

let dir: string;
let server: RunningS3;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-s3-multipart-'));
  server = await runS3rverInProcess({ directory: dir });
  const client = new S3Client(s3ClientConfig(server.info));
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  client.destroy();
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Watched {
  client: S3Client;
  /** Commands in the order they were sent, with the part number of each UploadPart. */
  sent: { command: string; part?: number; body?: Uint8Array }[];
  /** Requests sent and settled, in order. */
  events: { event: 'sent' | 'settled'; command: string; part?: number }[];
  maxPartsInFlight: number;
}

/** A client of the S3 server that records its requests; `failPart` fails that part's request. */
function watchedClient(failPart?: number): Watched {
  const client = new S3Client(s3ClientConfig(server.info));
  const watched: Watched = { client, sent: [], events: [], maxPartsInFlight: 0 };
  let inFlight = 0;
  type Handler = (args: { input: ServiceInputTypes }) => Promise<{ output: ServiceOutputTypes }>;
  client.middlewareStack.add(
    ((next: Handler, context: { commandName?: string }): Handler =>
      async (args) => {
        const command = (context.commandName ?? '').replace(/Command$/, '');
        const part = (args.input as { PartNumber?: number }).PartNumber;
        const body = (args.input as { Body?: unknown }).Body;
        watched.sent.push({ command, part, ...(body instanceof Uint8Array ? { body } : {}) });
        watched.events.push({ event: 'sent', command, part });
        const isPart = command === 'UploadPart';
        if (isPart) watched.maxPartsInFlight = Math.max(watched.maxPartsInFlight, ++inFlight);
        try {
          if (isPart && part === failPart) {
            // Slow enough for the other parts in flight to still be uploading.
            await new Promise((resolve) => setTimeout(resolve, 50));
            throw Object.assign(new Error('injected part failure'), { name: 'InjectedFailure' });
          }
          return await next(args);
        } finally {
          if (isPart) inFlight--;
          watched.events.push({ event: 'settled', command, part });
        }
      }) as never, // the SDK's middleware types, loosely: only input and output are used
    { step: 'initialize', name: 'testWatch' },
  );
  return watched;
}

/** `bytes` of a deterministic pattern, in chunks of `chunk` bytes (as a pipe delivers them). */
function pattern(bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i + 4 <= bytes; i += 4) out.writeUInt32LE((i * 2654435761) >>> 0, i);
  return out;
}

function chunked(data: Buffer, chunk: number, failAfter?: number): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += chunk) {
        if (failAfter !== undefined && i >= failAfter) throw new Error('the dump failed');
        yield data.subarray(i, i + chunk);
      }
    })(),
  );
}

async function read(client: S3Client, key: string): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(
    await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
  );
}

async function exists(client: S3Client, key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    return true;
  } catch (err) {
    if ((err as { name?: string }).name === 'NotFound') return false;
    throw err;
  }
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('a 26 MiB stream goes up in 5 MiB parts through three reused buffers, two parts in flight', async () => {
  const w = watchedClient();
  try {
    const data = pattern(26 * MiB + 3);
    await uploadInParts(w.client, chunked(data, 65_537), {
      bucket: BUCKET,
      key: 'big.bin',
      contentType: 'application/octet-stream',
      partBytes: PART,
      queueSize: 2,
    });
    const parts = w.sent.filter((s) => s.command === 'UploadPart');
    expect(parts.map((p) => p.part)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(parts.map((p) => p.body?.byteLength)).toEqual([PART, PART, PART, PART, PART, MiB + 3]);
    // queueSize + 1 buffers, allocated once: the parts' bytes live in no other memory.
    expect(new Set(parts.map((p) => p.body?.buffer)).size).toBeLessThanOrEqual(3);
    expect(w.maxPartsInFlight).toBeLessThanOrEqual(2);
    expect(w.sent.map((s) => s.command)).toEqual([
      'CreateMultipartUpload',
      ...parts.map(() => 'UploadPart'),
      'CompleteMultipartUpload',
    ]);
    expect(sha256(await read(w.client, 'big.bin'))).toBe(sha256(data));
  } finally {
    w.client.destroy();
  }
});

test.each([
  [
    'exactly two parts: no empty third part',
    2 * PART,
    ['CreateMultipartUpload', 'UploadPart', 'UploadPart', 'CompleteMultipartUpload'],
  ],
  ['under one part: a single PUT', PART - 1, ['PutObject']],
  ['empty: an empty object', 0, ['PutObject']],
])('an object of %s', async (_, bytes, commands) => {
  const w = watchedClient();
  try {
    const data = pattern(bytes);
    await uploadInParts(w.client, chunked(data, MiB), {
      bucket: BUCKET,
      key: `sized-${bytes}.bin`,
      contentType: 'application/octet-stream',
      partBytes: PART,
      queueSize: 2,
    });
    expect(w.sent.map((s) => s.command)).toEqual(commands);
    expect(sha256(await read(w.client, `sized-${bytes}.bin`))).toBe(sha256(data));
  } finally {
    w.client.destroy();
  }
});

test('a body that fails mid-stream aborts the upload once its parts have settled, leaving no object', async () => {
  const w = watchedClient();
  try {
    const body = chunked(pattern(30 * MiB), MiB, 17 * MiB);
    await expect(
      uploadInParts(w.client, body, {
        bucket: BUCKET,
        key: 'failed-body.bin',
        contentType: 'application/octet-stream',
        partBytes: PART,
        queueSize: 2,
      }),
    ).rejects.toThrow('the dump failed');
    const settled = w.events.filter((e) => e.event === 'settled');
    expect(settled.filter((e) => e.command === 'UploadPart')).toHaveLength(3);
    expect(settled.at(-1)?.command).toBe('AbortMultipartUpload');
    expect(w.sent.some((s) => s.command === 'CompleteMultipartUpload')).toBe(false);
    expect(await exists(w.client, 'failed-body.bin')).toBe(false);
  } finally {
    w.client.destroy();
  }
});

test('a part that fails stops the upload: no part starts after it, the upload is aborted last', async () => {
  const w = watchedClient(3);
  try {
    await expect(
      uploadInParts(w.client, chunked(pattern(60 * MiB), MiB), {
        bucket: BUCKET,
        key: 'failed-part.bin',
        contentType: 'application/octet-stream',
        partBytes: PART,
        queueSize: 2,
      }),
    ).rejects.toThrow('injected part failure');
    const failed = w.events.findIndex((e) => e.event === 'settled' && e.part === 3);
    expect(failed).toBeGreaterThan(0);
    const after = w.events.slice(failed + 1);
    expect(after.filter((e) => e.event === 'sent').map((e) => e.command)).toEqual(['AbortMultipartUpload']);
    expect(after.at(-1)).toEqual({ event: 'settled', command: 'AbortMultipartUpload', part: undefined });
    expect(await exists(w.client, 'failed-part.bin')).toBe(false);
  } finally {
    w.client.destroy();
  }
});
