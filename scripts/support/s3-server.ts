/**
 * A real S3-protocol server for the integration tests and the benchmark: s3rver (objects stored on disk), in-process,
 * on 127.0.0.1 with a free port.
 *
 * s3rver 3.7.1 predates the AWS SDK's default "flexible checksums": for a PutObject/UploadPart whose
 * body is a stream, @aws-sdk/client-s3 (>= 3.729) sends the body `Content-Encoding: aws-chunked` with a
 * checksum trailer (`x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`). s3rver would store the
 * chunk framing verbatim (silently corrupt objects), so a middleware in front of it decodes aws-chunked
 * bodies, verifies the declared length and CRC32 trailer, and strips `aws-chunked` from Content-Encoding,
 * like S3 does. Signature V4 is not verified by s3rver (any secret works; the access key id must be
 * `S3RVER`).
 *
 * s3rver's delimited listing (ListObjects with `Delimiter`) reports a common prefix only for a
 * folder that holds an object directly: it stops walking its directories at the first delimiter, so
 * `shop/` is missing when every object lies deeper (`shop/<backupId>/manifest.json`). S3 reports
 * every prefix up to the next delimiter, however deep the keys; {@link withDeepCommonPrefixes} makes
 * s3rver do the same.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { CreateBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { REPO_ROOT } from '../../lib/paths';

export const TEST_BUCKET = 'pgferry-test';
/** s3rver's only account: access key id `S3RVER` (secret not checked for SigV4, but it is `S3RVER`). */
export const S3RVER_ACCESS_KEY_ID = 'S3RVER';
export const S3RVER_SECRET_ACCESS_KEY = 'S3RVER';
export const TEST_REGION = 'us-east-1';

export interface S3ServerInfo {
  /** e.g. `http://127.0.0.1:41234` (an IP endpoint: the SDK uses path-style addressing for it). */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Where s3rver stores buckets and objects. */
  directory: string;
}

export interface RunningS3 {
  info: S3ServerInfo;
  close(): Promise<void>;
}

export function s3ClientConfig(info: Omit<S3ServerInfo, 'directory' | 'bucket'>): S3ClientConfig {
  return {
    endpoint: info.endpoint,
    region: info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
  };
}

// --- aws-chunked ---------------------------------------------------------------------------------

export interface DecodedAwsChunked {
  data: Buffer;
  /** Trailer headers (lower-cased names), e.g. `x-amz-checksum-crc32`. */
  trailers: Record<string, string>;
}

/**
 * Decodes an `aws-chunked` body: `<hex-size>[;chunk-signature=...]\r\n<data>\r\n ... 0[;...]\r\n`
 * followed by optional trailer lines and an empty line.
 */
export function decodeAwsChunked(body: Buffer): DecodedAwsChunked {
  const parts: Buffer[] = [];
  const trailers: Record<string, string> = {};
  let pos = 0;
  const readLine = (): string => {
    const end = body.indexOf('\r\n', pos);
    if (end < 0) throw new Error('aws-chunked body is truncated (missing CRLF)');
    const line = body.subarray(pos, end).toString('latin1');
    pos = end + 2;
    return line;
  };
  for (;;) {
    const sizeLine = readLine();
    const m = /^([0-9a-fA-F]+)(;.*)?$/.exec(sizeLine);
    if (!m)
      throw new Error(
        `aws-chunked body has a malformed chunk header ${JSON.stringify(sizeLine.slice(0, 80))}`,
      );
    const size = Number.parseInt(m[1], 16);
    if (size === 0) break;
    if (pos + size + 2 > body.length) throw new Error('aws-chunked body is truncated (chunk data)');
    parts.push(body.subarray(pos, pos + size));
    pos += size;
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a)
      throw new Error('aws-chunked chunk data not followed by CRLF');
    pos += 2;
  }
  // Trailers until an empty line (or the end of the body).
  while (pos < body.length) {
    const line = readLine();
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon <= 0)
      throw new Error(`aws-chunked body has a malformed trailer ${JSON.stringify(line.slice(0, 80))}`);
    trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  if (body.subarray(pos).toString('latin1').trim() !== '')
    throw new Error('aws-chunked body has data after the trailers');
  return { data: Buffer.concat(parts), trailers };
}

function crc32Base64(data: Buffer): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(zlib.crc32(data) >>> 0);
  return out.toString('base64');
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

