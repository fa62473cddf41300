/**
 * The API's runs on AWS (lambdas/api/step-functions-runs.ts) against recorded Step Functions
 * executions (test/support/recorded-step-functions.ts), with a real local store holding the
 * manifest the recorded backup's output names.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { IdempotencyConflict } from '../../../../api/runs';
import { LocalStore } from '../../../../core/store';
import { recordRunCleanup } from '../../../../lambdas/api/run-cleanup';
import {
  CANCELLED,
  executionArnOf,
  parseRunId,
  StepFunctionsRuns,
  type StepFunctionsRunsOptions,
} from '../../../../lambdas/api/step-functions-runs';
import { type RecordedStepFunctions, recordedStepFunctions } from '../../../support/recorded-step-functions';

const MANIFEST = JSON.parse(
  readFileSync(path.join(__dirname, '../../../fixtures/aws/backup-succeeded.manifest.json'), 'utf8'),
);
const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf';
const SOURCE = {
  host: 'shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com',
  port: 5432,
  database: 'shop',
  user: 'pgferry_backup',
  sslmode: 'verify-full',
  passwordSecretArn: SECRET,
};
/** The body the recorded backup `nightly-shop-20260315` was started with (its input less the store). */
const NIGHTLY_BODY = { source: SOURCE, compression: 'zstd:1', withRolePasswords: false };

let dir: string;
let store: LocalStore;
let sfn: RecordedStepFunctions;
let runs: StepFunctionsRuns;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-sfn-runs-'));
  store = new LocalStore(dir);
  await store.putJson(`shop/${MANIFEST.id}/manifest.json`, MANIFEST);
  sfn = recordedStepFunctions({ storeUrl: store.url });
  runs = new StepFunctionsRuns({ sfn, stateMachineArns: sfn.stateMachineArns, store });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const operations = () => sfn.sent.map((s) => s.operation);

