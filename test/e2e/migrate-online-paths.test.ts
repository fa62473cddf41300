/**
 * `pgferry migrate --online` (issue 17) beyond the writer test of migrate-online.test.ts, from a
 * PostgreSQL 14 source (`EXPORT_SNAPSHOT`) with one WAL sender only (`max_wal_senders = 1`) into
 * 17: the lag in the run's progress as `pgferry serve` shows it (GET /v1/runs/{id}), the cutover's
 * wait for the target to apply the source's last write (its sentinel) and that wait given up on,
 * Ctrl-C during the catch-up, and the refusals for a full WAL sender table and for a target login
 * that may not subscribe.
 *
 * The target's apply is held at observed points, never after a guessed delay: a session on the
 * target locks a row the source then updates (the subscription's apply waits for it, the lag
 * grows), and another holds a lock on a key-less table that keeps the migration's ANALYZE — the
 * step before the catch-up — waiting until the test has made the lag it needs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import type { MigrateReport } from '../../core/contracts';
import { cliEnv, extraPgBinDirs, REPO, type RunOptions, runCli, runMigrate, sourceUrl } from '../support/cli';
import { createSeededDatabase, type TestPostgres, testEnv, uniqueName, withClient } from '../support/env';
import { type FakeSecretsManager, startFakeSecretsManager } from '../support/fake-secrets-manager';
import { runnerOf, waitFor } from '../support/faults';
import { usePrivateServer } from '../support/private-server';

const source = usePrivateServer(14, {
  settings: { wal_level: 'logical', max_replication_slots: 2, max_wal_senders: 1 },
});
const target = usePrivateServer(17);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The catch-up waits while the target is further behind than this (CUTOVER_LAG_BYTES). */
const CUTOVER_LAG_BYTES = 8 * 1024 * 1024;

/** `events` to copy, `marks` whose rows the test updates while the target holds them. */
const SEED = `
  CREATE TABLE events (id bigserial PRIMARY KEY, payload text NOT NULL);
  INSERT INTO events (payload) SELECT md5(g::text) FROM generate_series(1, 20000) g;
  CREATE TABLE marks (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO marks VALUES (1, 0), (2, 0);`;

/** A session held open on a server, holding what `sql` took until `release`. */
async function hold(pg: TestPostgres, database: string, sql: string) {
  const c = new Client(pg.clientConfig(database));
  c.on('error', () => undefined);
  await c.connect();
  await c.query('BEGIN');
  await c.query(sql);
  return {
    release: async () => {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end().catch(() => undefined);
    },
  };
}

/**
 * Waits until a session on the target (other than the caller's) runs a statement like `pattern`
 * (`running`), or until none does.
 */
async function waitForTargetStatement(what: string, pattern: string, running: boolean): Promise<void> {
  await withClient(target(), 'postgres', (c) =>
    waitFor(what, async () => {
      const { rowCount } = await c.query(
        'SELECT 1 FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()',
        [pattern],
      );
      return Boolean(rowCount) === running ? true : undefined;
    }),
  );
}

/** Whether `sql` (one row, column `ok`) answers true on `database` of `pg`, which may not exist yet. */
async function holds(pg: TestPostgres, database: string, sql: string, params: unknown[] = []) {
  try {
    const { rows } = await withClient(pg, database, (c) => c.query<{ ok: boolean }>(sql, params));
    return rows[0]?.ok === true ? true : undefined;
  } catch {
    return undefined;
  }
}

/** WAL bytes the slot's subscriber has not confirmed (0 without a slot). */
async function slotLagBytes(database: string): Promise<number> {
  const { rows } = await withClient(source(), database, (c) =>
    c.query<{ lag: string }>(
      `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint::text AS lag
       FROM pg_replication_slots`,
    ),
  );
  return Number(rows[0].lag);
}

/** The cutover's sentinel schema (`pgferry_<migrate id>`, its table `sentinel`) in a database. */
const SENTINEL_SCHEMAS = `SELECT 'sentinel ' || nspname AS name FROM pg_namespace WHERE nspname LIKE 'pgferry\\_%'`;

/**
 * The replication objects an online migration leaves on either side, and its sentinel on the
 * source and (when the target database `migrated` exists) on the target: none, when all is well.
 */
