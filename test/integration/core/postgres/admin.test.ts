/**
 * `analyzeInParallel` (core/postgres/admin.ts), what a migration's ANALYZE runs, on a real
 * server: it analyzes what a database-wide `ANALYZE` does — tables, materialized views, partition
 * trees (their inherited statistics too), unlogged tables, odd names — on up to `jobs` sessions at
 * once, and a failing `ANALYZE` fails it with the server's error, every session ended. Small
 * tables share a statement, in `analyzeInParallel` and in `AnalyzeAsLoaded` alike. The system
 * catalogs are analyzed once they grew (a database from template0 has them analyzed already); the
 * shared ones (`pg_authid`, `pg_database`), which grow with the server's roles and databases, not.
 */
import { Client } from 'pg';
import { AnalyzeAsLoaded, analyzeInParallel } from '../../../../core/postgres/admin';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const pg = testEnv().server(15);
const database = uniqueName('analyze');

const SCHEMA = `
  CREATE SCHEMA "odd ""schema""";
  CREATE TABLE "odd ""schema"""."tåble one" (id integer PRIMARY KEY, v text);
  INSERT INTO "odd ""schema"""."tåble one" SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
  CREATE TABLE big (id integer PRIMARY KEY, v text);
  -- Over 8 MiB: an ANALYZE statement of its own (ANALYZE_STATEMENT_BYTES).
  INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 60000) g;
  CREATE UNLOGGED TABLE scratch (id integer);
  INSERT INTO scratch SELECT generate_series(1, 500);
  CREATE TABLE p (id integer, v text) PARTITION BY RANGE (id);
  CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000) PARTITION BY RANGE (id);
  CREATE TABLE p1a PARTITION OF p1 FOR VALUES FROM (0) TO (500);
  CREATE TABLE p1b PARTITION OF p1 FOR VALUES FROM (500) TO (1000);
  CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000);
  INSERT INTO p SELECT g, g::text FROM generate_series(0, 1999) g;
  CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM big WHERE id % 10 = 0;
  CREATE TABLE empty_one (id integer);
  -- Only the tests analyze them.
  DO $$ DECLARE r record; BEGIN
    FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') LOOP
      EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = false)', r.t);
    END LOOP;
  END $$;`;

/** Relations (schema-qualified, user schemas) that have been analyzed, and partitioned ones with inherited statistics. */
async function analyzed(): Promise<string[]> {
  return withClient(pg, database, async (c) => {
    const { rows } = await c.query<{ name: string }>(`
      SELECT format('%s.%s', schemaname, relname) AS name FROM pg_stat_user_tables
        WHERE last_analyze IS NOT NULL
      UNION
      SELECT DISTINCT format('%s.%s (inherited)', schemaname, tablename) FROM pg_stats
        WHERE inherited AND schemaname NOT IN ('pg_catalog', 'information_schema')
      ORDER BY 1`);
    return rows.map((r) => r.name);
  });
}

/** Waits (up to 5 s) until no other session is connected to the database. */
async function expectNoSessions(): Promise<void> {
  let n = -1;
  for (let i = 0; i < 50 && n !== 0; i++) {
    if (i) await new Promise((r) => setTimeout(r, 100));
    n = await withClient(pg, database, async (c) => {
      const { rows } = await c.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
      );
      return Number(rows[0].n);
    });
  }
  expect(n).toBe(0);
}

async function resetStatistics(): Promise<void> {
  await withClient(pg, database, async (c) => {
    await c.query('SELECT pg_stat_reset()');
    await c.query(`DELETE FROM pg_statistic WHERE starelid IN (
      SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))`);
  });
}

