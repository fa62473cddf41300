/**
 * Faults during a restore: the runner's download folder filling up, and the target server
 * restarting while the restore loads a table. Each is reported as a failure that says what to do next,
 * recorded in the stored restore report, and following that advice the restore then succeeds.
 * A corrupted object is found before the target is touched, also when the restore would
 * replace an existing database (new databases and missing objects: restore.test.ts).
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { RestoreReport } from '../../core/contracts';
import { restoringName } from '../../core/postgres/incomplete-database';
import { databaseSegment } from '../../core/store-keys';
import { useBackedUpDatabase } from '../support/backed-up-database';
import { runCli, sourceUrl } from '../support/cli';
import {
  createDatabase,
  databaseExists,
  dropDatabase,
  quoteIdent,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { resizeFileSystem, smallFileSystem, waitFor } from '../support/faults';
import {
  isRoot,
  POSTGRES_OS_USER,
  type PostgresServerInfo,
  startPostgres,
  stopPostgres,
} from '../support/postgres';

const run = promisify(execFile);
const env = testEnv();
const pg15 = env.server(15);
const backedUp = useBackedUpDatabase(pg15, {
  prefix: 'rfaults',
  seed: `
    -- About 20 MB once decompressed: more than the small download folder holds.
    CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS v FROM generate_series(1, 250000) g;
    -- Restoring its rows takes seconds (2 ms each, checked on insert): a window to act in.
    CREATE FUNCTION slow_ok(integer) RETURNS boolean LANGUAGE sql AS 'SELECT true FROM pg_sleep(0.002)';
    CREATE TABLE slow (id integer CHECK (slow_ok(id)));
    INSERT INTO slow SELECT generate_series(1, 2500);`,
  timeoutMs: 180_000,
});
const { name: source, dir, store } = backedUp;

function restore(target: string, extra: Record<string, string> = {}, ...args: string[]) {
  return runCli(
    ['restore', '--store', store, '--backup', backedUp.manifest.id, '--target', target, ...args],
    {
      env: extra,
    },
  );
}

/** The stored reports of restores of the backup. */
function storedReports(): RestoreReport[] {
  const folder = path.join(dir, databaseSegment(source), backedUp.manifest.id);
  return readdirSync(folder)
    .filter((f) => f.startsWith('restore-report-'))
    .map((f) => JSON.parse(readFileSync(path.join(folder, f), 'utf8')) as RestoreReport);
}

test('a corrupted object is found before an existing target database is touched (--mode clean)', async () => {
  const target = uniqueName('rcorrupt');
  await createDatabase(pg15, target);
  const contents = (c: import('pg').Client) =>
    c
      .query("SELECT count(*) AS n, md5(string_agg(v, ',' ORDER BY id)) AS h FROM kept")
      .then((r) => r.rows[0]);
  const before = await withClient(pg15, target, async (c) => {
    await c.query("CREATE TABLE kept AS SELECT g AS id, 'row ' || g AS v FROM generate_series(1, 1000) g");
    return contents(c);
  });
  const file = path.join(dir, databaseSegment(source), backedUp.manifest.id, 'dump.pgdump.zst');
  const original = readFileSync(file);
  const damaged = Buffer.from(original);
  damaged[Math.floor(damaged.length / 2)] ^= 0x01;
  writeFileSync(file, damaged);
  try {
    const failed = await restore(
      sourceUrl(pg15, target),
      {},
      '--mode',
      'clean',
      '--force',
      '--no-safety-backup',
    );
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /^pgferry: object dump\.pgdump\.zst of backup \S+ (failed its checksum|cannot be read).*nothing of the backup was written to the target/,
    );
    expect(await withClient(pg15, target, contents)).toEqual(before);
    expect(storedReports().find((r) => r.target.database === target)).toMatchObject({
      status: 'failed',
      checks: { checksums: [] },
    });
  } finally {
    writeFileSync(file, original);
    await dropDatabase(pg15, target);
  }
});

