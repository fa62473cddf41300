/**
 * The parallel pg_restore of core/postgres/tools.ts loading its largest table in several COPY
 * sessions of its own, read straight from the archive (`split`), against a real server: the
 * restored tables are identical to the source's (every row, values with tabs, newlines,
 * backslashes, NULLs and non-ASCII text, rows of megabytes, in a UTF8 and in a LATIN1 database),
 * their indexes are built, a selection that leaves the table out loads none of it, and a session
 * ended during the load fails the restore with every process and session of it gone.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { pgRestoreParallel, type SplitLoad } from '../../../../core/postgres/tools';
import { pgTool, runTool } from '../../../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const pg = testEnv().server(15);
const database = uniqueName('split_src');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-split-'));
const dump = path.join(dir, 'db.dump');
const pgRestore = { path: pgTool('pg_restore', 15), version: '15', major: 15 };
/** The split's sessions on `db`, each reported to `onSession` once connected. */
const split = (db: string, onSession?: (c: Client) => void): SplitLoad => ({
  minBytes: 0,
  connect: async () => {
    const c = new Client(pg.clientConfig(db));
    await c.connect();
    onSession?.(c);
    return c;
  },
});
const env = { PATH: process.env.PATH, ...pg.env() };

const SCHEMA = `
  CREATE TABLE big (id bigint PRIMARY KEY, kind text, payload jsonb, note text, at timestamptz);
  INSERT INTO big SELECT g, 'kind_' || (g % 7),
    jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 5), 'text', 'line' || chr(10) || 'two'),
    CASE WHEN g % 50 = 0 THEN NULL ELSE 'tab' || chr(9) || 'back\\slash ' || repeat('wörd ', g % 40) END,
    timestamptz '2024-01-01' + g * interval '1 minute'
  FROM generate_series(1, 60000) g;
  -- Rows longer than the loader's 1 MiB reads (4.2 MB of COPY text): each goes to one session in pieces.
  UPDATE big SET note = repeat('long ' || chr(9), 600000) WHERE id IN (7, 30007, 59999);
  CREATE INDEX big_kind ON big (kind, id);
  CREATE TABLE small (id int PRIMARY KEY, big_id bigint REFERENCES big);
  INSERT INTO small SELECT g, g FROM generate_series(1, 100) g;
  CREATE SEQUENCE counter START 42;
`;

/** Every table's rows (in key order) hashed, and the indexes' names: what the copy must match. */
async function contents(db: string) {
  return withClient(pg, db, async (c) => ({
    big: (
      await c.query(`SELECT count(*)::int AS n, md5(string_agg(big::text, '|' ORDER BY id)) AS h FROM big`)
    ).rows[0],
    small: (await c.query(`SELECT md5(string_agg(small::text, '|' ORDER BY id)) AS h FROM small`)).rows[0],
    indexes: (
      await c.query(`SELECT indexrelid::regclass::text AS name FROM pg_index
        WHERE indrelid IN ('big'::regclass, 'small'::regclass) AND indisvalid ORDER BY 1`)
    ).rows.map((r) => r.name),
    foreignKeys: (await c.query(`SELECT 1 FROM pg_constraint WHERE contype = 'f'`)).rowCount,
    counter: (await c.query(`SELECT nextval('counter')::int AS v`)).rows[0].v,
  }));
}

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, (c) => c.query(SCHEMA));
  // As pgferry stores its archives: custom format, uncompressed (the store compresses).
  const conn = ['-h', pg.host, '-p', String(pg.port), '-U', pg.user, '-d', database];
  await runTool(pgTool('pg_dump', 15), ['-Fc', '-Z0', '-f', dump, ...conn], { PGPASSWORD: pg.password });
}, 300_000);

afterAll(async () => {
  await dropDatabase(pg, database);
  await dropDatabase(pg, latin1);
  rmSync(dir, { recursive: true, force: true });
});

