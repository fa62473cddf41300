/**
 * What the announcer cleans up after a stopped or timed-out execution
 * (lambdas/api/events/stopped.ts), planned from recorded executions
 * (test/fixtures/aws/stopped-executions.json: their input and history with data) and a real local
 * store: the task to stop, how long to wait for a Lambda step the stop cut off, and the workflow's
 * own cleanup input (the backup's Cleanup, MigrateCleanup, RestoreCleanup), as its Catch would have
 * given it; then what that cleanup did and left, read from the announcer's state into the run's
 * event.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { DescribeExecutionCommandOutput, HistoryEvent } from '@aws-sdk/client-sfn';
import { DescribeExecutionCommand } from '@aws-sdk/client-sfn';
import type { RunKind } from '../../../../../api/runs';
import { deploymentOf } from '../../../../../core/deployment';
import { acquireLease, currentLease } from '../../../../../core/lease';
import { LocalStore } from '../../../../../core/store';
import { manifestKey } from '../../../../../core/store-keys';
import {
  executionHistory,
  openTasks,
  planStoppedCleanup,
  stoppedCleanupOutcome,
} from '../../../../../lambdas/api/events/stopped';
import { executionArnOf } from '../../../../../lambdas/api/step-functions-runs';
import { cleanupBackup } from '../../../../../lambdas/backup/cleanup/cleanup';
import {
  type RecordedStepFunctions,
  recordedStepFunctions,
} from '../../../../support/recorded-step-functions';

const FIXTURE = path.join(__dirname, '../../../../fixtures/aws/stopped-executions.json');
const TASK_PREFIX = 'arn:aws:ecs:eu-west-1:123456789012:task/Pgferry-PgToolsCluster7C3A1F92-Vb8Nm2Qw4ErT/';
const CLUSTER = 'arn:aws:ecs:eu-west-1:123456789012:cluster/Pgferry-PgToolsCluster7C3A1F92-Vb8Nm2Qw4ErT';
const CANCELLED = { Error: 'pgferry.Cancelled', Cause: 'cancelled through the API (DELETE /v1/runs/{id})' };
/** Locally (no bindings): a backup's catalog name is its `name`, else its source database. */
const deployment = deploymentOf(undefined);

let dir: string;
let store: LocalStore;
let sfn: RecordedStepFunctions;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-stopped-'));
  store = new LocalStore(dir);
  sfn = recordedStepFunctions({ storeUrl: store.url, fixtureFile: FIXTURE });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function recorded(kind: RunKind, name: string) {
  const executionArn = executionArnOf(sfn.stateMachineArns[kind], name);
  const execution = (await sfn.send(
    new DescribeExecutionCommand({ executionArn }),
  )) as DescribeExecutionCommandOutput;
  const events = await executionHistory(sfn, executionArn);
  return { execution, events };
}

async function plan(kind: RunKind, name: string, now?: Date) {
  const { execution, events } = await recorded(kind, name);
  return planStoppedCleanup(kind, execution, events, { store, deployment, now });
}

test('the history is read with its data', async () => {
  await recorded('migrate', 'deploy-4720-shop-to-pg17');
  const reads = sfn.sent.filter((s) => s.operation === 'GetExecutionHistory');
  expect(reads.every((r) => r.input.includeExecutionData === true)).toBe(true);
});

test('a backup cancelled in its dump: its task to stop, and the attempt for the Cleanup function', async () => {
  expect(await plan('backup', 'cancel-shop-dump')).toEqual({
    kind: 'backup',
    waitSeconds: 0,
    task: { cluster: CLUSTER, taskArn: `${TASK_PREFIX}5e1b0c9a7d3f4e2a8b6c1d0e9f8a7b6c` },
    backup: { store: store.url, database: 'shop', backupId: '20261201T221500Z-3fa9c1', error: CANCELLED },
  });
});