// Minimal typings of the parts of s3rver / koa used here (s3rver ships no type declarations).
interface KoaContext {
  req: NodeJS.ReadableStream & { headers: Record<string, string | string[] | undefined> };
  get(field: string): string;
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<unknown>) => Promise<unknown>;
interface ListObjectsOptions {
  delimiter?: string;
  prefix?: string;
  startAfter?: string;
  maxKeys?: number;
}
interface ListObjectsResult {
  objects: { key: string }[];
  commonPrefixes: string[];
  isTruncated: boolean;
}
interface S3rverStore {
  getBucketPath(bucket: string): string;
  listObjects(bucket: string, options: ListObjectsOptions): Promise<ListObjectsResult>;
}
interface S3rverInstance {
  middleware: KoaMiddleware[];
  store: S3rverStore;
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  httpServer?: import('node:http').Server;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverInstance;
type S3ErrorConstructor = new (code: string, message: string, detail?: Record<string, unknown>) => Error;

/** Where s3rver keeps an object's bytes: `<bucket dir>/<key>._S3rver_object` (keys as paths, POSIX). */
const OBJECT_FILE_SUFFIX = '._S3rver_object';

/**
 * Makes the store's delimited listing report every common prefix as S3 does (see the file's
 * comment): the objects and truncation stay s3rver's; the prefixes are completed from every key
 * under the prefix (after `startAfter`, and — on a truncated page — up to its last object).
 */
function withDeepCommonPrefixes(store: S3rverStore): void {
  const listObjects = store.listObjects.bind(store);
  store.listObjects = async (bucket, options) => {
    const result = await listObjects(bucket, options);
    const { delimiter, prefix = '', startAfter = '' } = options;
    if (!delimiter) return result;
    const bucketDir = store.getBucketPath(bucket);
    const lastObject = result.isTruncated ? result.objects[result.objects.length - 1]?.key : undefined;
    const prefixes = new Set(result.commonPrefixes);
    for (const key of keysUnder(bucketDir, prefix)) {
      if (key <= startAfter || (lastObject !== undefined && key > lastObject)) continue;
      const at = key.indexOf(delimiter, prefix.length);
      if (at !== -1) prefixes.add(key.slice(0, at + delimiter.length));
    }
    return { ...result, commonPrefixes: [...prefixes].sort() };
  };
}

/** Every object key in the bucket directory that starts with `prefix`. */
function keysUnder(bucketDir: string, prefix: string): string[] {
  const start = path.posix.join(bucketDir, prefix.slice(0, prefix.lastIndexOf('/') + 1));
  let names: string[];
  try {
    names = readdirSync(start, { recursive: true, encoding: 'utf8' });
  } catch (err) {
    if (
      (err as NodeJS.ErrnoException).code === 'ENOENT' ||
      (err as NodeJS.ErrnoException).code === 'ENOTDIR'
    ) {
      return [];
    }
    throw err;
  }
  return names
    .filter((name) => name.endsWith(OBJECT_FILE_SUFFIX))
    .map((name) =>
      path.posix.relative(bucketDir, path.posix.join(start, name)).slice(0, -OBJECT_FILE_SUFFIX.length),
    )
    .filter((key) => key.startsWith(prefix));
}

function loadS3rver(): { S3rver: S3rverConstructor; S3Error: S3ErrorConstructor } {
  return { S3rver: require('s3rver'), S3Error: require('s3rver/lib/models/error') };
}

function awsChunkedMiddleware(S3Error: S3ErrorConstructor): KoaMiddleware {
  return async (ctx, next) => {
    const encodings = ctx
      .get('content-encoding')
      .split(',')
      .map((e) => e.trim())
      .filter((e) => e.length > 0);
    if (!encodings.some((e) => e.toLowerCase() === 'aws-chunked')) return next();

    const raw = await readAll(ctx.req);
    let decoded: DecodedAwsChunked;
    try {
      decoded = decodeAwsChunked(raw);
    } catch (e) {
      throw new S3Error('IncompleteBody', (e as Error).message);
    }
    const headers = ctx.req.headers;
    const declared = headers['x-amz-decoded-content-length'];
    if (declared !== undefined && Number(declared) !== decoded.data.length) {
      throw new S3Error(
        'IncompleteBody',
        `x-amz-decoded-content-length is ${declared} but the aws-chunked body holds ${decoded.data.length} bytes`,
      );
    }
    const crc = decoded.trailers['x-amz-checksum-crc32'];
    if (crc !== undefined && crc !== crc32Base64(decoded.data)) {
      throw new S3Error(
        'BadDigest',
        `The CRC32 you specified (${crc}) did not match the calculated checksum.`,
      );
    }

    // Present the decoded body to s3rver as if it had been sent plainly.
    const rest = encodings.filter((e) => e.toLowerCase() !== 'aws-chunked');
    if (rest.length > 0) headers['content-encoding'] = rest.join(', ');
    else delete headers['content-encoding'];
    headers['content-length'] = String(decoded.data.length);
    delete headers['x-amz-decoded-content-length'];
    delete headers['x-amz-trailer'];
    const body = Object.assign(Readable.from([decoded.data]), {
      headers,
      method: (ctx.req as unknown as { method?: string }).method,
      url: (ctx.req as unknown as { url?: string }).url,
    });
    ctx.req = body;
    return next();
  };
}

// --- server --------------------------------------------------------------------------------------

export interface StartS3Options {
  /** Directory for s3rver's storage (created by s3rver if missing). */
  directory: string;
  bucket?: string;
  /** Serve HTTPS with this key and certificate (PEM) instead of plain HTTP. */
  tls?: { key: string; cert: string };
}

/** Starts s3rver in this process (used inside the child process started by {@link startS3}). */
export async function runS3rverInProcess(opts: StartS3Options): Promise<RunningS3> {
  const { S3rver, S3Error } = loadS3rver();
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: opts.directory,
    resetOnClose: false,
    ...opts.tls,
  });
  // Koa composes `middleware` when the HTTP server is created (in run()), so this goes first.
  server.middleware.unshift(awsChunkedMiddleware(S3Error));
  withDeepCommonPrefixes(server.store);
  const addr = await server.run();
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    server.httpServer?.closeAllConnections();
    await server.close();
  };
  const info: S3ServerInfo = {
    endpoint: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${addr.port}`,
    bucket: opts.bucket ?? TEST_BUCKET,
    accessKeyId: S3RVER_ACCESS_KEY_ID,
    secretAccessKey: S3RVER_SECRET_ACCESS_KEY,
    region: TEST_REGION,
    directory: opts.directory,
  };
  try {
    const client = new S3Client(s3ClientConfig(info));
    try {
      await client.send(new CreateBucketCommand({ Bucket: info.bucket }));
    } finally {
      client.destroy();
    }
  } catch (e) {
    await close().catch(() => undefined);
    throw new Error(`s3rver started at ${info.endpoint} but creating bucket ${info.bucket} failed: ${e}`);
  }
  return { info, close };
}

type ChildMessage = { type: 'ready'; info: S3ServerInfo } | { type: 'error'; message: string };

/** Entry point of the s3rver child process (see {@link startS3}). */
export function s3ServerChildMain(): void {
  const opts = JSON.parse(process.env.PGFERRY_S3_OPTIONS ?? '{}') as StartS3Options;
  const send = (m: ChildMessage) => process.send?.(m);
  runS3rverInProcess(opts).then(
    (running) => {
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        running.close().finally(() => process.exit(0));
      };
      // Stop with the parent: on request, on signals, or when the IPC channel goes away (parent died).
      process.on('message', (m: unknown) => {
        if ((m as { type?: string } | null)?.type === 'close') stop();
      });
      process.on('disconnect', stop);
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      send({ type: 'ready', info: running.info });
    },
    (e: unknown) => {
      send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      process.exitCode = 1;
      process.disconnect?.();
    },
  );
}

/** Node code run by the child: a require hook that transpiles .ts with `typescript`, then the entry point. */
const CHILD_BOOTSTRAP = `
const fs = require('node:fs');
const ts = require(process.env.PGFERRY_S3_TYPESCRIPT);
require.extensions['.ts'] = (m, file) => m._compile(ts.transpileModule(fs.readFileSync(file, 'utf8'), {
  fileName: file,
  compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
}).outputText, file);
require(process.env.PGFERRY_S3_MODULE).s3ServerChildMain();
`;

export interface S3ChildProcess extends RunningS3 {
  pid: number;
  logFile: string;
}

/**
 * Starts s3rver in a child Node process and resolves once the bucket exists.
 *
 * Not in the jest parent process on purpose: when jest runs tests in band (one test file, `-i`), test
 * code runs in the parent process, and a synchronous child-process call there (execFileSync of the CLI,
 * spawnSync) would block s3rver's event loop and deadlock. The child exits when asked (close()), on
 * SIGTERM/SIGINT, or when its parent dies (IPC disconnect).
 */
export function startS3(
  opts: StartS3Options & { logFile: string; timeoutMs?: number },
): Promise<S3ChildProcess> {
  const logFd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in its legacy
    // provider: without it every truncated listing (more keys than MaxKeys) is a 500 InternalError.
    child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD_BOOTSTRAP], {
      cwd: REPO_ROOT,
      stdio: ['ignore', logFd, logFd, 'ipc'],
      env: {
        ...process.env,
        PGFERRY_S3_MODULE: __filename,
        PGFERRY_S3_TYPESCRIPT: require.resolve('typescript'),
        PGFERRY_S3_OPTIONS: JSON.stringify({ directory: opts.directory, bucket: opts.bucket }),
      },
    });
  } finally {
    closeSync(logFd);
  }
  const logTail = () => {
    try {
      return readFileSync(opts.logFile, 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  };
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return new Promise<S3ChildProcess>((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(
      () => fail(new Error(`s3rver child did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.removeAllListeners('message');
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(new Error(`${e.message}\n--- s3rver log tail (${opts.logFile}) ---\n${logTail()}`));
    };
    child.once('error', (e) => fail(e));
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      fail(new Error(`s3rver child exited (code ${code}, signal ${signal})`));
    child.once('exit', onExit);
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'error') {
        fail(new Error(`s3rver child failed: ${m.message}`));
        return;
      }
      clearTimeout(timer);
      child.removeListener('exit', onExit);
      child.removeAllListeners('message');
      // Do not keep the jest process alive because of the child; close() waits for it explicitly.
      child.unref();
      child.channel?.unref();
      let closing: Promise<void> | undefined;
      const close = (): Promise<void> => {
        closing ??= (async () => {
          child.ref();
          child.channel?.ref();
          if (child.connected) child.send({ type: 'close' });
          else child.kill('SIGTERM');
          const timeout = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timeout);
        })();
        return closing;
      };
      resolve({ info: m.info, close, pid: child.pid ?? 0, logFile: opts.logFile });
    });
  });
}