async function leftovers(database: string, migrated?: string): Promise<string[]> {
  const onSource = await withClient(source(), database, (c) =>
    c.query<{ name: string }>(
      `SELECT slot_name AS name FROM pg_replication_slots UNION ALL SELECT pubname FROM pg_publication
       UNION ALL ${SENTINEL_SCHEMAS}`,
    ),
  );
  const onTarget = await withClient(target(), 'postgres', (c) =>
    c.query<{ name: string }>('SELECT subname AS name FROM pg_subscription'),
  );
  const inTarget =
    migrated !== undefined && (await targetDatabaseExists(migrated))
      ? (await withClient(target(), migrated, (c) => c.query<{ name: string }>(SENTINEL_SCHEMAS))).rows
      : [];
  return [...onSource.rows, ...onTarget.rows, ...inTarget].map((r) => r.name);
}

/** A source table's replica identity: `d` (default), `n` (nothing), `f` (full) or `i` (an index). */
async function replicaIdentity(database: string, table: string): Promise<string> {
  const { rows } = await withClient(source(), database, (c) =>
    c.query<{ r: string }>('SELECT relreplident AS r FROM pg_class WHERE relname = $1', [table]),
  );
  return rows[0].r;
}

async function targetDatabaseExists(name: string): Promise<boolean> {
  const { rows } = await withClient(target(), 'postgres', (c) =>
    c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]),
  );
  return rows.length > 0;
}

/** Whether the migration's sentinel exists on both sides (the catch-up has begun). */
async function sentinelOnBothSides(database: string, migrated: string): Promise<boolean> {
  const count = (pg: TestPostgres, db: string) =>
    withClient(pg, db, (c) => c.query(SENTINEL_SCHEMAS)).then((r) => r.rows.length);
  return (await count(source(), database)) === 1 && (await count(target(), migrated)) === 1;
}

/**
 * Holds the target's apply and makes the lag: once the target has `marks`' primary key (post-data
 * is done with the table), its ANALYZE is held by a lock on `marks` that the apply's updates do
 * not conflict with; once the subscription's apply runs, the target locks `marks` row `row`,
 * which the source then updates — the apply waits there — followed by `bulkRows` more rows of
 * `events`. Then ANALYZE is let go: the catch-up begins with the apply held. Returns the held row.
 */
async function holdTheApply(database: string, migrated: string, row: number, bulkRows: number) {
  await waitFor(
    "the target to have marks' primary key",
    () => holds(target(), migrated, `SELECT to_regclass('public.marks_pkey') IS NOT NULL AS ok`),
    300_000,
  );
  const analyze = await hold(target(), migrated, 'LOCK TABLE marks IN SHARE UPDATE EXCLUSIVE MODE');
  try {
    // ANALYZE follows the subscription (which may exist by now): marks not analyzed yet means its
    // ANALYZE is still to come, and will wait for this lock.
    const { rows } = await withClient(target(), migrated, (c) =>
      c.query(`SELECT 1 FROM pg_stat_user_tables WHERE relname = 'marks' AND last_analyze IS NOT NULL`),
    );
    if (rows.length) throw new Error('marks was analyzed before the test could hold its ANALYZE');
    await waitFor('the subscription to be applying', () =>
      holds(source(), database, 'SELECT bool_or(active) AS ok FROM pg_replication_slots'),
    );
    const held = await hold(target(), migrated, `SELECT * FROM marks WHERE id = ${row} FOR UPDATE`);
    await withClient(source(), database, async (c) => {
      await c.query('UPDATE marks SET v = $1 WHERE id = $1', [row]);
      if (bulkRows > 0) {
        await c.query(
          'INSERT INTO events (payload) SELECT repeat(md5(g::text), 2) FROM generate_series(1, $1::int) g',
          [bulkRows],
        );
      }
    });
    return held;
  } finally {
    await analyze.release();
  }
}