test('…whose Cleanup then removes the attempt and releases the lease, so the next backup may start', async () => {
  const backupId = '20261201T221500Z-3fa9c1';
  await acquireLease(store, 'shop', backupId, { executionId: 'arn:aws:states:…:cancel-shop-dump' });
  await store.putJson(`shop/${backupId}/dump.part-1`, { partial: true });
  const { backup } = await plan('backup', 'cancel-shop-dump');
  if (!backup) throw new Error('no backup cleanup planned');
  const result = await cleanupBackup(backup, backup.error, { openStore: () => store });
  expect(result).toMatchObject({ leaseReleased: true, deletedObjects: 1, error: 'pgferry.Cancelled' });
  expect(await currentLease(store, 'shop')).toBeUndefined();
  // The next backup takes the lease at once (it would be refused for 13 hours otherwise).
  expect(await acquireLease(store, 'shop', '20261202T000000Z-000001')).toMatchObject({
    backupId: '20261202T000000Z-000001',
  });
});

test('a backup whose manifest exists completed before the stop took effect: it is kept', async () => {
  await store.putJson(manifestKey('shop', '20261201T221500Z-3fa9c1'), { id: '20261201T221500Z-3fa9c1' });
  expect((await plan('backup', 'cancel-shop-dump')).backup).toBeUndefined();
});

test('a backup cancelled in its preflight: wait for the Lambda step to end, then the lease it took says which attempt', async () => {
  const { execution } = await recorded('backup', 'cancel-shop-preflight');
  const scheduled = Date.parse('2026-12-01T23:00:00.168Z');
  // Before the step's 120 s timeout (and a margin) has passed: wait, and plan again.
  const early = await plan('backup', 'cancel-shop-preflight', new Date(scheduled + 30_000));
  expect(early.waitSeconds).toBe(100);
  expect(early.task).toBeUndefined();
  // Preflight took no lease (it refused, or the stop came first): nothing to clean.
  expect((await plan('backup', 'cancel-shop-preflight')).backup).toBeUndefined();
  // It did: the lease names this execution, and its attempt is cleaned up.
  await acquireLease(store, 'shop', '20261201T230000Z-5d4c3b', { executionId: execution.executionArn });
  expect(await plan('backup', 'cancel-shop-preflight')).toEqual({
    kind: 'backup',
    waitSeconds: 0,
    backup: { store: store.url, database: 'shop', backupId: '20261201T230000Z-5d4c3b', error: CANCELLED },
  });
});

test("another execution's lease is left alone", async () => {
  await acquireLease(store, 'shop', '20261201T230000Z-5d4c3b', { executionId: 'arn:aws:states:another' });
  expect((await plan('backup', 'cancel-shop-preflight')).backup).toBeUndefined();
});

test('a migration cancelled in its task after freezing: MigrateCleanup is given the state the task was given, with the stop as its error', async () => {
  const cleanup = await plan('migrate', 'deploy-4720-shop-to-pg17');
  expect(cleanup.task).toEqual({
    cluster: CLUSTER,
    taskArn: `${TASK_PREFIX}8d2f6a1c3b5e4d7f9a0b2c4e6f8a1b3d`,
  });
  expect(cleanup.waitSeconds).toBe(0);
  expect(cleanup.migrate).toMatchObject({
    migrateId: '20261202T061500Z-7c2e4d',
    steps: { freezeSource: true, ecsServices: [{ cluster: 'shop', service: 'shop-api', desiredCount: 3 }] },
    freeze: { frozenAt: '2026-12-02T06:15:09.730Z' },
    error: CANCELLED,
  });
  expect(cleanup.backup).toBeUndefined();
});

test('a restore that timed out in its task: the task stopped, then RestoreCleanup, given the state the task was given with the timeout as its error', async () => {
  expect(await plan('restore', 'drill-timed-out')).toEqual({
    kind: 'restore',
    waitSeconds: 0,
    task: { cluster: CLUSTER, taskArn: `${TASK_PREFIX}1a2b3c4d5e6f708192a3b4c5d6e7f809` },
    restore: {
      job: { store: store.url, key: 'shop/20261201T221500Z-3fa9c1/restore-job-20261202T080000Z-a1b2c3.json' },
      restoreId: '20261202T080000Z-a1b2c3',
      backupId: '20261201T221500Z-3fa9c1',
      database: 'shop',
      taskSize: { cpu: '1024', memoryMiB: '4096', ephemeralStorageGiB: 40 },
      error: { Error: 'States.Timeout', Cause: 'the execution timed out' },
    },
  });
});