describe('the download folder filling up', () => {
  let fs: { dir: string; unmount(): Promise<void> };
  beforeAll(async () => {
    fs = await smallFileSystem('2m');
  });
  afterAll(() => fs.unmount());

  test('does not stop a streamed create restore: it writes only the definitions there', async () => {
    const target = uniqueName('rfull_streamed');
    try {
      expect(await restore(sourceUrl(pg15, target), { PGFERRY_WORK_DIR: fs.dir })).toMatchObject({ code: 0 });
      expect(readdirSync(fs.dir)).toEqual([]);
    } finally {
      await dropDatabase(pg15, target);
    }
  });

  test('refuses a restore from files (here --schema) before anything is downloaded, naming the sizes; with room, it succeeds', async () => {
    const target = uniqueName('rfull');
    const fromFiles = ['--schema', 'public'];
    const failed = await restore(sourceUrl(pg15, target), { PGFERRY_WORK_DIR: fs.dir }, ...fromFiles);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /^pgferry: backup \S+ needs [\d.]+ GiB of disk \(.*\): [\d.]+ GiB is free in .*: free space, or point PGFERRY_WORK_DIR at a larger disk; nothing was downloaded$/m,
    );
    expect(failed.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await databaseExists(pg15, target)).toBe(false);
    expect(readdirSync(fs.dir)).toEqual([]);

    await resizeFileSystem(fs.dir, '128m');
    const retried = await restore(sourceUrl(pg15, target), { PGFERRY_WORK_DIR: fs.dir }, ...fromFiles);
    expect(retried).toMatchObject({ code: 0 });
    await dropDatabase(pg15, target);
  });
});

describe('the target server restarting mid-restore', () => {
  let server: PostgresServerInfo;
  const target = uniqueName('rrestart');

  beforeAll(async () => {
    // A server of its own: restarting a shared one would break the tests running beside this.
    const parentDir = mkdtempSync(path.join(tmpdir(), 'pgferry-restart-target-'));
    chmodSync(parentDir, 0o711);
    server = await startPostgres(15, { parentDir, password: pg15.password });
  }, 120_000);
  afterAll(() => stopPostgres(server));

  const targetUrl = () =>
    `postgres://${server.user}:${encodeURIComponent(server.password)}@${server.host}:${server.port}/${target}`;
  /** The throwaway server, as withClient connects to it. */
  const asTarget = () =>
    ({
      clientConfig: (database = 'postgres') => ({
        host: server.host,
        port: server.port,
        user: server.user,
        password: server.password,
        database,
      }),
    }) as TestPostgres;

  test('is reported failed with what to do next, and recorded; following that, the restore succeeds', async () => {
    const restoring = restore(targetUrl());
    await waitFor('the slow table to be loading', () =>
      withClient(asTarget(), 'postgres', async (c) => {
        const { rows } = await c.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY public.slow %'",
          [restoringName(target)],
        );
        return rows.length > 0 ? true : undefined;
      }).catch(() => undefined),
    );
    const pgCtl = [
      path.join(server.binDir, 'pg_ctl'),
      ...['restart', '-D', server.dataDir, '-m', 'fast', '-w', '-l', server.logFile],
    ];
    if (isRoot()) await run('runuser', ['-u', POSTGRES_OS_USER, '--', ...pgCtl]);
    else await run(pgCtl[0], pgCtl.slice(1));

    const failed = await restoring;
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^pgferry: loading the data( of \S+)? failed: terminating connection /);
    expect(failed.stderr.trimEnd().split('\n')).toHaveLength(1);
    const advice =
      /\(the database (\S+), which the restore loads before renaming it (\S+), (was dropped|is left in place: drop it, then run the restore again); nothing was written to (\S+)\)$/.exec(
        failed.stderr.trimEnd(),
      );
    expect(advice?.slice(1, 3)).toEqual([restoringName(target), target]);
    expect(advice?.[4]).toBe(target);
    // What it says is so; the target's name never held anything.
    expect(await databaseExists(asTarget(), restoringName(target))).toBe(advice?.[3].startsWith('is left'));
    expect(await databaseExists(asTarget(), target)).toBe(false);
    expect(storedReports().find((r) => r.target.database === target)).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^loading the data( of \S+)? failed/),
    });

    if (await databaseExists(asTarget(), restoringName(target))) {
      await withClient(asTarget(), 'postgres', (c) =>
        c.query(`DROP DATABASE ${quoteIdent(restoringName(target))} WITH (FORCE)`),
      );
    }
    const retried = await restore(targetUrl());
    expect(retried).toMatchObject({ code: 0 });
    const counts = await withClient(asTarget(), target, (c) =>
      c.query<{ n: string }>('SELECT (SELECT count(*) FROM big) + (SELECT count(*) FROM slow) AS n'),
    );
    expect(Number(counts.rows[0].n)).toBe(250_000 + 2500);
  });
});
