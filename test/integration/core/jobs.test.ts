/**
 * Jobs by reference (core/jobs.ts): a run's plan is stored by its preflight and read back from the
 * reference alone — in a local folder and in an S3 store alike. Every way a job can be wrong is one
 * line naming it; the runner itself says the same when started on a bad reference.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { type BackupPlan, BackupPlanSchema, type JobRef, SCHEMA_VERSION } from '../../../core/contracts';
import { jobRefFromEnv, loadJob, storeJob } from '../../../core/jobs';
import { type BackupStore, openStore } from '../../../core/store';
import { jobKey, newBackupId } from '../../../core/store-keys';
import { dumpTaskSize } from '../../../core/task-size';
import { REPO, runNodeScript } from '../../support/cli';
import { testEnv, uniqueName } from '../../support/env';

const env = testEnv();

function plan(store: string): BackupPlan {
  const backupId = newBackupId();
  return BackupPlanSchema.parse({
    schemaVersion: SCHEMA_VERSION,
    backupId,
    database: 'shop',
    store,
    source: { host: 'db.example.com', port: 5432, database: 'shop', user: 'backup' },
    compression: { codec: 'zstd', level: 1 },
    withRolePasswords: false,
    server: { version: '16.4', major: 16 },
    minPgDumpMajor: 16,
    sizeBytes: 1000,
    strategy: { format: 'custom', jobs: 1 },
    taskSize: dumpTaskSize(1000),
    startedAt: new Date().toISOString(),
  });
}

const stores: [string, () => string][] = [
  ['a local folder', () => `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-jobs-'))}`],
  ['an S3 store', () => `s3://${env.s3.bucket}/${uniqueName('jobs')}`],
];

describe.each(stores)('jobs in %s', (_, newStoreUrl) => {
  let store: BackupStore;
  let savedEnv: NodeJS.ProcessEnv;
  const open = (url: string) => openStore(url);

  beforeAll(() => {
    savedEnv = { ...process.env };
    Object.assign(process.env, env.s3.env());
    store = openStore(newStoreUrl());
  });
  afterAll(() => {
    process.env = savedEnv;
  });

  /** Writes `body` as the job at `key` and returns its reference. */
  async function put(key: string, body: string): Promise<JobRef> {
    await store.upload(key, Readable.from([Buffer.from(body)]));
    return { store: store.url, key };
  }

  test('a stored plan is read back from its reference, as it was stored', async () => {
    const stored = plan(store.url);
    const ref = await storeJob(
      store,
      jobKey('backup', 'shop', stored.backupId, stored.backupId),
      'backup',
      stored,
    );
    expect(ref).toEqual({
      store: store.url,
      key: `shop/${stored.backupId}/backup-job-${stored.backupId}.json`,
    });
    expect(await loadJob(open, ref, 'backup', BackupPlanSchema)).toEqual(stored);
  });

  test('a missing job: one line naming it and what to do', async () => {
    const key = jobKey('restore', 'shop', newBackupId(), newBackupId());
    const failure = loadJob(open, { store: store.url, key }, 'restore', BackupPlanSchema);
    await expect(failure).rejects.toMatchObject({
      name: 'Pgferry.InvalidInput',
      message: `no restore job at ${key} in ${store.url}: the workflow's preflight stores it; start the restore again`,
    });
  });

  test('a job that is not JSON: one line naming it', async () => {
    const ref = await put(
      jobKey('verify', 'shop', newBackupId(), newBackupId()),
      '{"schemaVersion": 1, "kind"',
    );
    await expect(loadJob(open, ref, 'verify', BackupPlanSchema)).rejects.toMatchObject({
      name: 'Pgferry.InvalidInput',
      message: `the verify job ${ref.key} in ${store.url} is not valid JSON`,
    });
  });

  test("another kind's job: one line naming both kinds", async () => {
    const stored = plan(store.url);
    const ref = await storeJob(
      store,
      jobKey('backup', 'shop', stored.backupId, stored.backupId),
      'backup',
      stored,
    );
    await expect(loadJob(open, ref, 'restore', BackupPlanSchema)).rejects.toMatchObject({
      name: 'Pgferry.InvalidInput',
      message: `${ref.key} in ${store.url} is a backup job, not a restore job`,
    });
  });

  test('a job that is not a plan, or not a job at all: one line naming the job and the first problems', async () => {
    const stored = plan(store.url);
    const notAPlan = await storeJob(
      store,
      jobKey('backup', 'shop', stored.backupId, stored.backupId),
      'backup',
      {
        ...stored,
        backupId: 'yesterday',
      },
    );
    const notAJob = await put(jobKey('backup', 'shop', newBackupId(), newBackupId()), JSON.stringify(stored));
    for (const ref of [notAPlan, notAJob]) {
      const failure = await loadJob(open, ref, 'backup', BackupPlanSchema).catch((err: Error) => err);
      expect(failure).toMatchObject({ name: 'Pgferry.InvalidInput' });
      expect((failure as Error).message).toMatch(
        new RegExp(`^invalid (backup )?job ${ref.key} in \\S+: \\S`),
      );
      expect((failure as Error).message).not.toMatch(/\n/);
    }
  });
});

describe('the task environment names the job', () => {
  test('PGFERRY_JOB_STORE and PGFERRY_JOB_KEY become the reference', () => {
    expect(jobRefFromEnv({ PGFERRY_JOB_STORE: 'file:///srv/store', PGFERRY_JOB_KEY: 'a/b.json' })).toEqual({
      store: 'file:///srv/store',
      key: 'a/b.json',
    });
  });

  test.each([
    [{ PGFERRY_JOB_KEY: 'a/b.json' }, /^PGFERRY_JOB_STORE is not set: /],
    [{ PGFERRY_JOB_STORE: 'file:///srv/store' }, /^PGFERRY_JOB_KEY is not set: /],
    [{ PGFERRY_JOB_STORE: 'ftp://x', PGFERRY_JOB_KEY: 'a' }, /^invalid job reference .*: store: /],
  ])('%j is refused in one line', (variables, message) => {
    expect(() => jobRefFromEnv(variables)).toThrow(message);
  });

  test('the runner started on a missing job fails in one line naming it, before doing anything', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-jobs-runner-'));
    const key = jobKey('restore', 'shop', newBackupId(), newBackupId());
    const entrypoint = path.join(REPO, 'dist', 'containers', 'pg-tools', 'src', 'main.js');
    const run = await runNodeScript(entrypoint, [], {
      env: { PGFERRY_ACTION: 'restore', PGFERRY_JOB_STORE: `file://${dir}`, PGFERRY_JOB_KEY: key },
    });
    expect(run.code).toBe(1);
    // Powertools logs errors on stderr.
    const lines = `${run.stdout}${run.stderr}`
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toEqual([
      expect.objectContaining({
        message: 'failed',
        errorName: 'Pgferry.InvalidInput',
        errorMessage: `no restore job at ${key} in file://${dir}: the workflow's preflight stores it; start the restore again`,
      }),
    ]);
  });
});
