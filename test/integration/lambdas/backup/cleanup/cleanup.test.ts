/**
 * The backup workflow's Cleanup on an S3 store (lambdas/backup/cleanup/cleanup.ts `cleanupBackup`),
 * through the scripted proxy (test/support/s3-fault-proxy.ts): it removes the failed attempt's
 * objects and releases the lease; when S3 accepts the DeleteObjects but refuses its keys one by one
 * (a bucket policy, Object Lock), it fails naming them — the lease released all the same — rather
 * than report the attempt removed. Its failure is what fails the workflow's Cleanup state and,
 * after a stopped backup, the announcer (lib/run-events.ts: `$.cleanupError`).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { acquireLease, currentLease } from '../../../../../core/lease';
import { S3Store } from '../../../../../core/store/s3-store';
import { backupPrefix, newBackupId } from '../../../../../core/store-keys';
import { cleanupBackup } from '../../../../../lambdas/backup/cleanup/cleanup';
import { testEnv, uniqueName } from '../../../../support/env';
import { type S3FaultProxy, startS3FaultProxy } from '../../../../support/s3-fault-proxy';

const env = testEnv();
let proxy: S3FaultProxy;

beforeAll(async () => {
  proxy = await startS3FaultProxy(env.s3.endpoint);
});
afterAll(() => proxy.close());
afterEach(() => proxy.heal());

const stopped = { Error: 'pgferry.Cancelled', Cause: 'the execution was stopped' };

/** A failed attempt's objects and lease in a store of its own; the store through the proxy and direct. */
async function failedAttempt() {
  const prefix = uniqueName('backup_cleanup');
  const client = (endpoint: string) => new S3Client({ ...env.s3.clientConfig(), endpoint });
  const direct = new S3Store(env.s3.bucket, prefix, client(env.s3.endpoint));
  const proxied = new S3Store(env.s3.bucket, prefix, client(proxy.endpoint));
  const attempt = { store: proxied.url, database: 'shop', backupId: newBackupId() };
  await acquireLease(direct, attempt.database, attempt.backupId);
  await direct.putJson(`${backupPrefix(attempt.database, attempt.backupId)}backup-job.json`, {
    kind: 'backup',
  });
  await direct.putJson(`${backupPrefix(attempt.database, attempt.backupId)}part-0001`, { part: 1 });
  const objects = async () => {
    const keys: string[] = [];
    for await (const entry of direct.list(backupPrefix(attempt.database, attempt.backupId)))
      keys.push(entry.key);
    return keys;
  };
  return { attempt, direct, proxied, objects };
}

test("the attempt's objects are removed and its lease released", async () => {
  const { attempt, direct, proxied, objects } = await failedAttempt();
  const result = await cleanupBackup(attempt, stopped, { openStore: () => proxied });
  expect(result).toEqual({
    deletedObjects: 2,
    leaseReleased: true,
    error: 'pgferry.Cancelled',
    cause: 'the execution was stopped',
  });
  expect(await objects()).toEqual([]);
  expect(await currentLease(direct, 'shop')).toBeUndefined();
});

test('S3 refusing each key of the DeleteObjects: the cleanup fails naming them; the lease is released', async () => {
  const { attempt, direct, proxied, objects } = await failedAttempt();
  proxy.inject({ match: (r) => r.operation === 'DeleteObjects', action: { refuseEachKey: 'AccessDenied' } });
  await expect(cleanupBackup(attempt, stopped, { openStore: () => proxied })).rejects.toThrow(
    /: could not delete 2 of the 2 objects under shop\/.*: .*backup-job\.json: AccessDenied injected by the test proxy$/,
  );
  expect(await objects()).toHaveLength(2);
  expect(await currentLease(direct, 'shop')).toBeUndefined();
});