test('the largest table, loaded in two sessions, is identical to the source', async () => {
  const target = uniqueName('split_ok');
  await createDatabase(pg, target);
  try {
    const sessions: Client[] = [];
    await pgRestoreParallel(pgRestore, {
      args: ['--exit-on-error', '--no-password', `--dbname=dbname=${target}`],
      jobs: 2,
      dumpFile: dump,
      env,
      split: split(target, (c) => sessions.push(c)),
    });
    // Two COPY sessions of the big table; the small one is pg_restore's.
    expect(sessions).toHaveLength(2);
    expect(await contents(target)).toEqual(await contents(database));
  } finally {
    await dropDatabase(pg, target);
  }
}, 300_000);

test('a scoped restore without the largest table loads nothing of it', async () => {
  const target = uniqueName('split_scoped');
  await createDatabase(pg, target);
  try {
    await withClient(pg, target, (c) => c.query('CREATE TABLE big (id bigint)'));
    await pgRestoreParallel(pgRestore, {
      args: ['--exit-on-error', '--no-password', `--dbname=dbname=${target}`, '--table=small'],
      jobs: 2,
      dumpFile: dump,
      env,
      split: split(target),
    });
    const rows = await withClient(pg, target, async (c) => ({
      big: (await c.query('SELECT count(*)::int AS n FROM big')).rows[0].n,
      small: (await c.query('SELECT count(*)::int AS n FROM small')).rows[0].n,
    }));
    expect(rows).toEqual({ big: 0, small: 100 });
    // A schema the table is not in: nothing of it either.
    const other = uniqueName('split_schema');
    await createDatabase(pg, other);
    try {
      await withClient(pg, other, (c) =>
        c.query('CREATE SCHEMA elsewhere; CREATE TABLE public.big (id bigint)'),
      );
      await pgRestoreParallel(pgRestore, {
        args: ['--exit-on-error', '--no-password', `--dbname=dbname=${other}`, '--schema=elsewhere'],
        jobs: 2,
        dumpFile: dump,
        env,
        split: split(other),
      });
      const big = await withClient(
        pg,
        other,
        async (c) => (await c.query('SELECT count(*)::int AS n FROM public.big')).rows[0].n,
      );
      expect(big).toBe(0);
    } finally {
      await dropDatabase(pg, other);
    }
  } finally {
    await dropDatabase(pg, target);
  }
}, 300_000);

test('a COPY session ended during the split load fails the restore and leaves no process or session', async () => {
  const target = uniqueName('split_killed');
  await createDatabase(pg, target);
  try {
    const children: ChildProcess[] = [];
    let ended = 0;
    const restoring = pgRestoreParallel(pgRestore, {
      args: ['--exit-on-error', '--no-password', `--dbname=dbname=${target}`],
      jobs: 2,
      dumpFile: dump,
      env,
      onChild: (child) => children.push(child),
      // The first session's backend is ended by the server's administrator 50 ms in.
      split: split(target, (c) => {
        if (ended++ > 0) return;
        setTimeout(
          () =>
            void withClient(pg, 'postgres', (admin) =>
              admin.query('SELECT pg_terminate_backend($1)', [
                (c as unknown as { processID: number }).processID,
              ]),
            ),
          50,
        );
      }),
    });
    const failure = await restoring.catch((err: Error & { code?: string }) => err);
    expect(failure).toMatchObject({ code: 'RestoreFailed' });
    // The server's message, or — when this side wrote to the closed socket before reading it — the
    // write's (seen once under a loaded machine's other tests).
    expect((failure as Error).message).toMatch(
      /^loading "public"\."big" in 2 sessions failed: (terminating connection|Error: write EPIPE|Error: write ECONNRESET)/,
    );
    expect((failure as Error).message).not.toContain('\n');
    expect(children.filter((c) => c.exitCode === null && c.signalCode === null)).toEqual([]);
    const sessions = await withClient(pg, 'postgres', async (c) => {
      // A backend whose client was killed ends when it next reads from it.
      for (let i = 0; i < 50; i++) {
        const { rowCount } = await c.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
          [target],
        );
        if (!rowCount) return 0;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return -1;
    });
    expect(sessions).toBe(0);
  } finally {
    await dropDatabase(pg, target);
  }
}, 300_000);

