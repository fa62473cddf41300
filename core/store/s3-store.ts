import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  paginateListObjectsV2,
  S3Client,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-s3';
import { PgferryError } from '../errors';
import { DEFAULT_UPLOAD_QUEUE_SIZE, partSizeFor } from '../strategy';
import { uploadInParts } from './s3-multipart';
import type { BackupStore, StoreEntry, UploadOptions } from './store';

/**
 * How the store's S3 client rides out a failing or stalled endpoint. Every request (each part of
 * a multipart upload on its own) is retried by the SDK's standard retry strategy: 500, 503,
 * throttling, connection errors and timeouts, up to `maxAttempts` attempts in all, with
 * exponential backoff and full jitter (a random delay up to 0.1 s, 0.2 s, 0.4 s … capped at
 * 20 s). A connection that does not open within `connectionTimeoutMs`, or a socket that stays
 * idle for `socketTimeoutMs` (a stalled endpoint), fails that attempt, which is then retried.
 */
export interface S3RetrySettings {
  maxAttempts: number;
  connectionTimeoutMs: number;
  socketTimeoutMs: number;
}

export const DEFAULT_S3_RETRY: S3RetrySettings = {
  maxAttempts: 8,
  connectionTimeoutMs: 10_000,
  socketTimeoutMs: 60_000,
};

/** The retry settings, from `AWS_MAX_ATTEMPTS` and `PGFERRY_S3_TIMEOUT_SECONDS` where set. */
export function s3RetrySettings(env: NodeJS.ProcessEnv = process.env): S3RetrySettings {
  const positive = (raw: string | undefined, name: string): number | undefined => {
    if (raw === undefined || raw === '') return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) {
      throw new PgferryError(
        'InvalidInput',
        `${name} must be a positive number (got ${JSON.stringify(raw)})`,
      );
    }
    return value;
  };
  const attempts = positive(env.AWS_MAX_ATTEMPTS, 'AWS_MAX_ATTEMPTS');
  const timeoutSeconds = positive(env.PGFERRY_S3_TIMEOUT_SECONDS, 'PGFERRY_S3_TIMEOUT_SECONDS');
  return {
    maxAttempts: attempts === undefined ? DEFAULT_S3_RETRY.maxAttempts : Math.ceil(attempts),
    connectionTimeoutMs: DEFAULT_S3_RETRY.connectionTimeoutMs,
    socketTimeoutMs: timeoutSeconds === undefined ? DEFAULT_S3_RETRY.socketTimeoutMs : timeoutSeconds * 1000,
  };
}

/** The S3 client for stores: honours AWS_ENDPOINT_URL_S3 (S3-compatible servers) and the standard chain. */
export function createS3Client(env: NodeJS.ProcessEnv = process.env): S3Client {
  const customEndpoint = Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL);
  const retry = s3RetrySettings(env);
  const client = new S3Client({
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    // S3-compatible servers rarely support virtual-hosted buckets on a custom endpoint.
    forcePathStyle: customEndpoint || env.PGFERRY_S3_FORCE_PATH_STYLE === 'true',
    followRegionRedirects: true,
    retryMode: 'standard',
    maxAttempts: retry.maxAttempts,
    requestHandler: {
      connectionTimeout: retry.connectionTimeoutMs,
      socketTimeout: retry.socketTimeoutMs,
    },
  });
  type Handler = (args: {
    input: ServiceInputTypes;
    request: unknown;
  }) => Promise<{ output: ServiceOutputTypes; response: unknown }>;
  client.middlewareStack.addRelativeTo(
    (next: Handler): Handler =>
      async (args) => {
        const request = args.request as { protocol?: string; headers?: Record<string, string> };
        if (request.protocol === 'https:' && request.headers && hasBodyChecksum(request.headers)) {
          request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        }
        return next(args);
      },
    { name: 'pgferryUnsignedPayloadOverTls', relation: 'before', toMiddleware: 'httpSigningMiddleware' },
  );
  return client;
}

/**
 * Over HTTPS a request whose body carries its own checksum is signed without hashing the body
 * (`UNSIGNED-PAYLOAD`, which S3 accepts): TLS protects the body in transit and S3 checks the
 * checksum (the SDK's CRC32 on every part and object written), so the SHA-256 the signature would
 * take of every uploaded byte is a second pass over the data that adds nothing. Over plain HTTP
 * (a test server, a private endpoint) the body stays signed.
 */
function hasBodyChecksum(headers: Record<string, string>): boolean {
  return Object.keys(headers).some((name) =>
    /^x-amz-checksum-(crc32|crc32c|crc64nvme|sha1|sha256)$/i.test(name),
  );
}

/** A bucket and key prefix on S3 or an S3-compatible server. */
export class S3Store implements BackupStore {
  readonly url: string;

