import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  type ChecksumAlgorithm,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { BufferPool } from '../buffer-pool';
import { PgferryError } from '../errors';

/** S3's limits on a multipart upload's parts. */
export const S3_MIN_PART_BYTES = 5 * 1024 * 1024;
export const S3_MAX_PARTS = 10_000;

export interface PartUploadOptions {
  bucket: string;
  key: string;
  contentType: string;
  /** Every part but the last has exactly this many bytes (S3's minimum: 5 MiB). */
  partBytes: number;
  /** Parts uploading at once. */
  queueSize: number;
}

/**
 * Streams `body` to S3 as one object: a single PUT when it fits in one part, else a multipart
 * upload of `partBytes` parts, `queueSize` of them uploading while the next fills.
 *
 * The runner's memory is what this holds: `queueSize + 1` part buffers (a `BufferPool`),
 * allocated once and reused for every part, the stream's bytes copied straight into them —
 * nothing else, whatever the object's size. (`@aws-sdk/lib-storage`'s `Upload`, used before, concatenated each part into
 * a new buffer; the dead parts piled up outside V8's heap until its next full collection and put
 * the runner's peak resident memory 20–50 MiB above a backup to a folder, growing with the
 * database.) The SDK sends a part's buffer as it is, on every attempt of its retries: it
 * checksums and signs it in place.
 *
 * On failure — a part failing after the SDK's retries, or the body failing — no more parts are
 * started, the parts in flight are waited for and the multipart upload is aborted (an abort that
 * fails too is left to the cleanup step and the bucket's lifecycle rule), then the first error is
 * thrown.
 */
export async function uploadInParts(
  client: S3Client,
  body: Readable,
  options: PartUploadOptions,
): Promise<void> {
  const { bucket, key, contentType, partBytes, queueSize } = options;
  if (!Number.isInteger(partBytes) || partBytes < S3_MIN_PART_BYTES) {
    throw new RangeError(`part size ${partBytes} is below S3's minimum of ${S3_MIN_PART_BYTES} bytes`);
  }
  if (!Number.isInteger(queueSize) || queueSize < 1) {
    throw new RangeError(`parts in flight must be a positive integer (got ${queueSize})`);
  }
  // As the SDK's own uploader does: the parts carry the checksum the SDK computes by default.
  const checksum: ChecksumAlgorithm | undefined =
    (await client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED' ? 'CRC32' : undefined;

  // queueSize parts in flight and the one being filled.
  const pool = new BufferPool(partBytes, queueSize + 1);
  const inFlight = new Set<Promise<void>>();
  const parts: CompletedPart[] = [];
  let failure: { error: unknown } | undefined;
  let uploadId: string | undefined;
  let partNumber = 0;

  const startPart = async (buffer: Buffer, bytes: number): Promise<void> => {
    if (uploadId === undefined) {
      const created = await client.send(
        new CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          ContentType: contentType,
          ChecksumAlgorithm: checksum,
        }),
      );
      if (!created.UploadId) throw new Error(`S3 returned no upload id for ${key}`);
      uploadId = created.UploadId;
    }
    while (inFlight.size >= queueSize) await Promise.race(inFlight);
    if (failure) throw failure.error;
    partNumber += 1;
    if (partNumber > S3_MAX_PARTS) {
      throw new PgferryError(
        'StoreNotWritable',
        `${key} needs more than S3's ${S3_MAX_PARTS} parts of ${partBytes / 1024 / 1024} MiB`,
      );
    }
    const PartNumber = partNumber;
    const sent = client
      .send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber,
          Body: buffer.subarray(0, bytes),
          ContentLength: bytes,
          ChecksumAlgorithm: checksum,
        }),
      )
      .then((out) => {
        if (!out.ETag) throw new Error(`S3 returned no ETag for part ${PartNumber} of ${key}`);
        parts.push({ PartNumber, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 });
        pool.release(buffer);
      })
      .catch((error: unknown) => {
        failure ??= { error };
        pool.fail(error);
      })
      .finally(() => inFlight.delete(sent));
    inFlight.add(sent);
  };

  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (failure) throw failure.error;
      const pending = pool.fill(chunk, startPart);
      if (pending) await pending;
    }
    const rest = pool.takeRest();
    if (uploadId === undefined) {
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          ContentType: contentType,
          Body: rest ? rest.buffer.subarray(0, rest.bytes) : Buffer.alloc(0),
        }),
      );
      return;
    }
    if (rest) await startPart(rest.buffer, rest.bytes);
    await Promise.all(inFlight);
    if (failure) throw failure.error;
    parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  } catch (err) {
    failure ??= { error: err };
    await Promise.all(inFlight);
    if (uploadId !== undefined) {
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
        .catch(() => undefined);
    }
    throw failure.error;
  }
}