/** Sessions made for it, and the most `ANALYZE`s seen running at once (the server's own view). */
function instrumented(): {
  connect: () => Promise<Client>;
  sessions: Client[];
  peak: () => number;
  statements: string[];
} {
  const sessions: Client[] = [];
  const statements: string[] = [];
  let running = 0;
  let peak = 0;
  return {
    sessions,
    statements,
    peak: () => peak,
    connect: async () => {
      const client = new Client(pg.clientConfig(database));
      await client.connect();
      sessions.push(client);
      const query = client.query.bind(client) as (text: string, values?: unknown[]) => Promise<unknown>;
      (client as unknown as { query: typeof query }).query = async (text: string, values?: unknown[]) => {
        if (!text.startsWith('ANALYZE')) return query(text, values);
        statements.push(text);
        running++;
        peak = Math.max(peak, running);
        try {
          // Long enough that the other session's ANALYZE overlaps it when they run at once.
          await query('SELECT pg_sleep(0.05)');
          return await query(text);
        } finally {
          running--;
        }
      };
      return client;
    },
  };
}

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, (c) => c.query(SCHEMA));
});
afterAll(() => dropDatabase(pg, database));

test('it analyzes what a database-wide ANALYZE does, on two sessions at once', async () => {
  await resetStatistics();
  await withClient(pg, database, (c) => c.query('ANALYZE'));
  const byAnalyze = await analyzed();
  expect(byAnalyze).toEqual(
    expect.arrayContaining([
      'odd "schema".tåble one',
      'public.big',
      'public.scratch',
      'public.p1a',
      'public.p2',
      'public.mv',
      'public.empty_one',
      'public.p (inherited)',
      'public.p1 (inherited)',
    ]),
  );

  await resetStatistics();
  expect(await analyzed()).toEqual([]);
  const { connect, sessions, peak } = instrumented();
  await analyzeInParallel(connect, 2);
  expect(await analyzed()).toEqual(byAnalyze);
  expect(sessions.length).toBe(2);
  expect(peak()).toBe(2);
  // Every session it opened was ended.
  await expectNoSessions();
}, 60_000);

test('one job: one session, one ANALYZE at a time', async () => {
  await resetStatistics();
  const { connect, sessions, peak } = instrumented();
  await analyzeInParallel(connect, 1);
  expect(sessions.length).toBe(1);
  expect(peak()).toBe(1);
  expect(await analyzed()).toContain('public.p (inherited)');
}, 60_000);

test("a failing ANALYZE fails it with the server's error, and its sessions end", async () => {
  await withClient(pg, database, async (c) => {
    await c.query(`
      CREATE FUNCTION picky(x integer) RETURNS integer IMMUTABLE LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('pgferry_test.picky', true) = 'on' THEN RAISE EXCEPTION 'picky refuses %', x; END IF;
        RETURN x;
      END $$;
      CREATE TABLE fussy (id integer);
      INSERT INTO fussy SELECT generate_series(1, 100);
      CREATE INDEX fussy_picky ON fussy (picky(id));`);
    await c.query(`ALTER DATABASE ${database} SET pgferry_test.picky = 'on'`);
  });
  try {
    const { connect, sessions } = instrumented();
    await expect(analyzeInParallel(connect, 2)).rejects.toThrow(/picky refuses/);
    await expectNoSessions();
    expect(sessions.length).toBeGreaterThan(0);
  } finally {
    await withClient(pg, database, (c) =>
      c.query(`ALTER DATABASE ${database} RESET pgferry_test.picky; DROP TABLE fussy; DROP FUNCTION picky`),
    );
  }
}, 60_000);

/** 250 tables of a few rows in schema `many`; dropped by `dropMany`. */
async function createMany(): Promise<string[]> {
  await withClient(pg, database, (c) =>
    c.query(`CREATE SCHEMA many;
      DO $$ BEGIN FOR i IN 1..250 LOOP
        EXECUTE format('CREATE TABLE many.t%s (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)', i);
        EXECUTE format('INSERT INTO many.t%s SELECT g, md5(g::text) FROM generate_series(1, 20) g', i);
      END LOOP; END $$;`),
  );
  return Array.from({ length: 250 }, (_, i) => `many.t${i + 1}`);
}
const dropMany = () => withClient(pg, database, (c) => c.query('DROP SCHEMA many CASCADE'));

