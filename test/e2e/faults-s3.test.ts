/**
 * An S3 endpoint that fails during a backup, injected by a scripted proxy in front of the real
 * S3-protocol server (test/support/s3-fault-proxy.ts): 500s and 503s and a stalled request are
 * retried with backoff and the backup succeeds; an endpoint that keeps failing ends the backup
 * cleanly — its multipart upload aborted, nothing stored or listed, the lease released — and the
 * next run, with the endpoint healthy, succeeds.
 *
 * The dump is stored uncompressed and is about 20 MB, so it goes up in several 8 MiB parts.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { BackupManifest } from '../../core/contracts';
import { currentLease } from '../../core/lease';
import { S3Store } from '../../core/store/s3-store';
import { backupObjectKey } from '../../core/store-keys';
import { runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';
import { type ProxiedRequest, type S3FaultProxy, startS3FaultProxy } from '../support/s3-fault-proxy';
import { listS3Keys, readStored, sha256 } from '../support/store';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('s3faults');
let proxy: S3FaultProxy;

beforeAll(async () => {
  proxy = await startS3FaultProxy(env.s3.endpoint);
  await createSeededDatabase(
    pg,
    database,
    `CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS v FROM generate_series(1, 250000) g`,
  );
});
afterAll(async () => {
  await proxy.close();
  await dropDatabase(pg, database);
});
afterEach(() => {
  proxy.heal();
  proxy.log.length = 0;
});

let prefix = '';

function newStore() {
  prefix = uniqueName('s3faults');
  return {
    url: `s3://${env.s3.bucket}/${prefix}`,
    /** The store read directly, not through the proxy. */
    direct: new S3Store(env.s3.bucket, prefix, new S3Client(env.s3.clientConfig())),
  };
}

/** The CLI's S3 settings, its endpoint being the proxy; idle sockets time out after 2 s. */
function throughProxy(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...env.s3.env(),
    AWS_ENDPOINT_URL_S3: proxy.endpoint,
    PGFERRY_S3_TIMEOUT_SECONDS: '2',
    ...extra,
  };
}

const backup = (url: string, extra: Record<string, string> = {}) =>
  runCli(['backup', '--source', sourceUrl(pg, database), '--store', url, '--compress', 'none', '--json'], {
    env: throughProxy(extra),
  });

async function listed(url: string): Promise<BackupManifest[]> {
  const result = await runCli(['list', '--store', url, '--json'], { env: env.s3.env() });
  return JSON.parse(result.stdout) as BackupManifest[];
}

/** A request for a key of this test's store. */
const ours = (r: ProxiedRequest) => r.key.startsWith(`${prefix}/`);

const isDumpPart = (part: string) => (r: ProxiedRequest) =>
  ours(r) && r.operation === 'UploadPart' && r.query.get('partNumber') === part;

/** What the proxy answered to the requests matching `match`, in order. */
function outcomes(match: (r: ProxiedRequest) => boolean): (number | 'stalled')[] {
  return proxy.log.filter(match).map((r) => r.outcome);
}

/** The stored dump is intact: its bytes hash to what the manifest says. */
async function expectIntact(url: string, manifest: BackupManifest) {
  const dump = manifest.objects.find((o) => o.kind === 'dump');
  if (!dump) throw new Error('the manifest names no dump');
  const bytes = await readStored(url, backupObjectKey(database, manifest.id, dump.key));
  expect(bytes.length).toBeGreaterThan(16 * 1024 * 1024); // several parts
  expect(sha256(bytes)).toBe(dump.sha256);
}

test('500s and 503s are retried with backoff: the backup succeeds', async () => {
  const { url, direct } = newStore();
  proxy.inject({ match: isDumpPart('2'), action: { status: 503 }, times: 3 });
  const isManifest = (r: ProxiedRequest) =>
    ours(r) && r.operation === 'PutObject' && r.key.endsWith('/manifest.json');
  proxy.inject({ match: isManifest, action: { status: 500 }, times: 2 });

  const result = await backup(url);
  expect(result).toMatchObject({ code: 0, stderr: '' });
  const manifest = JSON.parse(result.stdout) as BackupManifest;

  expect(outcomes(isDumpPart('2'))).toEqual([503, 503, 503, 200]);
  expect(outcomes(isManifest)).toEqual([500, 500, 200]);
  expect((await listed(url)).map((m) => m.id)).toEqual([manifest.id]);
  await expectIntact(url, manifest);
  expect(await currentLease(direct, database)).toBeUndefined();
});

test('a stalled request times out and is retried: the backup succeeds', async () => {
  const { url, direct } = newStore();
  proxy.inject({ match: isDumpPart('1'), action: { stall: true }, times: 2 });

  const result = await backup(url);
  expect(result).toMatchObject({ code: 0, stderr: '' });
  const manifest = JSON.parse(result.stdout) as BackupManifest;

  expect(outcomes(isDumpPart('1'))).toEqual(['stalled', 'stalled', 200]);
  expect((await listed(url)).map((m) => m.id)).toEqual([manifest.id]);
  await expectIntact(url, manifest);
  expect(await currentLease(direct, database)).toBeUndefined();
});

test('an endpoint failing for good: a clean failure, the upload aborted, nothing left; the next run succeeds', async () => {
  const { url, direct } = newStore();
  const isDumpUpload = (r: ProxiedRequest) => ours(r) && r.operation === 'UploadPart';
  proxy.inject({ match: isDumpUpload, action: { status: 503 } });

  const failed = await backup(url, { AWS_MAX_ATTEMPTS: '4' });
  expect(failed.code).toBe(1);
  expect(failed.stderr).toMatch(
    /^pgferry: s3:\/\/\S+: could not upload \S+\/dump\.pgdump: ServiceUnavailable injected by the test proxy/,
  );
  expect(failed.stderr.trimEnd().split('\n')).toHaveLength(1);

  // Each failing part was tried exactly AWS_MAX_ATTEMPTS times.
  const tries = new Map<string, number>();
  for (const r of proxy.log.filter(isDumpUpload)) {
    const part = r.query.get('partNumber') ?? '';
    tries.set(part, (tries.get(part) ?? 0) + 1);
  }
  expect(tries.size).toBeGreaterThan(0);
  for (const [part, n] of tries) expect([part, n]).toEqual([part, 4]);

  // The multipart upload that was started was aborted. (s3rver implements neither
  // ListMultipartUploads nor AbortMultipartUpload, so the abort is checked as requested.)
  const started = new Set(proxy.log.filter(isDumpUpload).map((r) => r.query.get('uploadId')));
  const aborted = new Set(
    proxy.log
      .filter((r) => ours(r) && r.operation === 'AbortMultipartUpload')
      .map((r) => r.query.get('uploadId')),
  );
  expect(started.size).toBe(1);
  expect([...started].every((id) => aborted.has(id))).toBe(true);

  expect(await listed(url)).toEqual([]);
  expect(await listS3Keys(url)).toEqual([]); // no object, no lease
  expect(await currentLease(direct, database)).toBeUndefined();

  proxy.heal();
  const next = await backup(url);
  expect(next).toMatchObject({ code: 0, stderr: '' });
  const manifest = JSON.parse(next.stdout) as BackupManifest;
  expect((await listed(url)).map((m) => m.id)).toEqual([manifest.id]);
  await expectIntact(url, manifest);
});