test('pg_restore failing beside the split load stops it: nothing of the split table committed, no session left', async () => {
  const target = uniqueName('split_stopped');
  await createDatabase(pg, target);
  // A pg_restore whose data pass (the other tables' data, beside the split load) fails at once.
  const failing = path.join(dir, 'pg_restore-failing-data-pass');
  writeFileSync(
    failing,
    `#!/bin/sh\ncase "$*" in *.pass1.list*) echo "pg_restore: error: injected failure" >&2; exit 1;; esac\nexec ${pgRestore.path} "$@"\n`,
    { mode: 0o755 },
  );
  try {
    const children: ChildProcess[] = [];
    const failure = await pgRestoreParallel(
      { ...pgRestore, path: failing },
      {
        args: ['--exit-on-error', '--no-password', `--dbname=dbname=${target}`],
        jobs: 2,
        dumpFile: dump,
        env,
        onChild: (child) => children.push(child),
        split: split(target),
      },
    ).catch((err: Error) => err);
    expect((failure as Error).message).toMatch(/injected failure/);
    expect(children.filter((c) => c.exitCode === null && c.signalCode === null)).toEqual([]);
    // Before, the split table went on loading to its end, and committed, after the failure.
    const left = await withClient(pg, target, async (c) => ({
      big: (await c.query('SELECT count(*)::int AS n FROM big')).rows[0].n,
      sessions: (
        await c.query(
          `SELECT 1 FROM pg_stat_activity
           WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
          [target],
        )
      ).rowCount,
    }));
    expect(left).toEqual({ big: 0, sessions: 0 });
  } finally {
    await dropDatabase(pg, target);
  }
}, 300_000);

const latin1 = uniqueName('split_latin1');

test("a LATIN1 database's split table arrives in its encoding, named by its non-ASCII names", async () => {
  const target = uniqueName('split_latin1_to');
  const sessions: Client[] = [];
  const file = path.join(dir, 'latin1.dump');
  await withClient(pg, 'postgres', async (c) => {
    for (const db of [latin1, target]) {
      await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${db} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
    }
  });
  try {
    await withClient(pg, latin1, (c) =>
      c.query(`CREATE SCHEMA "schéma"; CREATE TABLE "schéma"."bïg" (id int PRIMARY KEY, "vâl" text);
        INSERT INTO "schéma"."bïg" SELECT g, 'café ' || g || chr(9) || 'Größe ½ ' || repeat('é', g % 30) FROM generate_series(1, 20000) g;
        CREATE TABLE small (id int); INSERT INTO small VALUES (1)`),
    );
    const conn = ['-h', pg.host, '-p', String(pg.port), '-U', pg.user, '-d', latin1];
    await runTool(pgTool('pg_dump', 15), ['-Fc', '-Z0', '-f', file, ...conn], { PGPASSWORD: pg.password });
    await pgRestoreParallel(pgRestore, {
      args: ['--exit-on-error', '--no-password', `--dbname=dbname=${target}`],
      jobs: 2,
      dumpFile: file,
      env,
      split: split(target, (c) => sessions.push(c)),
    });
    // Loaded by the split's own sessions, which named the table and its column right.
    expect(sessions).toHaveLength(2);
    const hash = (db: string) =>
      withClient(
        pg,
        db,
        async (c) =>
          (
            await c.query(
              `SELECT count(*)::int AS n, md5(string_agg("vâl", '|' ORDER BY id)) AS h FROM "schéma"."bïg"`,
            )
          ).rows[0],
      );
    const restored = await hash(target);
    expect(restored.n).toBe(20000);
    expect(restored).toEqual(await hash(latin1));
  } finally {
    await dropDatabase(pg, target);
  }
}, 300_000);