test("a restore cancelled in RestoreCleanup (its task killed hard): wait for that cleanup's end, then run it again, with the task's own error", async () => {
  const scheduled = Date.parse('2026-12-04T09:30:41.100Z');
  const early = await plan('restore', 'drill-cancel-cleanup', new Date(scheduled + 60_000));
  expect(early.waitSeconds).toBe(70);
  expect(early.task).toBeUndefined();
  expect((await plan('restore', 'drill-cancel-cleanup')).restore).toMatchObject({
    restoreId: '20261204T093000Z-1d2e3f',
    error: { Error: 'States.TaskFailed', Cause: expect.stringContaining('OutOfMemoryError') },
  });
});

test.each([
  ['in its preflight, which creates nothing on the target', 'drill-cancel-preflight'],
  [
    'in its safety backup, before the target is touched (the nested backup is cleaned up as a stopped backup)',
    'shop-clean-cancel-safety-backup',
  ],
  ['in RestoreRecord after its task succeeded: the restore completed, and is kept', 'drill-cancel-record'],
])('a restore cancelled %s: no task to stop, no RestoreCleanup', async (_, name) => {
  const cleanup = await plan('restore', name);
  expect(cleanup).toEqual({ kind: 'restore', waitSeconds: 0 });
});

test('open tasks: a task that ended is not open; one scheduled, started or submitted is', () => {
  const event = (id: number, previousEventId: number, type: string, extra: Partial<HistoryEvent> = {}) =>
    ({ id, previousEventId, type, timestamp: new Date(0), ...extra }) as HistoryEvent;
  const lambda = {
    taskScheduledEventDetails: { resourceType: 'lambda', resource: 'invoke', region: 'x', parameters: '{}' },
  };
  expect(
    openTasks([
      event(1, 0, 'TaskScheduled', lambda),
      event(2, 1, 'TaskStarted'),
      event(3, 2, 'TaskSucceeded'),
      event(4, 3, 'TaskScheduled', lambda),
      event(5, 4, 'TaskStarted'),
      event(6, 5, 'TaskFailed'),
      event(7, 6, 'TaskScheduled', lambda),
      event(8, 7, 'TaskStarted'),
    ]).map((t) => t.scheduled.id),
  ).toEqual([7]);
});

/** The announcer's state when it describes a stopped run: the change, the plan, and what ran. */
async function describedState(kind: RunKind, name: string, ran: Record<string, unknown>) {
  return {
    stateMachineArn: sfn.stateMachineArns[kind],
    name,
    status: 'ABORTED',
    cleanup: await plan(kind, name),
    ...ran,
  };
}

test("the outcome of a cancelled backup's Cleanup: the attempt's objects removed, its lease released", async () => {
  const backupId = '20261201T221500Z-3fa9c1';
  await acquireLease(store, 'shop', backupId, { executionId: 'arn:aws:states:…:cancel-shop-dump' });
  await store.putJson(`shop/${backupId}/dump.part-1`, { partial: true });
  const { backup } = await plan('backup', 'cancel-shop-dump');
  if (!backup) throw new Error('no backup cleanup planned');
  const backupCleanup = await cleanupBackup(backup, backup.error, { openStore: () => store });
  const state = await describedState('backup', 'cancel-shop-dump', { backupCleanup });
  expect(stoppedCleanupOutcome(state)).toEqual({
    notes: [
      `the 1 object(s) of the incomplete backup ${backupId} of shop were removed`,
      'the lease it held on shop was released',
    ],
    left: [],
  });
});

const DROPPED =
  'the database shop_drill_restoring, which the restore loads before renaming it shop_drill, was dropped';
const LEFT =
  'the database shop_drill_restoring, which the restore loads before renaming it shop_drill, is left in place ' +
  '(database "shop_drill_restoring" is being used by logical replication subscription): ' +
  'remove it with DROP DATABASE "shop_drill_restoring" WITH (FORCE);';

