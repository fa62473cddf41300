/**
 * One backup per database at a time, with the real CLI: of two backups of one database started
 * at once, one runs and the other is refused; a crashed run's lease is taken over; the record
 * step and the cleanup release the lease. The dumps run a real pg_dump behind a wrapper that
 * first sleeps, so that a run is reliably still dumping when the other one starts.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { GetObjectTaggingCommand, S3Client } from '@aws-sdk/client-s3';
import { completeBackup } from '../../core/complete-backup';
import { type BackupManifest, BackupPlanSchema } from '../../core/contracts';
import { acquireLease, currentLease, type Lease } from '../../core/lease';
import { DEFAULT_RETENTION } from '../../core/retention';
import { type BackupStore, LocalStore } from '../../core/store';
import { S3Store } from '../../core/store/s3-store';
import { backupObjectKey, newBackupId } from '../../core/store-keys';
import { dumpTaskSize } from '../../core/task-size';
import { extraPgBinDirs, runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';
import { descendants } from '../support/faults';
import { listS3Keys } from '../support/store';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('lease');
const PG15_BIN = '/usr/lib/postgresql/15/bin';

beforeAll(async () => {
  await createSeededDatabase(
    pg,
    database,
    'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g',
  );
});
afterAll(() => dropDatabase(pg, database));

/** Client tools whose pg_dump runs the real one after `before` (a shell command). */
function wrappedPgDump(before: string, after = ''): string {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-wrapped-pg_dump-')), 'bin');
  mkdirSync(dir);
  writeFileSync(
    path.join(dir, 'pg_dump'),
    `#!/bin/sh\n[ "$1" = "--version" ] && exec ${PG15_BIN}/pg_dump "$@"\n${before}\n${PG15_BIN}/pg_dump "$@" || exit $?\n${after}\n`,
  );
  writeFileSync(path.join(dir, 'pg_dumpall'), `#!/bin/sh\nexec ${PG15_BIN}/pg_dumpall "$@"\n`);
  chmodSync(path.join(dir, 'pg_dump'), 0o755);
  chmodSync(path.join(dir, 'pg_dumpall'), 0o755);
  return [dir, ...extraPgBinDirs()].join(':');
}

function localStore(): { url: string; store: BackupStore } {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-lease-e2e-'));
  return { url: `file://${dir}`, store: new LocalStore(dir) };
}

const backup = (url: string, extraEnv: Record<string, string> = {}, onSpawn?: (pid: number) => void) =>
  runCli(['backup', '--source', sourceUrl(pg, database), '--store', url], { env: extraEnv, onSpawn });

async function listedIds(url: string, storeEnv: Record<string, string> = {}): Promise<string[]> {
  const listed = await runCli(['list', '--store', url, '--json'], { env: storeEnv });
  return (JSON.parse(listed.stdout) as BackupManifest[]).map((m) => m.id);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return ''; // exited meanwhile
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // exited meanwhile
  }
}

/** As a power cut would: stops the process and everything it started, then kills them all. */
function crash(pid: number): void {
  signal(pid, 'SIGSTOP');
  const tree = descendants(pid);
  for (const p of tree) signal(p, 'SIGSTOP');
  for (const p of [pid, ...tree]) signal(p, 'SIGKILL');
}