  constructor(
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly client: S3Client = createS3Client(),
  ) {
    this.prefix = prefix.replace(/^\/+|\/+$/g, '');
    this.url = `s3://${bucket}${this.prefix ? `/${this.prefix}` : ''}`;
  }

  private keyOf(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '.')) {
      throw new PgferryError('InvalidInput', `store key escapes the store: ${JSON.stringify(key)}`);
    }
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private relative(fullKey: string): string {
    return this.prefix ? fullKey.slice(this.prefix.length + 1) : fullKey;
  }

  /**
   * Streams `body` up in parts (see `uploadInParts`: `queueSize + 1` part buffers, reused). On
   * failure the multipart upload is aborted there — no parts left billed; where the abort fails
   * too, the cleanup step and the bucket's lifecycle rule (abort incomplete uploads) remove them.
   */
  async upload(key: string, body: Readable, options: UploadOptions = {}): Promise<void> {
    try {
      await uploadInParts(this.client, body, {
        bucket: this.bucket,
        key: this.keyOf(key),
        contentType: options.contentType ?? 'application/octet-stream',
        partBytes: options.partBytes ?? partSizeFor(options.expectedBytes),
        queueSize: options.queueSize ?? DEFAULT_UPLOAD_QUEUE_SIZE,
      });
    } catch (err) {
      body.destroy();
      throw this.error(err, `upload ${key}`);
    }
  }

  async putJson(key: string, value: unknown): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.keyOf(key),
          Body: `${JSON.stringify(value, null, 2)}\n`,
          ContentType: 'application/json',
        }),
      );
    } catch (err) {
      throw this.error(err, `write ${key}`);
    }
  }

  /**
   * A conditional write (`If-None-Match: *`): S3 creates the object only if none exists, so of two
   * concurrent writers exactly one succeeds (the other gets 412, or 409 while the first is in
   * flight). Some S3-compatible servers ignore the header and simply overwrite; for them this
   * falls back to checking before the write and reading back after it, which refuses an object
   * that already exists and most races, but is no guarantee of mutual exclusion.
   */
  async putJsonIfAbsent(key: string, value: unknown): Promise<boolean> {
    if ((await this.getJson(key)) !== undefined) return false;
    const body = `${JSON.stringify(value, null, 2)}\n`;
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.keyOf(key),
          Body: body,
          ContentType: 'application/json',
          IfNoneMatch: '*',
        }),
      );
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw this.error(err, `write ${key}`);
    }
    return JSON.stringify(await this.getJson(key)) === JSON.stringify(JSON.parse(body));
  }

  async getJson(key: string): Promise<unknown | undefined> {
    let text: string;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
      text = await (out.Body as { transformToString(): Promise<string> }).transformToString();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.error(err, `read ${key}`);
    }
    // Outside the try: an object that is not JSON is a SyntaxError, as from a local store, not a
    // store failure (which would be retried).
    return JSON.parse(text);
  }

  async download(key: string): Promise<Readable> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
      return out.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new PgferryError('BackupNotFound', `object missing from the store: ${key}`);
      throw this.error(err, `read ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<StoreEntry> {
    try {
      for await (const page of paginateListObjectsV2(
        { client: this.client },
        { Bucket: this.bucket, Prefix: this.keyOf(prefix) },
      )) {
        for (const item of page.Contents ?? []) {
          if (item.Key) yield { key: this.relative(item.Key), bytes: item.Size ?? 0 };
        }
      }
    } catch (err) {
      throw this.error(err, `list ${prefix}`);
    }
  }

  async listFolders(prefix: string): Promise<string[]> {
    const folders: string[] = [];
    const fullPrefix = this.keyOf(prefix);
    try {
      for await (const page of paginateListObjectsV2(
        { client: this.client },
        { Bucket: this.bucket, Prefix: fullPrefix, Delimiter: '/' },
      )) {
        for (const p of page.CommonPrefixes ?? []) {
          if (p.Prefix) folders.push(p.Prefix.slice(fullPrefix.length).replace(/\/$/, ''));
        }
      }
    } catch (err) {
      throw this.error(err, `list ${prefix}`);
    }
    return folders;
  }

  async deletePrefix(prefix: string): Promise<number> {
    if (!prefix) throw new PgferryError('InvalidInput', 'refusing to delete the whole store');
    const keys: string[] = [];
    for await (const entry of this.list(prefix)) keys.push(this.keyOf(entry.key));
    // A DeleteObjects that succeeds may still refuse keys one by one (a bucket policy, Object
    // Lock, a key's own error): the rest is deleted, then the refusal fails the call.
    const refused: { Key?: string; Code?: string; Message?: string }[] = [];
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        const { Errors } = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        refused.push(...(Errors ?? []));
      } catch (err) {
        throw this.error(err, `delete ${prefix}`);
      }
    }
    await this.abortMultipartUploads(prefix);
    if (refused.length) {
      const [first] = refused;
      throw new PgferryError(
        'StoreNotWritable',
        `${this.url}: could not delete ${refused.length} of the ${keys.length} objects under ${prefix}: ` +
          `${first.Key}: ${first.Code} ${first.Message ?? ''}`.trim(),
      );
    }
    return keys.length;
  }

  async deleteObject(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw this.error(err, `delete ${key}`);
    }
  }

  async tagObjects(prefix: string, tags: Record<string, string>): Promise<number> {
    const keys: string[] = [];
    for await (const entry of this.list(prefix)) keys.push(entry.key);
    // The manifest last: once it carries the tags, every object of the folder does.
    keys.sort((a, b) => Number(a.endsWith('/manifest.json')) - Number(b.endsWith('/manifest.json')));
    for (const key of keys) {
      const merged = { ...((await this.objectTags(key)) ?? {}), ...tags };
      try {
        await this.client.send(
          new PutObjectTaggingCommand({
            Bucket: this.bucket,
            Key: this.keyOf(key),
            Tagging: { TagSet: Object.entries(merged).map(([Key, Value]) => ({ Key, Value })) },
          }),
        );
      } catch (err) {
        throw this.error(err, `tag ${key}`);
      }
    }
    return keys.length;
  }

  async objectTags(key: string): Promise<Record<string, string> | undefined> {
    try {
      const out = await this.client.send(
        new GetObjectTaggingCommand({ Bucket: this.bucket, Key: this.keyOf(key) }),
      );
      return Object.fromEntries((out.TagSet ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.error(err, `read the tags of ${key}`);
    }
  }

  private async abortMultipartUploads(prefix: string): Promise<void> {
    let uploads: { Key?: string; UploadId?: string }[];
    try {
      const out = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.keyOf(prefix) }),
      );
      uploads = out.Uploads ?? [];
    } catch (err) {
      // Some S3-compatible servers do not implement the listing; their lifecycle must clean up.
      if (isNotImplemented(err)) return;
      throw this.error(err, `list multipart uploads under ${prefix}`);
    }
    for (const u of uploads) {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }),
      );
    }
  }

  async checkWritable(): Promise<void> {
    const key = `.pgferry-write-test-${randomBytes(4).toString('hex')}`;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key), Body: 'ok' }));
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
    } catch (err) {
      const e = this.error(err, 'write a test object');
      throw new PgferryError(e instanceof PgferryError ? e.code : 'StoreNotWritable', e.message, {
        cause: err,
      });
    }
  }

  private error(err: unknown, action: string): Error {
    if (err instanceof PgferryError) return err;
    const e = err as {
      name?: string;
      message?: string;
      $metadata?: { httpStatusCode?: number };
      code?: string;
    };
    const status = e.$metadata?.httpStatusCode;
    const what = `${this.url}: could not ${action}`;
    if (e.name === 'NoSuchBucket') {
      return new PgferryError('StoreNotWritable', `${what}: bucket ${this.bucket} does not exist`, {
        cause: err,
      });
    }
    if (status === 403 || e.name === 'AccessDenied' || e.name === 'InvalidAccessKeyId') {
      return new PgferryError('StoreNotWritable', `${what}: access denied (${e.name})`, { cause: err });
    }
    if (status === undefined || status >= 500 || e.code === 'ECONNREFUSED' || e.name === 'TimeoutError') {
      return new PgferryError('StoreUnavailable', `${what}: ${e.name ?? 'error'} ${e.message ?? ''}`.trim(), {
        cause: err,
      });
    }
    return new PgferryError('StoreNotWritable', `${what}: ${e.name ?? 'error'} ${e.message ?? ''}`.trim(), {
      cause: err,
    });
  }
}

/**
 * The object does not exist — and only that: a 404 for a missing bucket (`NoSuchBucket`, a bucket
 * deleted while a listing was read) is a store error, never a missing object, or a catalog would
 * shrink silently. (`NotFound` is what S3 answers without a body, to HEAD.)
 */
function isNotFound(err: unknown): boolean {
  const e = err as { name?: string };
  return e.name === 'NoSuchKey' || e.name === 'NotFound';
}

/** 412: the object exists; 409: a concurrent conditional write to the same key is in flight. */
function isConditionFailed(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return (
    status === 412 ||
    status === 409 ||
    e.name === 'PreconditionFailed' ||
    e.name === 'ConditionalRequestConflict'
  );
}

function isNotImplemented(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NotImplemented' || e.$metadata?.httpStatusCode === 501;
}
