/**
 * The run-finished event of a finished execution (lambdas/api/events/announce.ts), from a
 * recorded "Step Functions Execution Status Change" event and recorded executions: the same JSON
 * `pgferry serve --webhook` posts (api/events.ts), and nothing secret in it; after a stopped
 * execution, with what the announcer's cleanup of it did (Describe's whole state).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LocalStore } from '../../../../../core/store';
import {
  announce,
  CLEANUP_NOT_RECORDED,
  describeFinished,
  ExecutionChangeSchema,
} from '../../../../../lambdas/api/events/announce';
import { StepFunctionsRuns } from '../../../../../lambdas/api/step-functions-runs';
import { recordedStepFunctions } from '../../../../support/recorded-step-functions';

const statusChange = JSON.parse(
  readFileSync(path.join(__dirname, '../../../../fixtures/aws/execution-status-change.json'), 'utf8'),
);

/** What the rule's input transformer gives the announcer (lib/run-events.ts). */
function ruleInput(event: { detail: Record<string, unknown> }) {
  const { stateMachineArn, name, status } = event.detail;
  return ExecutionChangeSchema.parse({ stateMachineArn, name, status });
}

function host(fixtureFile?: string) {
  const sfn = recordedStepFunctions({ fixtureFile });
  const runs = new StepFunctionsRuns({
    sfn,
    stateMachineArns: sfn.stateMachineArns,
    store: new LocalStore(path.join(__dirname, 'no-store')),
  });
  return { sfn, runs };
}

test('a failed restore: "Restore Failed", its id, database and why, nothing secret', async () => {
  const { sfn, runs } = host();
  const event = await announce(runs, sfn.stateMachineArns, ruleInput(statusChange));
  expect(event).toEqual({
    source: 'pgferry',
    detailType: 'Restore Failed',
    detail: {
      id: 'restore-restore-shop-drill-1',
      kind: 'restore',
      database: 'shop',
      status: 'failed',
      summary:
        'Pgferry.TargetExists: the target database shop_drill already exists on shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432: choose another --target database, or pass --mode clean to replace it',
    },
  });
  // The execution's input (connections, the secret's ARN) stays out of it.
  expect(JSON.stringify(event)).not.toMatch(/secretsmanager|passwordSecretArn|pgferry_backup/);
});

test('a cancelled migration: "Migration Cancelled"', async () => {
  const { sfn, runs } = host();
  await runs.cancel('migrate-deploy-4711-shop-to-pg17');
  const event = await announce(runs, sfn.stateMachineArns, {
    stateMachineArn: sfn.stateMachineArns.migrate,
    name: 'deploy-4711-shop-to-pg17',
    status: 'ABORTED',
  });
  expect(event).toMatchObject({
    detailType: 'Migration Cancelled',
    detail: { id: 'migrate-deploy-4711-shop-to-pg17', status: 'cancelled', database: 'shop' },
  });
});

test('an execution of another state machine, or one still running, is refused', async () => {
  const { sfn, runs } = host();
  await expect(
    announce(runs, sfn.stateMachineArns, {
      stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:Other',
      name: 'x',
      status: 'SUCCEEDED',
    }),
  ).rejects.toThrow("is not one of pgferry's state machines");
  await expect(
    announce(runs, sfn.stateMachineArns, {
      stateMachineArn: sfn.stateMachineArns.migrate,
      name: 'deploy-4711-shop-to-pg17',
      status: 'RUNNING',
    }),
  ).rejects.toThrow('still running');
});

const STOPPED_EXECUTIONS = path.join(__dirname, '../../../../fixtures/aws/stopped-executions.json');

