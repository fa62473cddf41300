/**
 * The announcer's function as `cdk deploy` bundles it (lambdas/api/events/handler.ts), and the
 * workflows' cleanup functions beside it, invoked as the announcing state machine invokes them
 * (lib/run-events.ts: PlanCleanup, then CleanUpBackup or CleanUpRestore with the plan's input,
 * then Describe, given the announcer's state), each in a process of its own, Step Functions
 * answering with a recorded stopped execution (test/fixtures/aws/stopped-executions.json) and the
 * store a local folder. After a cancelled backup, the attempt's objects and its lease are gone, and
 * the run is announced as cancelled, its event saying so; after a timed-out restore, RestoreCleanup
 * ends the run's session and drops the restoring database it marked, on a real server — or, when
 * the server will not drop it, says so in its `left`, on which the announcer fails
 * (test/unit/lib/run-events.test.ts) — and the run's event carries what it did and left.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { passwordEnvVar } from '../../../../../core/connection';
import { RestorePlanSchema } from '../../../../../core/contracts';
import { storeJob } from '../../../../../core/jobs';
import { acquireLease, currentLease } from '../../../../../core/lease';
import { restoringName } from '../../../../../core/postgres/incomplete-database';
import { runSessionName } from '../../../../../core/postgres/run-sessions';
import { LocalStore } from '../../../../../core/store';
import { syntheticManifest } from '../../../../support/backups';
import {
  blockDrop,
  createMarkedDatabase,
  databaseExists,
  dropDatabase,
  testEnv,
  uniqueName,
} from '../../../../support/env';
import { type BundledStack, invokeBundle, synthesizeBundled } from '../../../../support/lambda-bundles';
import {
  type RecordedStepFunctions,
  recordedStepFunctions,
} from '../../../../support/recorded-step-functions';
import { minimalConfig } from '../../../../unit/lib/fixtures';

const FIXTURE = path.join(__dirname, '../../../../fixtures/aws/stopped-executions.json');
const BACKUP_ID = '20261201T221500Z-3fa9c1';

let bundled: BundledStack;
let sfn: RecordedStepFunctions;
let dir: string;
let store: LocalStore;
let env: Record<string, string>;

beforeAll(async () => {
  bundled = synthesizeBundled(minimalConfig());
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-run-events-lambda-'));
  store = new LocalStore(dir);
  sfn = recordedStepFunctions({ storeUrl: store.url, fixtureFile: FIXTURE });
  env = {
    AWS_ENDPOINT_URL_SFN: await sfn.listen(),
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    // As lib/api.ts sets them for the API's functions (the state machines those of the recording).
    PGFERRY_STORE: store.url,
    PGFERRY_STATE_MACHINES: JSON.stringify(sfn.stateMachineArns),
    PGFERRY_API_BASE_PATH: '/api',
  };
}, 300_000);
afterAll(async () => {
  await sfn?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function invoke(id: string, event: unknown): Promise<Record<string, unknown>> {
  const invocation = await invokeBundle(bundled.bundleOf(id), event, env);
  if (!invocation.ok) throw new Error(`${invocation.errorType}: ${invocation.errorMessage}`);
  return invocation.result as Record<string, unknown>;
}

test('a backup cancelled in its dump: planned from its history, cleaned up by the Cleanup function, then announced', async () => {
  // What the cancelled attempt left: its lease (taken on Lambda, so held for 13 hours) and a part.
  await acquireLease(store, 'shop', BACKUP_ID, {
    executionId: 'arn:aws:states:eu-west-1:123456789012:execution:x',
  });
  await store.putJson(`shop/${BACKUP_ID}/backup-job-${BACKUP_ID}.json`, { kind: 'backup' });
  const change = {
    stateMachineArn: sfn.stateMachineArns.backup,
    name: 'cancel-shop-dump',
    status: 'ABORTED',
  };

  // PlanCleanup: the announcer's Parameters.
  const plan = (await invoke('RunEventsDescribe', { ...change, plan: true })) as {
    task: unknown;
    backup: { store: string; database: string; backupId: string; error: unknown };
  };
  expect(plan).toMatchObject({
    kind: 'backup',
    waitSeconds: 0,
    task: { taskArn: expect.stringMatching(/:task\/Pgferry-PgToolsCluster/) },
    backup: {
      store: store.url,
      database: 'shop',
      backupId: BACKUP_ID,
      error: { Error: 'pgferry.Cancelled' },
    },
  });

  // CleanUpBackup: the backup workflow's own Cleanup function, given the plan's attempt.
  const { store: url, database, backupId, error } = plan.backup;
  const cleaned = await invoke('Cleanup', { store: url, database, backupId, error });
  expect(cleaned).toMatchObject({ leaseReleased: true, deletedObjects: 1, error: 'pgferry.Cancelled' });
  expect(await currentLease(store, 'shop')).toBeUndefined();
  const left: string[] = [];
  for await (const entry of store.list('shop/')) left.push(entry.key);
  expect(left).toEqual([]);

  // Describe, given the announcer's state: the run, cancelled, and what its cleanup did.
  expect(
    await invoke('RunEventsDescribe', { ...change, cleanup: plan, backupCleanup: cleaned }),
  ).toMatchObject({
    source: 'pgferry',
    detailType: 'Backup Cancelled',
    detail: {
      id: 'backup-cancel-shop-dump',
      status: 'cancelled',
      database: 'shop',
      cleanup: {
        notes: [
          `the 1 object(s) of the incomplete backup ${BACKUP_ID} of shop were removed`,
          'the lease it held on shop was released',
        ],
        left: [],
      },
    },
  });
}, 120_000);

/**
 * A restore that timed out in its task (the recording's `drill-timed-out`) into a new database of
 * the harness's PostgreSQL 15, as a runner killed hard mid-load leaves it: the restoring database,
 * marked, and its session — and, when `blocked`, a database the server will not drop. Planned from
 * its history, then RestoreCleanup (bundled) given the plan's state: its invocation.
 */
