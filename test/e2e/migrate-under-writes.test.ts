/**
 * Migrations of a source that is being written to (issue 19). Without `--freeze-source` the target
 * receives the source as it was at the dump's snapshot, and the checks hold under writes: rows as
 * the dump carried them, each sequence at least where it was at the snapshot (writers keep
 * advancing it, and pg_dump reads it later). A hot standby cannot be frozen, so `--freeze-source`
 * against one is refused in preflight; without it, a standby migrates like a primary.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import type { MigrateReport } from '../../core/contracts';
import { runMigrate, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  makePostgres,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { findFreePort, isRoot, POSTGRES_OS_USER, stopPostgres } from '../support/postgres';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();
const source = env.server(15);
// The migrations' target, and the primary of the standby below.
const target = usePrivateServer(15);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a migration while the source takes inserts', () => {
  const database = uniqueName('mig_writes');
  const migrated = uniqueName('mig_written');
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-writes-'));
  let result: { code: number | null; stdout: string; stderr: string };
  let inserted = 0;

  beforeAll(async () => {
    await createSeededDatabase(
      source,
      database,
      `CREATE TABLE events (id serial PRIMARY KEY, payload text NOT NULL);
               INSERT INTO events (payload) SELECT md5(g::text) FROM generate_series(1, 20000) g;
               CREATE TABLE descending (id int);
               CREATE SEQUENCE countdown INCREMENT BY -1;
               SELECT nextval('countdown');`,
    );
    // A writer in the manner of pgbench: short transactions, as fast as they go, until the end.
    let writing = true;
    const writer = (async () => {
      const c = new Client(source.clientConfig(database));
      await c.connect();
      try {
        while (writing) {
          await c.query(`INSERT INTO events (payload) VALUES ('written during the migration')`);
          await c.query(`SELECT nextval('countdown')`);
          inserted++;
        }
      } finally {
        await c.end();
      }
    })();
    try {
      result = await runMigrate(sourceUrl(source, database), sourceUrl(target(), migrated), store, [
        '--no-schema-test',
        '--json',
      ]);
    } finally {
      writing = false;
      await writer;
    }
  }, 300_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropDatabase(target(), migrated);
    rmSync(store, { recursive: true, force: true });
  });

  test('passes its checks', () => {
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    expect(inserted).toBeGreaterThan(0);
  });

  test('the target holds the source as of the snapshot: every row the dump carried, none after', async () => {
    const report = JSON.parse(result.stdout) as MigrateReport;
    const [{ checks }] = report.databases;
    const events = checks.rowCounts.find((t) => t.name === 'events');
    expect(events).toMatchObject({ restoredRows: events?.rows });
    expect(events?.rows).toBeGreaterThanOrEqual(20000);
    const [targetRows, sourceRows] = await Promise.all([
      withClient(target(), migrated, (c) => c.query<{ n: number }>('SELECT count(*)::int AS n FROM events')),
      withClient(source, database, (c) => c.query<{ n: number }>('SELECT count(*)::int AS n FROM events')),
    ]);
    expect(targetRows.rows[0].n).toBe(events?.rows);
    expect(sourceRows.rows[0].n).toBeGreaterThan(targetRows.rows[0].n);
  });

  test('each sequence is at least where the snapshot had it (at most, counting down)', () => {
    const report = JSON.parse(result.stdout) as MigrateReport;
    const sequences = new Map(report.databases[0].checks.sequences.map((s) => [s.name, s]));
    const value = (state: string | undefined) => BigInt((state ?? 'x').split(':')[0]);
    const events = sequences.get('events_id_seq');
    const countdown = sequences.get('countdown');
    expect(value(events?.target)).toBeGreaterThanOrEqual(value(events?.source));
    expect(value(countdown?.target)).toBeLessThanOrEqual(value(countdown?.source));
  });
});

describe('a migration that cannot get its locks', () => {
  const database = uniqueName('mig_locked');
  const migrated = uniqueName('mig_unlocked');
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-locked-'));
  beforeAll(async () => {
    await createSeededDatabase(source, database, 'CREATE TABLE events (id serial PRIMARY KEY)');
  });
  afterAll(async () => {
    await dropDatabase(source, database);
    rmSync(store, { recursive: true, force: true });
  });

  test('fails after --lock-wait-timeout naming the table and its holder; nothing is left on the target', async () => {
    const holder = new Client({ ...source.clientConfig(database), application_name: 'holder app' });
    await holder.connect();
    try {
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      const result = await runMigrate(sourceUrl(source, database), sourceUrl(target(), migrated), store, [
        '--lock-wait-timeout',
        '2s',
      ]);
      expect(result.code).toBe(1);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines.at(-1)).toMatch(
        new RegExp(
          `^pgferry: pg_dump could not lock public\\.events within 2s \\(--lock-wait-timeout\\): ACCESS EXCLUSIVE lock on public\\.events held by pid ${pid} \\(user postgres, application "holder app", idle in transaction, .*\\); no data was moved`,
        ),
      );
    } finally {
      await holder.end();
    }
    const exists = await withClient(target(), 'postgres', (c) =>
      c.query(
        "SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE 'pgferry\\_schema\\_test%'",
        [migrated],
      ),
    );
    expect(exists.rows).toEqual([]);
  });
});

const run = promisify(execFile);

/** Runs a PostgreSQL program as the server's OS user (initdb and postgres refuse root). */
function asPostgres(file: string, args: string[]) {
  return isRoot() ? run('runuser', ['-u', POSTGRES_OS_USER, '--', file, ...args]) : run(file, args);
}