test('of two backups of one database started at once, one runs and the other is refused', async () => {
  const { url, store } = localStore();
  const tools = { PGFERRY_PG_BIN_DIRS: wrappedPgDump('sleep 6') };
  const results = await Promise.all([backup(url, tools), backup(url, tools)]);

  const [winner, loser] = [...results].sort((a, b) => (a.code ?? 9) - (b.code ?? 9));
  expect([winner.code, loser.code]).toEqual([0, 1]);
  const id = winner.stdout.trim();
  expect(loser.stderr).toMatch(
    new RegExp(
      `^pgferry: a backup of ${database} has been running since \\S+Z \\(backup ${id}, pid \\d+ on [^)]+\\); wait for it to finish`,
    ),
  );
  expect(loser.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(await listedIds(url)).toEqual([id]);
  expect(await currentLease(store, database)).toBeUndefined(); // released by the record step
});

test("a crashed run's lease is taken over by the next backup", async () => {
  const { url, store } = localStore();
  let pid = 0;
  const crashed = backup(url, { PGFERRY_PG_BIN_DIRS: wrappedPgDump('sleep 120') }, (p) => {
    pid = p;
  });
  let held: Lease;
  try {
    held = await waitFor('the first run to take the lease', () => currentLease(store, database));
    // Crash it mid-dump: once its pg_dump (the wrapper, sleeping) is running.
    await waitFor('the dump to start', async () =>
      descendants(pid).some((p) => commandLine(p).startsWith('sleep')) ? true : undefined,
    );
  } finally {
    crash(pid);
  }
  expect(await crashed).toMatchObject({ code: null });
  // Its lease outlived it, naming its (now gone) process.
  expect(await currentLease(store, database)).toMatchObject({ backupId: held.backupId, owner: { pid } });

  const next = await backup(url);
  expect(next).toMatchObject({ code: 0, stderr: '' });
  expect(await currentLease(store, database)).toBeUndefined();
  expect(await listedIds(url)).toEqual([next.stdout.trim()]);
});

test('a failed backup releases the lease in its cleanup', async () => {
  const { url, store } = localStore();
  const failed = await backup(url, {
    PGFERRY_PG_BIN_DIRS: wrappedPgDump('', 'echo "pg_dump: error: injected failure" >&2; exit 3'),
  });
  expect(failed.code).toBe(1);
  expect(await currentLease(store, database)).toBeUndefined();
});

describe('on an S3-compatible store', () => {
  const url = `s3://${env.s3.bucket}/${uniqueName('lease')}`;
  const s3 = new S3Client(env.s3.clientConfig());
  const store = new S3Store(env.s3.bucket, url.split('/').slice(3).join('/'), s3);
  let manifest: BackupManifest;

  beforeAll(async () => {
    const result = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', url, '--json'], {
      env: env.s3.env(),
    });
    if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
    manifest = JSON.parse(result.stdout) as BackupManifest;
  });

  test('the record step releases the lease', async () => {
    expect(await currentLease(store, database)).toBeUndefined();
  });

  test("the record step tags the backup's objects with their retention tier", async () => {
    for (const name of [...manifest.objects.map((o) => o.key), 'manifest.json']) {
      const out = await s3.send(
        new GetObjectTaggingCommand({
          Bucket: env.s3.bucket,
          Key: `${url.split('/').slice(3).join('/')}/${backupObjectKey(database, manifest.id, name)}`,
        }),
      );
      expect([name, out.TagSet]).toEqual([name, [{ Key: 'pgferry-tier', Value: 'yearly' }]]);
    }
  });

  test('a tagging failure after the manifest is a warning: the backup stays complete, the lease is released', async () => {
    // The record step again over the stored dump, with a store whose tagging fails.
    await acquireLease(store, database, manifest.id);
    const failingTags = Object.assign(Object.create(store) as BackupStore, {
      objectTags: async () => ({}),
      tagObjects: async () => {
        throw new Error('tagging is down');
      },
    });
    const plan = BackupPlanSchema.parse({
      schemaVersion: 1,
      backupId: manifest.id,
      database,
      store: url,
      source: { host: pg.host, port: pg.port, database, user: pg.user, sslmode: 'prefer' },
      compression: manifest.compression,
      withRolePasswords: false,
      server: manifest.server,
      minPgDumpMajor: manifest.server.major,
      sizeBytes: 0,
      strategy: manifest.strategy,
      taskSize: dumpTaskSize(0),
      startedAt: manifest.startedAt,
    });
    const completed = await completeBackup(plan, {
      openStore: () => failingTags,
      retention: DEFAULT_RETENTION,
    });
    expect(completed).toMatchObject({
      manifest: { id: manifest.id },
      leaseReleased: true,
      warnings: ['could not tag retention tiers: tagging is down'],
    });
    expect(await listedIds(url, env.s3.env())).toEqual([manifest.id]);
  });

  test('a backup is refused while another run holds the lease, and writes nothing', async () => {
    const running = newBackupId();
    await acquireLease(store, database, running, { owner: { hostname: 'worker-7.invalid', pid: 4242 } });
    const keysBefore = await listS3Keys(url);
    const result = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', url], {
      env: env.s3.env(),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `^pgferry: a backup of ${database} has been running since .*\\(backup ${running}, pid 4242 on worker-7\\.invalid\\)`,
      ),
    );
    expect(await listS3Keys(url)).toEqual(keysBefore);
  });
});