async function cleanUpTimedOutRestore(blocked: boolean) {
  const pg = testEnv().server(15);
  const restoreId = '20261202T080000Z-a1b2c3';
  const target = uniqueName('stopped_drill');
  const loading = restoringName(target);
  // The job the restore's preflight stored (where the recorded state names it), into this server.
  const request = {
    store: store.url,
    backup: 'latest',
    name: 'shop',
    target: pg.connection(target),
  };
  await storeJob(
    store,
    `shop/${BACKUP_ID}/restore-job-${restoreId}.json`,
    'restore',
    RestorePlanSchema.parse({
      schemaVersion: 1,
      restoreId,
      request,
      manifest: syntheticManifest('shop', new Date('2026-12-01T22:15:00Z'), Buffer.from('dump')),
      targetServer: { version: '15', major: 15 },
      jobs: 1,
      toastCompression: 'server-default',
      taskSize: { cpu: '1024', memoryMiB: '4096', ephemeralStorageGiB: 40 },
      startedAt: '2026-12-02T08:00:02.000Z',
    }),
  );
  await createMarkedDatabase(pg, loading, restoreId);
  const unblock = blocked ? await blockDrop(pg, loading) : undefined;
  const session = new Client({ ...pg.clientConfig(loading), application_name: runSessionName(restoreId) });
  session.on('error', () => undefined);
  await session.connect();
  const change = {
    stateMachineArn: sfn.stateMachineArns.restore,
    name: 'drill-timed-out',
    status: 'TIMED_OUT',
  };
  try {
    const plan = (await invoke('RunEventsDescribe', { ...change, plan: true })) as { restore: unknown };
    expect(plan).toMatchObject({
      kind: 'restore',
      task: { taskArn: expect.stringMatching(/:task\/Pgferry-PgToolsCluster/) },
      restore: { restoreId, error: { Error: 'States.Timeout' } },
    });

    // CleanUpRestore: the restore workflow's own RestoreCleanup, given the plan's state.
    const cleaned = await invokeBundle(bundled.bundleOf('RestoreCleanup'), plan.restore, {
      ...env,
      [passwordEnvVar('target')]: pg.password,
    });
    // Describe, given the announcer's state after it (with, when it left something, the announcer's
    // own error about that: lib/run-events.ts).
    const left = cleaned.ok ? (cleaned.result as { left: string[] }).left : [];
    const described = await invoke('RunEventsDescribe', {
      ...change,
      cleanup: plan,
      ...(cleaned.ok ? { restoreCleanup: cleaned.result } : {}),
      ...(left.length
        ? { cleanupError: { Error: 'pgferry.RestoreLeftBehind', Cause: JSON.stringify(left) } }
        : {}),
    });
    return { cleaned, described, target, loading, exists: await databaseExists(pg, loading) };
  } finally {
    await session.end().catch(() => undefined);
    await unblock?.();
    await dropDatabase(pg, loading);
  }
}