/**
 * A hot standby of `primary`: `pg_basebackup -R` of it into a directory of its own, started on a
 * free port.
 */
async function startStandby(
  primary: TestPostgres,
): Promise<{ server: TestPostgres; stop: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-standby-'));
  chmodSync(dir, 0o777);
  const dataDir = path.join(dir, 'data');
  const binDir = primary.binDir;
  await asPostgres(path.join(binDir, 'pg_basebackup'), [
    '-h',
    primary.socketDir,
    '-p',
    String(primary.port),
    '-U',
    primary.user,
    '-D',
    dataDir,
    '-R',
    '-X',
    'stream',
    '--no-sync',
  ]);
  const port = await findFreePort();
  // The copied configuration names the primary's port and socket: the standby gets its own.
  writeFileSync(
    path.join(dataDir, 'pgferry-test.conf'),
    `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${dir}'\nfsync = off\nhot_standby = on\n`,
  );
  chmodSync(path.join(dataDir, 'pgferry-test.conf'), 0o644);
  await asPostgres(path.join(binDir, 'pg_ctl'), ['-D', dataDir, '-l', path.join(dir, 'log'), '-w', 'start']);
  const server = makePostgres({
    major: primary.major,
    version: primary.version,
    versionNum: primary.versionNum,
    host: '127.0.0.1',
    port,
    user: primary.user,
    password: primary.password,
    binDir,
    dataDir,
    socketDir: dir,
    logFile: path.join(dir, 'log'),
  });
  return {
    server,
    stop: async () => {
      await stopPostgres({ binDir, dataDir });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('a hot standby as the source', () => {
  const primary = target;
  const database = 'on_standby';
  const migrated = uniqueName('mig_standby');
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-standby-'));
  let standby: Awaited<ReturnType<typeof startStandby>>;

  beforeAll(async () => {
    await createSeededDatabase(
      primary(),
      database,
      `CREATE TABLE items (id serial PRIMARY KEY, label text);
               INSERT INTO items (label) SELECT 'item ' || g FROM generate_series(1, 100) g;`,
    );
    standby = await startStandby(primary());
    // Wait until the standby accepts connections and has replayed the table.
    for (let i = 0; ; i++) {
      const ready = await withClient(standby.server, database, (c) =>
        c.query<{ n: number }>('SELECT count(*)::int AS n FROM items'),
      ).then(
        (r) => r.rows[0].n === 100,
        () => false,
      );
      if (ready) break;
      if (i > 100) throw new Error('the standby did not come up');
      await sleep(200);
    }
  }, 180_000);

  afterAll(async () => {
    await standby?.stop();
    await dropDatabase(target(), migrated);
    rmSync(store, { recursive: true, force: true });
  });

  test('with --freeze-source is refused in preflight, in one line, before anything is created', async () => {
    const result = await runMigrate(
      sourceUrl(standby.server, database),
      sourceUrl(target(), migrated),
      store,
      ['--freeze-source'],
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(
      /^pgferry: the source .* is a standby \(in recovery\): --freeze-source cannot stop writes there; run the migration against its primary, or without --freeze-source/,
    );
    const exists = await withClient(target(), 'postgres', (c) =>
      c.query('SELECT 1 FROM pg_database WHERE datname = $1', [migrated]),
    );
    expect(exists.rows).toEqual([]);
  });

  test('without --freeze-source migrates what the standby holds', async () => {
    const result = await runMigrate(
      sourceUrl(standby.server, database),
      sourceUrl(target(), migrated),
      store,
      ['--no-schema-test', '--json'],
    );
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    const rows = await withClient(target(), migrated, (c) =>
      c.query<{ n: number }>('SELECT count(*)::int AS n FROM items'),
    );
    expect(rows.rows[0].n).toBe(100);
  });
});