test("the outcome of a timed-out restore's RestoreCleanup: what it dropped; what it left, not as an error", async () => {
  const dropped = await describedState('restore', 'drill-timed-out', {
    restoreCleanup: {
      notes: ['the 1 session(s) the runner left on the target were ended', DROPPED],
      left: [],
    },
  });
  expect(stoppedCleanupOutcome(dropped)).toEqual({
    notes: ['the 1 session(s) the runner left on the target were ended', DROPPED],
    left: [],
  });
  // The announcer's own error of what was left (lib/run-events.ts) is `left` again: no error.
  const left = await describedState('restore', 'drill-timed-out', {
    restoreCleanup: { notes: [], left: [LEFT] },
    cleanupError: { Error: 'pgferry.RestoreLeftBehind', Cause: JSON.stringify([LEFT]) },
  });
  expect(stoppedCleanupOutcome(left)).toEqual({ notes: [], left: [LEFT] });
});

test("the outcome of a cancelled migration's MigrateCleanup: its notes, the source unfrozen, its backups removed, the services back; what it left", async () => {
  const slot =
    "THE REPLICATION SLOT pgferry_x MAY BE LEFT ON THE SOURCE (…): SELECT pg_drop_replication_slot('pgferry_x');";
  const migrateCleanup = {
    error: 'pgferry.Cancelled',
    cause: 'cancelled through the API (DELETE /v1/runs/{id}) (…)',
    unfrozen: true,
    deletedObjects: 3,
    notes: ['the database shop it left incomplete was dropped'],
    left: [slot],
  };
  const state = await describedState('migrate', 'deploy-4720-shop-to-pg17', {
    migrateCleanup,
    cleanupError: { Error: 'pgferry.MigrationLeftBehind', Cause: JSON.stringify([slot]) },
  });
  expect(stoppedCleanupOutcome(state)).toEqual({
    notes: [
      'the database shop it left incomplete was dropped',
      'the source was unfrozen',
      'the 3 object(s) of its incomplete backups were removed',
      'the service shop-api of cluster shop was scaled back to 3 task(s)',
    ],
    left: [slot],
  });
  // The services failing to come back is the cleanup's error, and they are not said to be back.
  const restartFailed = await describedState('migrate', 'deploy-4720-shop-to-pg17', {
    migrateCleanup: { ...migrateCleanup, left: [] },
    cleanupError: {
      Error: 'ECS.AccessDeniedException',
      Cause: 'not authorized to perform ecs:UpdateService',
    },
  });
  expect(stoppedCleanupOutcome(restartFailed)).toEqual({
    notes: [
      'the database shop it left incomplete was dropped',
      'the source was unfrozen',
      'the 3 object(s) of its incomplete backups were removed',
    ],
    left: [],
    error: { error: 'ECS.AccessDeniedException', cause: 'not authorized to perform ecs:UpdateService' },
  });
});

test("a cleanup that failed: its error, a Lambda error's message as the cause", async () => {
  const state = await describedState('restore', 'drill-timed-out', {
    cleanupError: {
      Error: 'Error',
      Cause: JSON.stringify({
        errorType: 'Error',
        errorMessage: 'connect ETIMEDOUT 10.0.3.7:5432',
        trace: ['at …'],
      }),
    },
  });
  expect(stoppedCleanupOutcome(state)).toEqual({
    notes: [],
    left: [],
    error: { error: 'Error', cause: 'connect ETIMEDOUT 10.0.3.7:5432' },
  });
});

test('a part of the state that does not read is left out; a MigrateCleanup older than its notes still reads', async () => {
  const state = await describedState('restore', 'drill-timed-out', {
    restoreCleanup: { notes: 'not a list' },
    migrateCleanup: { error: 'e', cause: 'c', unfrozen: false, deletedObjects: 0, left: ['x'] },
  });
  expect(stoppedCleanupOutcome(state)).toEqual({ notes: [], left: ['x'] });
  expect(stoppedCleanupOutcome(undefined)).toEqual({ notes: [], left: [] });
});

test('a stopped run whose cleanup had nothing to run (a restore cancelled in its preflight): empty lists, no error', async () => {
  const state = await describedState('restore', 'drill-cancel-preflight', {});
  expect(state.cleanup).toEqual({ kind: 'restore', waitSeconds: 0 });
  expect(stoppedCleanupOutcome(state)).toEqual({ notes: [], left: [] });
});