test("Describe after a stopped restore: the run's event carries what the cleanup did and left", async () => {
  const { sfn, runs } = host(STOPPED_EXECUTIONS);
  const dropped =
    'the database shop_drill_restoring, which the restore loads before renaming it shop_drill, was dropped';
  const event = await describeFinished(runs, sfn.stateMachineArns, {
    stateMachineArn: sfn.stateMachineArns.restore,
    name: 'drill-cancel-cleanup',
    status: 'ABORTED',
    cleanup: { kind: 'restore', waitSeconds: 0 },
    restoreCleanup: { notes: [dropped], left: [] },
  });
  expect(event).toEqual({
    source: 'pgferry',
    detailType: 'Restore Cancelled',
    detail: {
      id: 'restore-drill-cancel-cleanup',
      kind: 'restore',
      database: 'shop',
      status: 'cancelled',
      summary: 'cancelled: cancelled through the API (DELETE /v1/runs/{id})',
      cleanup: { notes: [dropped], left: [] },
    },
  });
});

test('Describe after a finished (not stopped) execution: no cleanup, whatever the state holds', async () => {
  const { sfn, runs } = host();
  const event = await describeFinished(runs, sfn.stateMachineArns, {
    ...ruleInput(statusChange),
    restoreCleanup: { notes: ['x'], left: [] },
  });
  expect(event.detailType).toBe('Restore Failed');
  expect(event.detail).not.toHaveProperty('cleanup');
});

describe('Describe records a stopped run’s cleanup for the run view', () => {
  const dropped =
    'the database shop_drill_restoring, which the restore loads before renaming it shop_drill, was dropped';
  const stoppedRestore = (arns: Record<string, string>) => ({
    stateMachineArn: arns.restore,
    name: 'drill-cancel-cleanup',
    status: 'ABORTED',
    cleanup: { kind: 'restore', waitSeconds: 0 },
    restoreCleanup: { notes: [dropped], left: [] },
  });
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pgferry-describe-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('written before the event goes out; the run then shows it', async () => {
    const store = new LocalStore(dir);
    const sfn = recordedStepFunctions({ fixtureFile: STOPPED_EXECUTIONS });
    const runs = new StepFunctionsRuns({ sfn, stateMachineArns: sfn.stateMachineArns, store });
    const event = await describeFinished(
      runs,
      sfn.stateMachineArns,
      stoppedRestore(sfn.stateMachineArns),
      store,
    );
    expect(event).not.toHaveProperty('unrecorded');
    expect(await store.getJson('.runs/restore-drill-cancel-cleanup/cleanup.json')).toEqual({
      id: 'restore-drill-cancel-cleanup',
      recordedAt: expect.any(String),
      cleanup: { notes: [dropped], left: [] },
    });
    expect(await runs.get('restore-drill-cancel-cleanup')).toMatchObject({
      status: 'cancelled',
      cleanup: { notes: [dropped], left: [] },
    });
  });

  test('a write that fails: the event still goes out, with why it was not recorded beside it', async () => {
    const { sfn, runs } = host(STOPPED_EXECUTIONS);
    const failing = {
      putJson: async () => {
        throw new Error('AccessDenied: write .runs/restore-drill-cancel-cleanup/cleanup.json');
      },
    };
    const event = await describeFinished(
      runs,
      sfn.stateMachineArns,
      stoppedRestore(sfn.stateMachineArns),
      failing,
    );
    expect(event).toMatchObject({
      detailType: 'Restore Cancelled',
      detail: { cleanup: { notes: [dropped], left: [] } },
      unrecorded: {
        Error: CLEANUP_NOT_RECORDED,
        Cause:
          'the cleanup of run restore-drill-cancel-cleanup was announced but not recorded for its run view: AccessDenied: write .runs/restore-drill-cancel-cleanup/cleanup.json',
      },
    });
  });

  test('after a finished (not stopped) execution nothing is written', async () => {
    const { sfn, runs } = host();
    const writes: string[] = [];
    await describeFinished(runs, sfn.stateMachineArns, ruleInput(statusChange), {
      putJson: async (key: string) => {
        writes.push(key);
      },
    });
    expect(writes).toEqual([]);
  });
});
