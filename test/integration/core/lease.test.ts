/**
 * The per-database lease on both store kinds (a local folder and the harness's S3 server): taken
 * once, refused while held, released, and taken over when expired, abandoned or unreadable.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { listBackups, scanStore } from '../../../core/catalog';
import {
  acquireLease,
  currentLease,
  currentProcessOwner,
  type LeaseOwner,
  leaseState,
  processIsAlive,
  releaseLease,
} from '../../../core/lease';
import { type BackupStore, LocalStore } from '../../../core/store';
import { S3Store } from '../../../core/store/s3-store';
import { leaseKey, leasePrefix, newBackupId } from '../../../core/store-keys';
import { testEnv, uniqueName } from '../../support/env';

const env = testEnv();
const HOUR = 3_600_000;

const stores: { kind: string; open: () => BackupStore }[] = [
  { kind: 'local folder', open: () => new LocalStore(mkdtempSync(path.join(tmpdir(), 'pgferry-lease-'))) },
  {
    kind: 'S3-compatible',
    open: () => new S3Store(env.s3.bucket, uniqueName('lease'), new S3Client(env.s3.clientConfig())),
  },
];

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync('sh', ['-c', 'echo $$']);
  return Number(child.stdout.toString().trim());
}

describe.each(stores)('the lease on a $kind store', ({ open }) => {
  const database = 'shop';

  test('is taken once; a second run is refused with who holds it since when', async () => {
    const store = open();
    const first = newBackupId();
    const lease = await acquireLease(store, database, first, { now: new Date('2026-03-15T02:00:00Z') });
    expect(lease).toMatchObject({ database, backupId: first, generation: 1 });
    await expect(
      acquireLease(store, database, newBackupId(), { now: new Date('2026-03-15T03:00:00Z') }),
    ).rejects.toThrow(
      new RegExp(`^a backup of shop has been running since 2026-03-15T02:00:00.000Z \\(backup ${first}\\)`),
    );
  });

  test('taken again by the execution holding it (a retried preflight), is given back with its backup id', async () => {
    const store = open();
    const first = newBackupId();
    const executionId = 'arn:aws:states:eu-west-1:123456789012:execution:pgferry-backup:run-1';
    const lease = await acquireLease(store, database, first, { executionId });
    const again = await acquireLease(store, database, newBackupId(), { executionId });
    expect(again).toEqual(lease);
    expect(await currentLease(store, database)).toEqual(lease);
    // Any other execution, or a run naming none, is still refused.
    for (const other of [{ executionId: `${executionId}-other` }, {}]) {
      await expect(acquireLease(store, database, newBackupId(), other)).rejects.toThrow(
        new RegExp(`^a backup of shop has been running since .* \\(backup ${first}\\)`),
      );
    }
  });

  test('is one per database: another database is not blocked', async () => {
    const store = open();
    await acquireLease(store, 'shop', newBackupId());
    await expect(acquireLease(store, 'billing', newBackupId())).resolves.toMatchObject({
      database: 'billing',
    });
  });

  test('once released, is gone, and is taken by the next run', async () => {
    const store = open();
    const first = newBackupId();
    await acquireLease(store, database, first);
    expect(await releaseLease(store, database, first)).toBe(true);
    expect(await currentLease(store, database)).toBeUndefined();
    const next = await acquireLease(store, database, newBackupId());
    expect(next).toMatchObject({ generation: 1 });
    expect(next.tookOver).toBeUndefined();
  });

  test('taken over, leaves only the newest generation', async () => {
    const store = open();
    await acquireLease(store, database, newBackupId(), { now: new Date(Date.now() - 14 * HOUR) });
    await acquireLease(store, database, newBackupId());
    const keys = [];
    for await (const entry of store.list(leasePrefix(database))) keys.push(entry.key);
    expect(keys).toEqual([leaseKey(database, 2)]);
  });

  test('is released only by the run holding it', async () => {
    const store = open();
    await acquireLease(store, database, newBackupId());
    expect(await releaseLease(store, database, newBackupId())).toBe(false);
    const lease = await currentLease(store, database);
    expect(lease && leaseState(lease, new Date())).toBe('held');
  });

  test('is taken over once it has expired', async () => {
    const store = open();
    const crashed = newBackupId();
    await acquireLease(store, database, crashed, { now: new Date(Date.now() - 14 * HOUR) });
    const lease = await acquireLease(store, database, newBackupId());
    expect(lease.tookOver).toEqual({ backupId: crashed, state: 'expired' });
  });

  test('is respected until it expires when its process is on another machine', async () => {
    const store = open();
    const elsewhere: LeaseOwner = { hostname: 'some-other-host.invalid', pid: deadPid() };
    await acquireLease(store, database, newBackupId(), { owner: elsewhere });
    await expect(acquireLease(store, database, newBackupId())).rejects.toThrow(/pid \d+ on some-other-host/);
  });

  test('an unreadable lease is taken over', async () => {
    const store = open();
    await store.putJson(leaseKey(database, 4), { not: 'a lease' });
    const lease = await acquireLease(store, database, newBackupId());
    expect(lease).toMatchObject({ generation: 5, tookOver: { state: 'unreadable' } });
  });

  test('is not a backup: the catalog neither lists nor reports it', async () => {
    const store = open();
    await acquireLease(store, database, newBackupId());
    expect(await listBackups(store)).toEqual([]);
    expect(await scanStore(store)).toMatchObject({ entries: [], incomplete: [], databases: [database] });
  });
});

describe('the lease of a run on this machine', () => {
  const open = () => new LocalStore(mkdtempSync(path.join(tmpdir(), 'pgferry-lease-')));

  test('is taken over when its process is gone', async () => {
    const store = open();
    const crashed = newBackupId();
    await acquireLease(store, 'shop', crashed, { owner: { ...currentProcessOwner(), pid: deadPid() } });
    const lease = await acquireLease(store, 'shop', newBackupId(), { owner: currentProcessOwner() });
    expect(lease.tookOver).toEqual({ backupId: crashed, state: 'abandoned' });
  });

  test('is held while its process lives', async () => {
    const store = open();
    await acquireLease(store, 'shop', newBackupId(), { owner: currentProcessOwner() });
    await expect(acquireLease(store, 'shop', newBackupId())).rejects.toThrow(
      new RegExp(`has been running since .*pid ${process.pid} on `),
    );
  });

  test('names a process that is no longer alive once its pid is reused by another process', () => {
    const me = currentProcessOwner();
    expect(processIsAlive(me)).toBe(true);
    expect(me.startTime).toBeDefined(); // Linux: the start time tells a reused pid apart
    expect(processIsAlive({ ...me, startTime: '1' })).toBe(false);
  });

  test('of many runs taking it at once, exactly one gets it', async () => {
    const store = open();
    const attempts = await Promise.allSettled(
      Array.from({ length: 20 }, () => acquireLease(store, 'shop', newBackupId())),
    );
    const taken = attempts.filter((a) => a.status === 'fulfilled');
    const refused = attempts.filter((a) => a.status === 'rejected');
    expect(taken).toHaveLength(1);
    for (const r of refused) expect((r as PromiseRejectedResult).reason.name).toBe('Pgferry.BackupRunning');
  });
});

describe('create-if-absent', () => {
  test.each(stores)('on a $kind store, refuses a key that exists', async ({ open }) => {
    const store = open();
    expect(await store.putJsonIfAbsent('x/.lease/000000000001.json', { n: 1 })).toBe(true);
    expect(await store.putJsonIfAbsent('x/.lease/000000000001.json', { n: 2 })).toBe(false);
    expect(await store.getJson('x/.lease/000000000001.json')).toEqual({ n: 1 });
  });
});