/** The tables of schema `many` analyzed. */
async function manyAnalyzed(): Promise<number> {
  return withClient(pg, database, async (c) => {
    const { rows } = await c.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_user_tables WHERE schemaname = 'many' AND last_analyze IS NOT NULL`,
    );
    return Number(rows[0].n);
  });
}

test('small tables share an ANALYZE statement: 250 tables of 20 rows, a hundred a statement', async () => {
  const names = await createMany();
  try {
    await resetStatistics();
    const { connect, statements } = instrumented();
    await analyzeInParallel(connect, 2);
    expect(await manyAnalyzed()).toBe(names.length);
    const naming = statements.filter((s) => s.includes('many.'));
    expect(naming.length).toBeLessThanOrEqual(4);
    expect(Math.max(...naming.map((s) => s.split(',').length))).toBe(100);
    // The larger table (big, over 8 MiB) keeps a statement of its own.
    expect(statements).toContain('ANALYZE public.big');
    await expectNoSessions();
  } finally {
    await dropMany();
  }
}, 60_000);

test('AnalyzeAsLoaded analyzes the tables loaded while it waited together, and knows each', async () => {
  const names = await createMany();
  try {
    await resetStatistics();
    const { connect, statements } = instrumented();
    const early = new AnalyzeAsLoaded(connect, { errorCode: 'RestoreFailed' });
    // Loaded before its session is connected: one statement a hundred.
    for (const name of names) early.loaded(name);
    for (let i = 0; i < 100 && (await manyAnalyzed()) < names.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const done = await early.analyzed();
    expect(await manyAnalyzed()).toBe(names.length);
    expect(done.size).toBe(names.length);
    expect(statements.length).toBe(3);
    await expectNoSessions();
  } finally {
    await dropMany();
  }
}, 60_000);

test('the system catalogs are analyzed only once they grew: not for one new table, pg_attribute for 300', async () => {
  // A database as a restore creates it (from template0), its catalogs as initdb analyzed them,
  // on a server with more roles than initdb's: pg_authid, shared, grew pages beyond its relpages.
  const fresh = uniqueName('catalogs');
  const roles = Array.from({ length: 150 }, (_, i) => `${fresh}_role_${i}`);
  await withClient(pg, 'postgres', async (c) => {
    await c.query(`CREATE DATABASE ${fresh} TEMPLATE template0`);
    for (const role of roles) await c.query(`CREATE ROLE ${role} LOGIN PASSWORD 'not-a-secret'`);
  });
  try {
    const statements: string[] = [];
    const connect = async () => {
      const client = new Client(pg.clientConfig(fresh));
      await client.connect();
      const query = client.query.bind(client) as (text: string) => Promise<unknown>;
      (client as unknown as { query: typeof query }).query = (text: string) => {
        if (text.startsWith('ANALYZE')) statements.push(text);
        return query(text);
      };
      return client;
    };
    const catalogs = () => statements.join(', ').match(/pg_catalog\.\w+/g) ?? [];
    await withClient(pg, fresh, (c) => c.query('CREATE TABLE one (id integer PRIMARY KEY, v text)'));
    await analyzeInParallel(connect, 2);
    expect(statements.join(', ')).toContain('public.one');
    expect(catalogs()).toEqual([]);

    statements.length = 0;
    await withClient(pg, fresh, (c) =>
      c.query(`DO $$ BEGIN FOR i IN 1..300 LOOP
        EXECUTE format('CREATE TABLE t%s (id integer PRIMARY KEY, a integer, b text, c date)', i);
      END LOOP; END $$`),
    );
    await analyzeInParallel(connect, 2);
    expect(catalogs()).toEqual(expect.arrayContaining(['pg_catalog.pg_attribute', 'pg_catalog.pg_class']));
    expect(catalogs()).not.toContain('pg_catalog.pg_authid');
  } finally {
    await dropDatabase(pg, fresh);
    await withClient(pg, 'postgres', async (c) => {
      for (const role of roles) await c.query(`DROP ROLE IF EXISTS ${role}`);
    });
  }
}, 60_000);