test('a restore that timed out in its task: planned from its history, then RestoreCleanup drops the restoring database it marked and ends its session; its event says so', async () => {
  const { cleaned, described, target, loading, exists } = await cleanUpTimedOutRestore(false);
  const notes = [
    'the 1 session(s) the runner left on the target were ended',
    `the database ${loading}, which the restore loads before renaming it ${target}, was dropped`,
  ];
  expect(cleaned).toEqual({ ok: true, result: { notes, left: [] } });
  expect(exists).toBe(false);
  expect(described).toMatchObject({
    detailType: 'Restore Failed',
    detail: { id: 'restore-drill-timed-out', status: 'failed', cleanup: { notes, left: [] } },
  });
  expect(described.detail).not.toHaveProperty('cleanup.error');
}, 120_000);

test('a timed-out restore whose restoring database the server will not drop: RestoreCleanup says it is left (the announcer then fails), and so does its event', async () => {
  const { cleaned, described, target, loading, exists } = await cleanUpTimedOutRestore(true);
  const result = {
    notes: ['the 1 session(s) the runner left on the target were ended'],
    left: [
      `the database ${loading}, which the restore loads before renaming it ${target}, is left in place ` +
        `(database "${loading}" is being used by logical replication subscription): ` +
        `remove it with DROP DATABASE "${loading}" WITH (FORCE);`,
    ],
  };
  expect(cleaned).toEqual({ ok: true, result });
  expect(exists).toBe(true);
  expect(described).toMatchObject({ detailType: 'Restore Failed', detail: { cleanup: result } });
  expect(described.detail).not.toHaveProperty('cleanup.error');
}, 120_000);

test('the workflow Catch input still cleans up (the Cleanup function takes both)', async () => {
  await acquireLease(store, 'shop', BACKUP_ID);
  const state = {
    job: { store: store.url, key: `shop/${BACKUP_ID}/backup-job-${BACKUP_ID}.json` },
    backupId: BACKUP_ID,
    database: 'shop',
    taskSize: { cpu: '1024', memoryMiB: '4096', ephemeralStorageGiB: 40 },
    placement: { subnets: ['subnet-0a1b2c3d4e5f60718'] },
    error: { Error: 'States.TaskFailed', Cause: 'the task stopped' },
  };
  expect(await invoke('Cleanup', state)).toMatchObject({ leaseReleased: true });
  expect(await currentLease(store, 'shop')).toBeUndefined();
}, 60_000);

test('planning refuses an execution that was not stopped', async () => {
  const invocation = await invokeBundle(
    bundled.bundleOf('RunEventsDescribe'),
    { stateMachineArn: sfn.stateMachineArns.backup, name: 'nope', status: 'ABORTED', plan: true },
    env,
  );
  expect(invocation).toMatchObject({ ok: false, errorType: 'ExecutionDoesNotExist' });
}, 60_000);