describe('PostgreSQL 14 → 17 through pgferry serve: the lag in the run’s progress', () => {
  const database = uniqueName('online14_api');
  const migrated = uniqueName('online14_api_dst');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-online-api-'));
  let serve: ChildProcess | undefined;
  let url = '';
  let token = '';

  beforeAll(async () => {
    await createSeededDatabase(source(), database, SEED);
    serve = spawn(
      process.execPath,
      [
        path.join(REPO, 'bin', 'pgferry.js'),
        'serve',
        ...['--store', path.join(dir, 'store'), '--port', '0', '--state-dir', path.join(dir, 'state')],
      ],
      {
        cwd: REPO,
        env: cliEnv({
          PGFERRY_SOURCE_PASSWORD: source().password,
          PGFERRY_TARGET_PASSWORD: target().password,
          PGFERRY_PG_BIN_DIRS: [...extraPgBinDirs(), '/usr/lib/postgresql/15/bin'].join(':'),
        }),
      },
    );
    let stderr = '';
    url = await new Promise<string>((resolve, reject) => {
      serve?.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        const match = /listening on (http:\/\/\S+)/.exec(stderr);
        if (match) resolve(match[1]);
      });
      serve?.on('exit', (code) => reject(new Error(`pgferry serve exited (${code}): ${stderr}`)));
    });
    const tokenFile = /API token is in (\S+)/.exec(stderr)?.[1];
    if (!tokenFile) throw new Error(`no token file in: ${stderr}`);
    token = readFileSync(tokenFile, 'utf8').trim();
  }, 120_000);

  afterAll(() => {
    serve?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(method: string, route: string, body?: unknown) {
    const response = await fetch(`${url}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  test('GET /v1/runs/{id} shows the catch-up’s lag in bytes and seconds; the migration then succeeds', async () => {
    const connection = (pg: TestPostgres, name: string) => ({
      host: pg.host,
      port: pg.port,
      user: pg.user,
      database: name,
    });
    const started = await call('POST', '/v1/migrations', {
      source: connection(source(), database),
      target: connection(target(), migrated),
      online: true,
      schemaTest: false,
    });
    expect(started.status).toBe(202);
    const id = String(started.body.id);
    const run = async () => (await call('GET', `/v1/runs/${id}`)).body;

    const held = await holdTheApply(database, migrated, 1, 150_000);
    let progress: { step?: string; lagBytes?: number; lagSeconds?: number; database?: string } = {};
    try {
      expect(await slotLagBytes(database)).toBeGreaterThan(CUTOVER_LAG_BYTES);
      // The catch-up waits (the target is more than 8 MiB behind): its reports show how far, and
      // a later one how long.
      progress = await waitFor('the run to report its lag for a second', async () => {
        const r = await run();
        if (r.status !== 'running') throw new Error(`the run ended: ${JSON.stringify(r)}`);
        const p = (r.progress ?? {}) as typeof progress;
        return p.step === 'catchUp' && (p.lagSeconds ?? 0) >= 1 ? p : undefined;
      });
    } finally {
      await held.release();
    }
    expect(progress.lagBytes).toBeGreaterThan(CUTOVER_LAG_BYTES);
    expect(progress.database).toBe(database);

    const ended = await waitFor(
      'the run to end',
      async () => {
        const r = await run();
        return r.status === 'running' ? undefined : r;
      },
      240_000,
    );
    expect(ended).toMatchObject({ status: 'succeeded' });
    expect((ended.result as MigrateReport).sourceLeftFrozen).toBe(true);
    expect(ended.progress).toBeUndefined();
    const count = (pg: TestPostgres, db: string) =>
      withClient(pg, db, (c) =>
        c.query<{ n: string; v: number }>(
          'SELECT (SELECT count(*) FROM events)::text AS n, (SELECT v FROM marks WHERE id = 1) AS v',
        ),
      ).then((r) => r.rows[0]);
    expect(await count(target(), migrated)).toEqual(await count(source(), database));
    expect(await leftovers(database, migrated)).toEqual([]);
  }, 300_000);
});

describe('PostgreSQL 14 → 17 from the CLI', () => {
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-online14-'));
  // A killed runner leaves its work folder for the next pgferry run to remove (and report): in a
  // folder of this file's own, not where other test files' runs, in parallel, would find it.
  const killedRunsWorkDir = mkdtempSync(path.join(tmpdir(), 'pgferry-online-kill-'));
  afterAll(() => {
    rmSync(store, { recursive: true, force: true });
    rmSync(killedRunsWorkDir, { recursive: true, force: true });
  });

  /**
   * After a killed runner, what the workflow's cleanup step (MigrateCleanup) must leave: no slot,
   * publication, subscription or sentinel; `table`'s replica identity, set FULL by the migration,
   * reset from the publication's record of it; the partial target gone or marked (the mark the
   * next run's preflight names); nothing listed.
   */
  async function expectCleanedUp(database: string, migrated: string, table: string) {
    expect(await leftovers(database, migrated)).toEqual([]);
    expect(await replicaIdentity(database, table)).toBe('d');
    // The target the killed run created (marked incomplete) is dropped by the cleanup step, as is
    // any schema-test scratch database and any database still under the name it is created by;
    // no session of the run is left on either server.
    expect(await targetDatabaseExists(migrated)).toBe(false);
    for (const pg of [source(), target()]) {
      const { rows } = await withClient(pg, 'postgres', (c) =>
        c.query<{ name: string }>(
          `SELECT datname AS name FROM pg_database
            WHERE datname LIKE 'pgferry\\_schema\\_test\\_%' OR datname LIKE 'pgferry\\_creating\\_%'
           UNION ALL SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'pgferry %'`,
        ),
      );
      expect(rows).toEqual([]);
    }
    const list = await runCli(['list', '--store', store, '--json']);
    expect(list.code).toBe(0);
    expect(
      (JSON.parse(list.stdout) as { database: string }[]).filter((b) => b.database === database),
    ).toEqual([]);
  }

  function migrateOnline(database: string, migrated: string, extra: string[] = [], options: RunOptions = {}) {
    return runMigrate(
      sourceUrl(source(), database),
      sourceUrl(target(), migrated),
      store,
      ['--online', '--no-schema-test', ...extra],
      options,
    );
  }

  test('the cutover waits until the target has applied the write made just before the freeze', async () => {
    const database = uniqueName('online14_wait');
    const migrated = uniqueName('online14_wait_dst');
    await createSeededDatabase(source(), database, SEED);
    const running = migrateOnline(database, migrated, ['--json']);
    let releasedAt = 0;
    let frozenBeforeApplied: number | undefined;
    try {
      // The last write before the freeze: the target holds its row, so it is not applied yet
      // when the catch-up (within 8 MiB and 2 s) freezes the source.
      const held = await holdTheApply(database, migrated, 2, 0);
      try {
        await waitFor('the source to be frozen', () =>
          holds(
            source(),
            'postgres',
            `SELECT bool_or('default_transaction_read_only=on' = ANY (s.setconfig)) AS ok
             FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1`,
            [database],
          ),
        );
        const onTarget = await withClient(target(), migrated, (c) =>
          c.query<{ v: number }>('SELECT v FROM marks WHERE id = 2'),
        );
        frozenBeforeApplied = onTarget.rows[0].v;
        await sleep(500);
      } finally {
        releasedAt = Date.now();
        await held.release();
      }
    } finally {
      await running.catch(() => undefined);
    }
    const result = await running;
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    expect(frozenBeforeApplied).toBe(0); // frozen with the write not yet applied
    const online = (JSON.parse(result.stdout) as MigrateReport).databases[0].online;
    if (!online) throw new Error('no online cutover in the report');
    // The target confirmed the source's position only after the row was let go.
    expect(Date.parse(online.frozenAt) + online.steps.applied * 1000).toBeGreaterThanOrEqual(releasedAt);
    const marks = await withClient(target(), migrated, (c) =>
      c.query<{ v: number }>('SELECT v FROM marks WHERE id = 2'),
    );
    expect(marks.rows[0].v).toBe(2);
    expect(await leftovers(database, migrated)).toEqual([]);
  }, 300_000);

  test('a write the target holds past the cutover’s 60 s wait: fails in one line naming the sentinel; the source unfrozen, nothing left or listed', async () => {
    const database = uniqueName('online14_held');
    const migrated = uniqueName('online14_held_dst');
    await createSeededDatabase(source(), database, SEED);
    const running = migrateOnline(database, migrated);
    // Held until the migration has given up: its sentinel, written after the freeze, queues
    // behind the held write on the target and never arrives.
    const held = await holdTheApply(database, migrated, 2, 0);
    let result: Awaited<typeof running>;
    try {
      result = await running;
    } finally {
      await held.release();
    }
    expect(result.code).toBe(1);
    expect(result.stderr.split('\n').filter((l) => l.startsWith('pgferry:'))).toEqual([
      expect.stringMatching(
        /^pgferry: the target did not apply the source's last changes within 60s of the freeze: the row written to "pgferry_\w+"\.sentinel after the freeze is not on the target .*publication and replication slot were dropped.*was dropped/,
      ),
    ]);
    expect(await leftovers(database, migrated)).toEqual([]);
    expect(await targetDatabaseExists(migrated)).toBe(false);
    const list = await runCli(['list', '--store', store, '--json']);
    expect(
      (JSON.parse(list.stdout) as { database: string }[]).filter((b) => b.database === database),
    ).toEqual([]);
    // Unfrozen: a new session writes.
    await withClient(source(), database, (c) => c.query(`INSERT INTO events (payload) VALUES ('after')`));
  }, 300_000);

  test('Ctrl-C during the catch-up: slot, publication, subscription and target gone, source writable, exit 130', async () => {
    const database = uniqueName('online14_int');
    const migrated = uniqueName('online14_int_dst');
    await createSeededDatabase(source(), database, SEED);
    let pid = 0;
    let stderr = '';
    const running = migrateOnline(database, migrated, ['--verbose'], {
      processGroup: true,
      onSpawn: (p) => {
        pid = p;
      },
      onStderr: (text) => {
        stderr += text;
      },
    });
    const held = await holdTheApply(database, migrated, 1, 150_000);
    try {
      await waitFor('the catch-up', () => (stderr.includes('"phase":"catchUp ') ? true : undefined));
      // Still catching up: the target is held more than 8 MiB behind.
      expect(await slotLagBytes(database)).toBeGreaterThan(CUTOVER_LAG_BYTES);
      expect(stderr).not.toContain('"phase":"cutover ');
      expect(await sentinelOnBothSides(database, migrated)).toBe(true);
      process.kill(-pid, 'SIGINT');
    } finally {
      await held.release();
    }
    const result = await running;
    expect(result.code).toBe(130);
    expect(result.stderr.split('\n').filter((l) => l.startsWith('pgferry:'))).toEqual([
      expect.stringMatching(
        /^pgferry: migrate interrupted by SIGINT.*publication and replication slot were dropped.*was dropped/,
      ),
    ]);
    expect(await leftovers(database, migrated)).toEqual([]);
    expect(await targetDatabaseExists(migrated)).toBe(false);
    await withClient(source(), database, (c) => c.query(`INSERT INTO events (payload) VALUES ('after')`));
  }, 300_000);

  test('the runner killed (SIGKILL) during the catch-up: the cleanup step drops slot, publication and subscription, resets the replica identity it set and drops the target the run created; nothing listed', async () => {
    const database = uniqueName('online14_kill');
    const migrated = uniqueName('online14_kill_dst');
    await createSeededDatabase(
      source(),
      database,
      `${SEED}\nCREATE TABLE keyless (v text); INSERT INTO keyless VALUES ('a');`,
    );
    let cli = 0;
    let stderr = '';
    const running = migrateOnline(database, migrated, ['--replica-identity-full', '--verbose'], {
      env: { PGFERRY_WORK_DIR: killedRunsWorkDir },
      onSpawn: (p) => {
        cli = p;
      },
      onStderr: (text) => {
        stderr += text;
      },
    });
    const held = await holdTheApply(database, migrated, 1, 150_000);
    try {
      await waitFor('the catch-up', () => (stderr.includes('"phase":"catchUp ') ? true : undefined));
      expect(await slotLagBytes(database)).toBeGreaterThan(CUTOVER_LAG_BYTES);
      expect(await sentinelOnBothSides(database, migrated)).toBe(true);
      expect(await replicaIdentity(database, 'keyless')).toBe('f');
      // As when a Fargate task is stopped hard: the runner gets no chance to drop anything.
      process.kill(await runnerOf(cli), 'SIGKILL');
    } finally {
      await held.release();
    }
    const result = await running;
    expect(result.code).toBe(1);
    const lines = result.stderr.split('\n').filter((l) => l.startsWith('pgferry:'));
    expect(lines).toEqual([expect.stringMatching(/^pgferry: the pg-tools task stopped \(SIGKILL\)/)]);
    expect(lines[0]).not.toMatch(/MAY BE LEFT/);
    // The workflow's cleanup step, not the runner, dropped them, the sentinel on both sides too.
    await expectCleanedUp(database, migrated, 'keyless');
    await withClient(source(), database, (c) => c.query(`INSERT INTO events (payload) VALUES ('after')`));
  }, 300_000);

  test('the runner killed (SIGKILL) during the copy, before any subscription: the cleanup step drops slot and publication, resets the replica identity and drops the target the run created: no target, no scratch database, no session of the run; nothing listed', async () => {
    const database = uniqueName('online14_kill_copy');
    const migrated = uniqueName('online14_kill_copy_dst');
    // A key-less table large enough that its COPY is seen running (--replica-identity-full).
    await createSeededDatabase(
      source(),
      database,
      `${SEED}\nCREATE TABLE bulk (id bigint, v text);
       INSERT INTO bulk SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 400000) g;`,
    );
    let cli = 0;
    const running = migrateOnline(database, migrated, ['--replica-identity-full'], {
      env: { PGFERRY_WORK_DIR: killedRunsWorkDir },
      onSpawn: (p) => {
        cli = p;
      },
    });
    // The observed point: pg_dump's COPY of `bulk` running on the source, in the slot's snapshot.
    await withClient(source(), 'postgres', (c) =>
      waitFor("pg_dump's COPY of bulk", async () =>
        (
          await c.query(
            `SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE 'COPY public.bulk %'`,
            [database],
          )
        ).rowCount
          ? true
          : undefined,
      ),
    );
    expect(await replicaIdentity(database, 'bulk')).toBe('f');
    process.kill(await runnerOf(cli), 'SIGKILL');
    const result = await running;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^pgferry: the pg-tools task stopped \(SIGKILL\)/m);
    await expectCleanedUp(database, migrated, 'bulk');
    await withClient(source(), database, (c) => c.query(`UPDATE bulk SET v = 'after' WHERE id = 1`));
  }, 300_000);

  test("the runner killed (SIGKILL) while its CREATE DATABASE waits: the cleanup step ends the run's sessions, so no target is created behind it, unmarked", async () => {
    const database = uniqueName('online14_kill_create');
    const migrated = uniqueName('online14_kill_create_dst');
    await createSeededDatabase(source(), database, SEED);
    // CREATE DATABASE … TEMPLATE template0 locks template0 (share): a COMMENT on it, in a
    // transaction held open, holds the target's creation back, as a slow server's would take.
    const held = await hold(target(), 'postgres', 'COMMENT ON DATABASE template0 IS NULL');
    // The run creates its target under a name of its own (`creatingName`), the only CREATE
    // DATABASE on this file's own target server.
    const creating = 'CREATE DATABASE "pgferry_creating_%';
    let cli = 0;
    let result: Awaited<ReturnType<typeof migrateOnline>>;
    try {
      const running = migrateOnline(database, migrated, [], {
        env: { PGFERRY_WORK_DIR: killedRunsWorkDir },
        onSpawn: (p) => {
          cli = p;
        },
      });
      await waitForTargetStatement("the target's CREATE DATABASE, waiting", creating, true);
      process.kill(await runnerOf(cli), 'SIGKILL');
      result = await running;
    } finally {
      await held.release();
    }
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^pgferry: the pg-tools task stopped \(SIGKILL\)/m);
    // Its backend, left running, would create the database as soon as template0 is free (then
    // find its client gone): ended by the cleanup, it is gone before.
    await waitForTargetStatement('no CREATE DATABASE of the run', creating, false);
    expect(await targetDatabaseExists(migrated)).toBe(false);
    await expectCleanedUp(database, migrated, 'events');
  }, 300_000);

  test('the runner killed (SIGKILL) between its CREATE DATABASE and the mark: the cleanup step drops the database it was creating, unmarked as it is', async () => {
    const database = uniqueName('online14_kill_mark');
    const migrated = uniqueName('online14_kill_mark_dst');
    await createSeededDatabase(source(), database, SEED);
    // The mark is a comment: pg_shdescription, locked against writes in a transaction held open,
    // holds the run between its CREATE DATABASE (done) and its COMMENT (waiting).
    const held = await hold(target(), 'postgres', 'LOCK TABLE pg_catalog.pg_shdescription IN SHARE MODE');
    const marking = 'COMMENT ON DATABASE %';
    let cli = 0;
    let result: Awaited<ReturnType<typeof migrateOnline>>;
    try {
      const running = migrateOnline(database, migrated, [], {
        env: { PGFERRY_WORK_DIR: killedRunsWorkDir },
        onSpawn: (p) => {
          cli = p;
        },
      });
      await waitForTargetStatement("the target's mark, waiting", marking, true);
      process.kill(await runnerOf(cli), 'SIGKILL');
      // The cleanup step ends the run's sessions, its COMMENT among them (rolled back), before it
      // looks for the databases the run left; then its DROP DATABASE may write pg_shdescription.
      await waitForTargetStatement('no COMMENT of the run', marking, false);
      await held.release();
      result = await running;
    } finally {
      await held.release();
    }
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^pgferry: the pg-tools task stopped \(SIGKILL\)/m);
    expect(result.stderr).toMatch(/the database pgferry_creating_\w+ it left incomplete was dropped/);
    await expectCleanedUp(database, migrated, 'events');
  }, 300_000);

  test("with log_statement = 'all' on the target, the source's password is nowhere in the target's server log", async () => {
    const database = uniqueName('online14_log');
    const migrated = uniqueName('online14_log_dst');
    await createSeededDatabase(source(), database, SEED);
    const setLogStatement = (value: string | undefined) =>
      withClient(target(), 'postgres', async (c) => {
        await c.query(
          value ? `ALTER SYSTEM SET log_statement = '${value}'` : 'ALTER SYSTEM RESET log_statement',
        );
        await c.query('SELECT pg_reload_conf()');
      });
    const logStatement = () =>
      withClient(target(), 'postgres', (c) =>
        c.query<{ v: string }>("SELECT current_setting('log_statement') AS v"),
      ).then((r) => r.rows[0].v);
    await setLogStatement('all');
    try {
      await waitFor("the target's new sessions to log every statement", async () =>
        (await logStatement()) === 'all' ? true : undefined,
      );
      const logStart = statSync(target().logFile).size;
      const result = await migrateOnline(database, migrated);
      if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
      const log = readFileSync(target().logFile).subarray(logStart).toString('utf8');
      // The migration's statements were logged: the setting was in force.
      expect(log).toMatch(/statement: CREATE DATABASE/);
      expect(log).toMatch(/statement: DROP SUBSCRIPTION/);
      const password = source().password;
      for (const form of [password, encodeURIComponent(password)]) {
        expect(log.includes(form) ? `the log holds ${form}` : 'no password').toBe('no password');
      }
    } finally {
      await setLogStatement(undefined);
    }
    expect(await leftovers(database, migrated)).toEqual([]);
  }, 300_000);

  test('no free WAL sender: refused naming max_wal_senders, nothing created', async () => {
    const database = uniqueName('online14_senders');
    const migrated = uniqueName('online14_senders_dst');
    await createSeededDatabase(source(), database, SEED);
    // Another client's replication connection takes the one WAL sender.
    const other = new Client({ ...source().clientConfig(database), replication: 'database' } as never);
    other.on('error', () => undefined);
    await other.connect();
    try {
      const refused = await migrateOnline(database, migrated);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toMatch(
        /no free WAL sender \(1 of max_wal_senders = 1 in use\).*raise max_wal_senders/,
      );
    } finally {
      await other.end().catch(() => undefined);
    }
    expect(await leftovers(database, migrated)).toEqual([]);
    expect(await targetDatabaseExists(migrated)).toBe(false);
  }, 120_000);

  test.each([
    [17, /"?nosub_\w+"? may not create a subscription: GRANT pg_create_subscription TO "?nosub_\w+/],
    [15, /"?nosub_\w+"? may not create a subscription: on PostgreSQL 15 only a superuser may/],
  ])(
    'a PostgreSQL %i target login that may not subscribe is told what to grant',
    async (major, message) => {
      const database = uniqueName(`online14_nosub${major}`);
      const migrated = uniqueName(`online14_nosub${major}_dst`);
      await createSeededDatabase(source(), database, SEED);
      const server = major === 17 ? target() : testEnv().server(15);
      const role = uniqueName('nosub');
      await withClient(server, 'postgres', (c) =>
        c.query(`CREATE ROLE ${role} LOGIN CREATEDB PASSWORD 'nosub pw'`),
      );
      try {
        const refused = await runMigrate(
          sourceUrl(source(), database),
          `postgres://${role}:${encodeURIComponent('nosub pw')}@${server.host}:${server.port}/${migrated}`,
          store,
          ['--online'],
        );
        expect(refused.code).not.toBe(0);
        expect(refused.stderr.trim().split('\n')).toHaveLength(1);
        expect(refused.stderr).toMatch(message);
        expect(await leftovers(database, migrated)).toEqual([]);
      } finally {
        await withClient(server, 'postgres', (c) => c.query(`DROP ROLE ${role}`));
      }
    },
    120_000,
  );
});

