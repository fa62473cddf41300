/**
 * A scripted, fault-injecting HTTP proxy in front of the harness's s3rver: point a store's
 * `AWS_ENDPOINT_URL_S3` at `proxy.endpoint`, then script faults per test — answer 500/503 (or
 * another S3 error: NoSuchBucket, AccessDenied) to the next N matching requests, stall them
 * (accept, never answer), or fail them for good. Requests that match no active fault are forwarded unchanged (headers included, so signatures hold).
 * Every request is logged with its S3 operation and what the proxy did with it.
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** The S3 operation of a request, told from its method and query (path-style addressing). */
export type S3Operation =
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListMultipartUploads'
  | 'PutObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'DeleteObjects'
  | 'ListObjects'
  | 'Other';

export interface ProxiedRequest {
  method: string;
  /** The key, without the bucket (empty for bucket-level requests). */
  key: string;
  operation: S3Operation;
  query: URLSearchParams;
}

/**
 * Answer an S3 error — 500/503 (retried by the SDK), or any status with its S3 error code, e.g.
 * `{ status: 404, code: 'NoSuchBucket' }` or `{ status: 403, code: 'AccessDenied' }` — or stall;
 * or, to a DeleteObjects, `200 OK` refusing each key with `refuseEachKey` (S3's per-key errors, as
 * a bucket policy or Object Lock gives them): the request succeeds, nothing is deleted.
 */
export type FaultAction =
  | { status: 500 | 503 }
  | { status: number; code: string }
  | { stall: true }
  | { refuseEachKey: string };

export interface Fault {
  match: (request: ProxiedRequest) => boolean;
  action: FaultAction;
  /** How many matching requests get the fault (default: all, for good). */
  times?: number;
}

export interface LoggedRequest extends ProxiedRequest {
  /** The status answered, or `stalled`. */
  outcome: number | 'stalled';
}

export interface S3FaultProxy {
  /** `http://127.0.0.1:<port>`: the endpoint to give the store. */
  endpoint: string;
  log: LoggedRequest[];
  /** Adds a fault; it applies to requests that start after this call. */
  inject(fault: Fault): void;
  /** Removes every fault: the proxy forwards everything from now on. */
  heal(): void;
  close(): Promise<void>;
}

export function operationOf(method: string, key: string, params: URLSearchParams): S3Operation {
  // The SDK names some operations in the query (`?x-id=PutObject`): not a sub-resource.
  const query = new URLSearchParams(params);
  query.delete('x-id');
  if (method === 'POST' && query.has('uploads')) return 'CreateMultipartUpload';
  if (method === 'POST' && query.has('uploadId')) return 'CompleteMultipartUpload';
  if (method === 'POST' && query.has('delete')) return 'DeleteObjects';
  if (method === 'PUT' && query.has('partNumber')) return 'UploadPart';
  if (method === 'DELETE' && query.has('uploadId')) return 'AbortMultipartUpload';
  if (method === 'GET' && key === '' && query.has('uploads')) return 'ListMultipartUploads';
  if (method === 'GET' && key === '') return 'ListObjects';
  if (method === 'PUT' && key !== '' && query.size === 0) return 'PutObject';
  if (method === 'GET' && key !== '' && query.size === 0) return 'GetObject';
  if (method === 'HEAD') return 'HeadObject';
  if (method === 'DELETE' && key !== '') return 'DeleteObject';
  return 'Other';
}

const ERROR_CODES = { 500: 'InternalError', 503: 'ServiceUnavailable' } as const;

/** Starts the proxy in this process, forwarding to `upstream` (e.g. the harness's s3rver). */
export async function startS3FaultProxy(upstream: string): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  const faults: { fault: Fault; left: number }[] = [];
  const log: LoggedRequest[] = [];
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const [, , ...keyParts] = url.pathname.split('/');
    const request: ProxiedRequest = {
      method: req.method ?? 'GET',
      key: decodeURIComponent(keyParts.join('/')),
      operation: 'Other',
      query: url.searchParams,
    };
    request.operation = operationOf(request.method, request.key, request.query);
    const active = faults.find((f) => f.left > 0 && f.fault.match(request));
    if (active) {
      active.left -= 1;
      const { action } = active.fault;
      if ('stall' in action) {
        // Take the request in, never answer: only the client's timeout ends it.
        log.push({ ...request, outcome: 'stalled' });
        req.resume();
        return;
      }
      if ('refuseEachKey' in action) {
        log.push({ ...request, outcome: 200 });
        const body: Buffer[] = [];
        req.on('data', (chunk: Buffer) => body.push(chunk));
        req.on('end', () => {
          const keys = [
            ...Buffer.concat(body)
              .toString('utf8')
              .matchAll(/<Key>(.*?)<\/Key>/g),
          ].map((m) => m[1]);
          res.writeHead(200, { 'content-type': 'application/xml' });
          res.end(
            `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult>${keys
              .map(
                (key) =>
                  `<Error><Key>${key}</Key><Code>${action.refuseEachKey}</Code><Message>injected by the test proxy</Message></Error>`,
              )
              .join('')}</DeleteResult>`,
          );
        });
        return;
      }
      log.push({ ...request, outcome: action.status });
      req.resume();
      req.on('end', () => {
        const code = 'code' in action ? action.code : ERROR_CODES[action.status];
        res.writeHead(action.status, { 'content-type': 'application/xml' });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected by the test proxy</Message></Error>`,
        );
      });
      return;
    }
    const forwarded = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upstreamRes) => {
        log.push({ ...request, outcome: upstreamRes.statusCode ?? 0 });
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    forwarded.on('error', () => res.destroy());
    req.on('error', () => forwarded.destroy());
    res.on('close', () => {
      if (!res.writableFinished) forwarded.destroy();
    });
    req.pipe(forwarded);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    inject(fault) {
      faults.push({ fault, left: fault.times ?? Number.POSITIVE_INFINITY });
    },
    heal() {
      faults.length = 0;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