describe('start', () => {
  test('starts an execution of the kind’s state machine with the body and the store, named by the key', async () => {
    const body = { source: SOURCE, name: 'shop' };
    const { run, created } = await runs.start({ kind: 'backup', request: body, idempotencyKey: 'deploy-42' });
    expect(created).toBe(true);
    expect(run).toMatchObject({
      id: 'backup-deploy-42',
      kind: 'backup',
      status: 'running',
      database: 'shop',
    });
    const start = sfn.sent.find((s) => s.operation === 'StartExecution');
    expect(start?.input).toEqual({
      stateMachineArn: sfn.stateMachineArns.backup,
      name: 'deploy-42',
      input: JSON.stringify({ ...body, store: store.url }),
    });
    // The key was looked for in all four state machines first.
    expect(operations()).toEqual([...Array(4).fill('DescribeExecution'), 'StartExecution']);
  });

  test('without a key the execution gets a new run id as its name', async () => {
    const { run } = await runs.start({ kind: 'verify', request: { backup: 'latest', name: 'shop' } });
    expect(run.id).toMatch(/^verify-\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    expect(operations()).toEqual(['StartExecution']);
  });

  test('the same key and body on a finished execution return that run, with its result, and start nothing', async () => {
    const { run, created } = await runs.start({
      kind: 'backup',
      request: NIGHTLY_BODY,
      idempotencyKey: 'nightly-shop-20260315',
    });
    expect(created).toBe(false);
    expect(run).toMatchObject({ id: 'backup-nightly-shop-20260315', status: 'succeeded', result: MANIFEST });
    expect(operations()).not.toContain('StartExecution');
  });

  test('the same key with another body is a conflict, and starts nothing', async () => {
    await expect(
      runs.start({
        kind: 'backup',
        request: { ...NIGHTLY_BODY, compression: 'zstd:9' },
        idempotencyKey: 'nightly-shop-20260315',
      }),
    ).rejects.toBeInstanceOf(IdempotencyConflict);
    expect(operations()).not.toContain('StartExecution');
  });

  test('a key used by a run of another kind is a conflict, even with the same body', async () => {
    await expect(
      runs.start({ kind: 'migrate', request: NIGHTLY_BODY, idempotencyKey: 'nightly-shop-20260315' }),
    ).rejects.toBeInstanceOf(IdempotencyConflict);
    expect(operations()).not.toContain('StartExecution');
  });

  test('two concurrent POSTs with one key start one execution: the second gets the first one’s run', async () => {
    const request = { backup: 'latest', name: 'shop' };
    const [a, b] = await Promise.all([
      runs.start({ kind: 'verify', request, idempotencyKey: 'drill-7' }),
      runs.start({ kind: 'verify', request, idempotencyKey: 'drill-7' }),
    ]);
    expect(a.run.id).toBe('verify-drill-7');
    expect(b.run.id).toBe('verify-drill-7');
    const started = sfn.sent.filter((s) => s.operation === 'StartExecution');
    // Both asked (neither saw the other before starting); Step Functions made one execution,
    // returning it to the second call because the name and the input are the same.
    expect(started).toHaveLength(2);
    const listed = await runs.list({ kind: 'verify' });
    expect(listed.map((r) => r.id)).toEqual(['verify-drill-7']);
  });

  test('ExecutionAlreadyExists after the look-up (a racing start) is resolved from the execution that exists', async () => {
    const request = { backup: 'latest', name: 'shop' };
    await runs.start({ kind: 'verify', request, idempotencyKey: 'drill-8' });
    // A host whose look-up ran before the other start: its four DescribeExecutions find nothing.
    let lookups = 4;
    const racing = new StepFunctionsRuns({
      sfn: {
        send: (command: object) =>
          command.constructor.name === 'DescribeExecutionCommand' && lookups-- > 0
            ? Promise.reject(
                Object.assign(new Error('Execution Does Not Exist'), { name: 'ExecutionDoesNotExist' }),
              )
            : sfn.send(command),
      } as StepFunctionsRunsOptions['sfn'],
      stateMachineArns: sfn.stateMachineArns,
      store,
    });
    await expect(
      racing.start({ kind: 'verify', request: { ...request, jobs: 2 }, idempotencyKey: 'drill-8' }),
    ).rejects.toBeInstanceOf(IdempotencyConflict);
    lookups = 4;
    // The same input on the running execution: Step Functions returns it (no second execution).
    expect((await racing.start({ kind: 'verify', request, idempotencyKey: 'drill-8' })).run.id).toBe(
      'verify-drill-8',
    );
    expect((await runs.list({ kind: 'verify' })).map((r) => r.id)).toEqual(['verify-drill-8']);
  });
});

describe('get', () => {
  test('a succeeded backup: its times, last state and the manifest its output names, read from the store', async () => {
    expect(await runs.get('backup-nightly-shop-20260315')).toEqual({
      id: 'backup-nightly-shop-20260315',
      kind: 'backup',
      status: 'succeeded',
      database: 'shop',
      startedAt: '2026-03-15T02:00:00.412Z',
      finishedAt: '2026-03-15T02:01:14.113Z',
      state: 'Record',
      result: MANIFEST,
    });
    const history = sfn.sent.find((s) => s.operation === 'GetExecutionHistory');
    // Newest first, and without the execution's data (inputs and outputs of states).
    expect(history?.input).toMatchObject({ reverseOrder: true, includeExecutionData: false });
  });

  test('a failed restore: the state it failed in, the error and its cause on one line', async () => {
    expect(await runs.get('restore-restore-shop-drill-1')).toEqual({
      id: 'restore-restore-shop-drill-1',
      kind: 'restore',
      status: 'failed',
      database: 'shop',
      startedAt: '2026-03-16T09:30:00.118Z',
      finishedAt: '2026-03-16T09:30:02.941Z',
      state: 'RestoreFailed',
      error: {
        error: 'Pgferry.TargetExists',
        cause:
          'the target database shop_drill already exists on shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432: choose another --target database, or pass --mode clean to replace it',
      },
    });
  });

  test('a running migration: the state it is in, and its progress as the history tells it', async () => {
    const run = await runs.get('migrate-deploy-4711-shop-to-pg17');
    expect(run).toMatchObject({ status: 'running', state: 'Migrate', database: 'shop' });
    const migrateEntered = sfn
      .historyOf('deploy-4711-shop-to-pg17')
      .find((e) => (e.stateEnteredEventDetails as { name?: string } | undefined)?.name === 'Migrate');
    expect(run?.progress).toEqual({ state: 'Migrate', enteredAt: migrateEntered?.timestamp });
  });

  test('a finished run has no progress', async () => {
    expect((await runs.get('restore-restore-shop-drill-1'))?.progress).toBeUndefined();
  });

  test.each([
    'backup-no-such-run',
    'restore-nightly-shop-20260315', // a backup's name in another state machine
    'nightly-shop-20260315', // no kind
    'backups-nightly-shop-20260315',
    'backup-../../x',
    `backup-${'a'.repeat(81)}`,
  ])('%s is no run', async (id) => {
    expect(await runs.get(id)).toBeUndefined();
  });
});

describe('list', () => {
  test('every kind, newest first, without state or result', async () => {
    const listed = await runs.list({});
    expect(listed.map((r) => [r.id, r.status])).toEqual([
      ['migrate-deploy-4711-shop-to-pg17', 'running'],
      ['restore-restore-shop-drill-1', 'failed'],
      ['backup-nightly-shop-20260315', 'succeeded'],
    ]);
    expect(operations()).toEqual(Array(4).fill('ListExecutions'));
  });

  test('by kind, status and since', async () => {
    expect((await runs.list({ kind: 'restore' })).map((r) => r.id)).toEqual(['restore-restore-shop-drill-1']);
    sfn.sent.length = 0;
    expect((await runs.list({ status: 'failed' })).map((r) => r.id)).toEqual([
      'restore-restore-shop-drill-1',
    ]);
    // failed = FAILED and TIMED_OUT, in each state machine.
    expect(sfn.sent.map((s) => s.input.statusFilter)).toEqual(Array(4).fill(['FAILED', 'TIMED_OUT']).flat());
    expect((await runs.list({ since: '2026-03-16T00:00:00Z' })).map((r) => r.id)).toEqual([
      'migrate-deploy-4711-shop-to-pg17',
      'restore-restore-shop-drill-1',
    ]);
  });

  test('pages: limit, then next, across the state machines, none repeated or lost', async () => {
    const first = await runs.list({ limit: 2 });
    expect(first.map((r) => r.id)).toEqual([
      'migrate-deploy-4711-shop-to-pg17',
      'restore-restore-shop-drill-1',
    ]);
    expect(first.next).toEqual(expect.any(String));
    // A run started between the pages does not shift the next one.
    await runs.start({ kind: 'backup', request: NIGHTLY_BODY, idempotencyKey: 'started-meanwhile' });
    const second = await runs.list({ limit: 2, next: first.next });
    expect(second.map((r) => r.id)).toEqual(['backup-nightly-shop-20260315']);
    expect(second.next).toBeUndefined();
  });

  test('at most the limit, reading no more pages than needed', async () => {
    const limited = new StepFunctionsRuns({
      sfn,
      stateMachineArns: sfn.stateMachineArns,
      store,
      listLimit: 1,
    });
    for (let i = 0; i < 3; i++)
      await limited.start({ kind: 'verify', request: { backup: 'latest', name: 'shop' } });
    sfn.sent.length = 0;
    expect(await limited.list({ kind: 'verify' })).toHaveLength(1);
    expect(operations()).toEqual(['ListExecutions']);
  });
});

describe('cancel', () => {
  test('stops a running execution with pgferry.Cancelled: the run is cancelled', async () => {
    const run = await runs.cancel('migrate-deploy-4711-shop-to-pg17');
    const stop = sfn.sent.find((s) => s.operation === 'StopExecution');
    expect(stop?.input).toEqual({
      executionArn: executionArnOf(sfn.stateMachineArns.migrate, 'deploy-4711-shop-to-pg17'),
      ...CANCELLED,
    });
    expect(run).toMatchObject({
      status: 'cancelled',
      error: { error: 'pgferry.Cancelled', cause: CANCELLED.cause },
    });
  });

  /** The recorded migration, moved on into `state`. */
  const enter = (state: string) => {
    const history = sfn.historyOf('deploy-4711-shop-to-pg17');
    history.push({
      id: history.length + 1,
      previousEventId: history.length,
      type: 'TaskStateEntered',
      timestamp: '2026-03-17T06:00:05.000Z',
      stateEnteredEventDetails: { name: state, inputDetails: { truncated: false } },
    });
  };

  test('a migration that has frozen its source (or scaled services down) is stopped: the announcer runs its cleanup', async () => {
    enter('ScaleDownService');
    enter('Freeze');
    expect(await runs.cancel('migrate-deploy-4711-shop-to-pg17')).toMatchObject({ status: 'cancelled' });
    expect(operations()).toContain('StopExecution');
  });

  test.each(['UpdateTargetSecret', 'RunCutoverCommand', 'ScaleUpService'])(
    'a migration in its cutover (%s) is not stopped',
    async (state) => {
      enter('Freeze');
      enter(state);
      await expect(runs.cancel('migrate-deploy-4711-shop-to-pg17')).rejects.toThrow(
        `run migrate-deploy-4711-shop-to-pg17 has entered ${state}: its cutover has begun`,
      );
      expect(operations()).not.toContain('StopExecution');
    },
  );

  test('a finished run is returned as it is; an unknown one is undefined', async () => {
    expect(await runs.cancel('backup-nightly-shop-20260315')).toMatchObject({ status: 'succeeded' });
    expect(await runs.cancel('backup-no-such-run')).toBeUndefined();
    expect(operations()).not.toContain('StopExecution');
  });
});

describe('a stopped run’s cleanup (the announcer’s record)', () => {
  const STOPPED = path.join(__dirname, '../../../fixtures/aws/stopped-executions.json');
  let stopped: StepFunctionsRuns;
  beforeEach(() => {
    const recorded = recordedStepFunctions({ storeUrl: store.url, fixtureFile: STOPPED });
    stopped = new StepFunctionsRuns({ sfn: recorded, stateMachineArns: recorded.stateMachineArns, store });
  });
  const cleanup = {
    notes: ['the 1 session(s) the runner left on the target were ended'],
    left: [
      'the database shop_drill_restoring is left in place (it is in use): remove it with DROP DATABASE "shop_drill_restoring" WITH (FORCE);',
    ],
  };

  test('a cancelled run without a record (its cleanup has not ended): no cleanup', async () => {
    const run = await stopped.get('backup-cancel-shop-dump');
    expect(run).toMatchObject({ status: 'cancelled', error: { error: 'pgferry.Cancelled' } });
    expect(run).not.toHaveProperty('cleanup');
  });

  test('a cancelled run with its record: what the cleanup did and left', async () => {
    await recordRunCleanup(store, 'backup-cancel-shop-dump', cleanup);
    expect(await stopped.get('backup-cancel-shop-dump')).toMatchObject({ status: 'cancelled', cleanup });
    // Read from `.runs/<run id>/cleanup.json`, which the catalog passes by.
    expect(await store.getJson('.runs/backup-cancel-shop-dump/cleanup.json')).toMatchObject({
      id: 'backup-cancel-shop-dump',
      cleanup,
    });
  });

  test('a timed-out run with its record, with the cleanup’s own failure; bounded as the event is', async () => {
    const error = { error: 'Lambda.Unknown', cause: 'x'.repeat(5000) };
    await recordRunCleanup(store, 'restore-drill-timed-out', { ...cleanup, error });
    const run = await stopped.get('restore-drill-timed-out');
    expect(run).toMatchObject({
      status: 'failed',
      cleanup: { ...cleanup, error: { error: 'Lambda.Unknown' } },
    });
    expect(run?.cleanup?.error?.cause).toHaveLength(1000);
  });

  test('a record of another run, or not a record, is not shown', async () => {
    await store.putJson('.runs/backup-cancel-shop-dump/cleanup.json', {
      id: 'backup-other',
      recordedAt: '2026-12-06T08:00:00.000Z',
      cleanup,
    });
    expect(await stopped.get('backup-cancel-shop-dump')).not.toHaveProperty('cleanup');
    await store.putJson('.runs/backup-cancel-shop-dump/cleanup.json', { notes: 'x' });
    expect(await stopped.get('backup-cancel-shop-dump')).not.toHaveProperty('cleanup');
  });

  test('a succeeded or failed run is not looked up', async () => {
    await recordRunCleanup(store, 'backup-nightly-shop-20260315', cleanup);
    expect(await runs.get('backup-nightly-shop-20260315')).not.toHaveProperty('cleanup');
  });
});

test('run ids name their state machine and execution', () => {
  expect(parseRunId('migrate-deploy-4711')).toEqual({ kind: 'migrate', name: 'deploy-4711' });
  expect(executionArnOf('arn:aws:states:eu-west-1:1:stateMachine:M', 'x')).toBe(
    'arn:aws:states:eu-west-1:1:execution:M:x',
  );
});