describe('as on AWS: passwords from Secrets Manager, none in the workflow', () => {
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-online-secrets-'));
  const arn = (name: string) => `arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/${name}-AbCdEf`;
  let secrets: FakeSecretsManager | undefined;
  const saved = { ...process.env };

  afterAll(async () => {
    process.env = saved;
    await secrets?.stop();
    rmSync(store, { recursive: true, force: true });
  });

  test('an IAM-authenticated source is refused for --online before anything is signed or connected', async () => {
    const { runMigrateWorkflow } = await import('../../cli/local-executor');
    const connection = (pg: TestPostgres, database: string) => ({
      host: pg.host,
      port: pg.port,
      user: pg.user,
      database,
    });
    await expect(
      runMigrateWorkflow({
        source: { ...connection(source(), 'postgres'), iamAuth: true, sslmode: 'require' },
        target: connection(target(), uniqueName('online14_iam_dst')),
        store: `file://${store}`,
        online: true,
      }),
    ).rejects.toThrow(/--online needs a password login to the source.*expires after 15 minutes/);
  });

  test("the task builds the subscription's connection from the source's secret; no password in the execution's input, output or history", async () => {
    const database = uniqueName('online14_secret');
    const migrated = uniqueName('online14_secret_dst');
    await createSeededDatabase(source(), database, SEED);
    secrets = await startFakeSecretsManager({
      [arn('source')]: JSON.stringify({ username: source().user, password: source().password }),
      [arn('target')]: JSON.stringify({ username: target().user, password: target().password }),
    });
    // The in-process steps (preflight, the cleanup) and the task (a child, inheriting AWS_*) read
    // the secrets there; no password is in the environment.
    Object.assign(process.env, secrets.env(), {
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      PGFERRY_PG_BIN_DIRS: [...extraPgBinDirs(), '/usr/lib/postgresql/15/bin'].join(':'),
    });
    for (const name of ['PGPASSWORD', 'PGFERRY_SOURCE_PASSWORD', 'PGFERRY_TARGET_PASSWORD'])
      delete process.env[name];
    const { runMigrateWorkflow } = await import('../../cli/local-executor');
    const input = {
      source: {
        host: source().host,
        port: source().port,
        user: source().user,
        database,
        passwordSecretArn: arn('source'),
      },
      target: {
        host: target().host,
        port: target().port,
        user: target().user,
        database: migrated,
        passwordSecretArn: arn('target'),
      },
      store: `file://${store}`,
      online: true,
      schemaTest: false,
    };
    const events: unknown[] = [];
    const output = await runMigrateWorkflow(input, { onEvent: (e) => events.push(e) });
    // The subscription connected to the source (which takes passwords only): the task built its
    // connection with the password it read from the secret.
    const report = await withClient(target(), migrated, (c) =>
      c.query<{ v: number }>('SELECT count(*)::int AS v FROM events'),
    );
    expect(report.rows[0].v).toBe(20000);
    expect(secrets.requested.filter((id) => id === arn('source')).length).toBeGreaterThanOrEqual(2);
    const entered = events
      .filter((e) => (e as { type?: string }).type === 'StateEntered')
      .map((e) => (e as { state?: { name?: string } }).state?.name);
    expect(entered).toEqual(
      expect.arrayContaining(['MigratePreflight', 'Migrate', 'MigrateRecord', 'MigrateFinish']),
    );
    expect(entered).not.toContain('Freeze');
    for (const [what, text] of [
      ['input', JSON.stringify(input)],
      ['output', JSON.stringify(output)],
      ['history', JSON.stringify(events)],
    ]) {
      for (const password of [source().password, target().password]) {
        expect(`${what}: ${text.includes(password) || text.includes(encodeURIComponent(password))}`).toBe(
          `${what}: false`,
        );
      }
    }
    expect(await leftovers(database, migrated)).toEqual([]);
  }, 300_000);
});
