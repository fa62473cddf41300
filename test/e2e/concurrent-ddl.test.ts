/**
 * Backups while other sessions change the tables (issue 19): a table rewritten after the dump's
 * snapshot is never listed with rows missing — in a parallel backup's side archive neither —, DDL
 * in a loop never makes a backup hang, and a lock held elsewhere fails the backup within
 * `--lock-wait-timeout`, naming the table and its holder.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { Client } from 'pg';
import type { BackupManifest } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { type CliResult, pgTool, runCli, runTool, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';
import { heldSidePgDump, waitFor } from '../support/faults';
import { readStored } from '../support/store';

const env = testEnv();
const pg = env.server(15);
const ROWS = 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function createSource(name: string): Promise<void> {
  await createSeededDatabase(
    pg,
    name,
    `CREATE TABLE zzz (id int, n int);
             INSERT INTO zzz SELECT g, g FROM generate_series(1, ${ROWS}) g;
             CREATE TABLE other (v text);
             INSERT INTO other SELECT 'row ' || g FROM generate_series(1, 50) g;`,
  );
}

async function session(database: string, application: string): Promise<Client> {
  const client = new Client({ ...pg.clientConfig(database), application_name: application });
  await client.connect();
  return client;
}

/**
 * `pgferry backup`, stopped after `limitMs` if it has not finished by then: a hang is reported as
 * such (`hung: true`) instead of holding the test until jest's timeout.
 */
async function backup(
  database: string,
  store: string,
  extra: string[] = [],
  limitMs = 45_000,
  extraEnv: Record<string, string> = {},
): Promise<CliResult & { hung: boolean }> {
  let pid: number | undefined;
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    if (pid) process.kill(pid, 'SIGKILL');
  }, limitMs);
  try {
    const result = await runCli(
      ['backup', '--source', sourceUrl(pg, database), '--store', store, '--json', ...extra],
      {
        env: extraEnv,
        onSpawn: (p) => {
          pid = p;
        },
      },
    );
    return { ...result, hung };
  } finally {
    clearTimeout(timer);
  }
}

async function listed(store: string): Promise<BackupManifest[]> {
  const result = await runCli(['list', '--store', store, '--json']);
  if (result.code !== 0) throw new Error(`list failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as BackupManifest[];
}

/**
 * The rows of `table` in a stored backup, counted from what pg_restore writes of its data: from
 * the object that holds them (the dump, or a parallel backup's data-only archive).
 */
async function rowsInStoredDump(store: string, manifest: BackupManifest, table: string): Promise<number> {
  const archives = manifest.objects.filter((o) => o.kind !== 'globals');
  if (!archives.some((o) => o.kind === 'dump')) throw new Error('no dump object');
  const counts: number[] = [];
  for (const archive of archives) {
    const key = `${databaseSegment(manifest.database)}/${manifest.id}/${archive.key}`;
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-ddl-')), 'dump.pgdump');
    writeFileSync(file, zstdDecompressSync(await readStored(store, key)));
    const { stdout } = await runTool(pgTool('pg_restore', manifest.tool.pgDumpMajor), [
      '--data-only',
      `--table=${table}`,
      '--file=-',
      file,
    ]);
    const lines = stdout.toString().split('\n');
    const start = lines.findIndex((l) => l.startsWith(`COPY public.${table} `));
    if (start >= 0) counts.push(lines.indexOf('\\.', start) - start - 1);
  }
  if (counts.length !== 1) throw new Error(`${table}'s data is in ${counts.length} of the backup's archives`);
  return counts[0];
}

/** Runs `statements` in turn, over and over, `pauseMs` apart, until `stop()`. */
function ddlLoop(database: string, statements: string[], pauseMs: number) {
  let running = true;
  let done = 0;
  const loop = (async () => {
    const client = await session(database, 'ddl-loop');
    try {
      for (let i = 0; running; i++) {
        await client.query(statements[i % statements.length]);
        done++;
        await sleep(pauseMs);
      }
    } finally {
      await client.end();
    }
  })();
  return {
    /** Statements run so far. */
    done: () => done,
    stop: async () => {
      running = false;
      await loop;
      return done;
    },
  };
}

describe('a table rewritten while pg_dump waits for its lock', () => {
  const database = uniqueName('ddl_rewrite');
  const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-ddl-rewrite-'))}`;
  beforeAll(() => createSource(database));
  afterAll(() => dropDatabase(pg, database));

  test('is caught, and the backup dumped afresh: listed with every row', async () => {
    // A rewrite that commits after the dump's snapshot and before pg_dump's lock: pg_dump then
    // reads the new storage with the old snapshot, and sees no rows (pg_dump's known caveat).
    const alter = await session(database, 'rewriter');
    await alter.query('BEGIN');
    await alter.query('ALTER TABLE zzz ALTER COLUMN n TYPE bigint');
    const running = backup(database, store);
    const watcher = await session(database, 'watcher');
    try {
      for (let waited = 0; ; waited += 50) {
        const { rows } = await watcher.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
             AND query LIKE 'LOCK TABLE%'`,
        );
        if (rows.length > 0) break;
        if (waited > 60_000) throw new Error('pg_dump never waited for its lock');
        await sleep(50);
      }
      await alter.query('COMMIT');
    } finally {
      await alter.end();
      await watcher.end();
    }
    const result = await running;
    if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
    const manifest = JSON.parse(result.stdout) as BackupManifest;
    expect(manifest.lockWaitTimeoutMs).toBe(5 * 60 * 1000); // the default, recorded
    expect(manifest.tables).toMatchObject([
      { schema: 'public', name: 'other', rows: 50 },
      { schema: 'public', name: 'zzz', rows: ROWS },
    ]);
    expect(await rowsInStoredDump(store, manifest, 'zzz')).toBe(ROWS);
  });
});

describe('DDL in a loop during backups', () => {
  const database = uniqueName('ddl_loop');
  beforeAll(() => createSource(database));
  afterAll(() => dropDatabase(pg, database));

  // A pause long enough for most dumps to slip between two rewrites (each attempt's window, from
  // the snapshot to pg_dump's lock, is pg_dump's start-up: a few hundred ms), short enough that
  // many attempts meet one; the ADD/DROP loop is tight, as in the hangs it reproduces.
  test.each([
    {
      loop: 'ALTER COLUMN … TYPE (a rewrite)',
      statements: ['ALTER TABLE zzz ALTER COLUMN n TYPE bigint', 'ALTER TABLE zzz ALTER COLUMN n TYPE int'],
      pauseMs: 1500,
      someListed: true,
    },
    {
      loop: 'ADD/DROP COLUMN',
      statements: ['ALTER TABLE zzz ADD COLUMN extra int', 'ALTER TABLE zzz DROP COLUMN extra'],
      pauseMs: 100,
      someListed: false,
    },
  ])(
    '$loop: every backup ends, and every one listed holds every row',
    async ({ statements, pauseMs, someListed }) => {
      const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-ddl-loop-'))}`;
      const loop = ddlLoop(database, statements, pauseMs);
      const results: (CliResult & { hung: boolean })[] = [];
      try {
        // Three backups at least, and more until the loop has run three statements: on a fast
        // machine three backups take less than two of the rewrite loop's pauses.
        while (results.length < 3 || (loop.done() < 3 && results.length < 12))
          results.push(await backup(database, store, ['--lock-wait-timeout', '10s']));
      } finally {
        expect(await loop.stop()).toBeGreaterThan(2);
      }
      expect(results.filter((r) => r.hung)).toEqual([]);
      for (const r of results) {
        // A failure is one line, naming what changed (or the lock that was not granted).
        if (r.code !== 0) expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      }
      const manifests = await listed(store);
      expect(manifests.length).toBe(results.filter((r) => r.code === 0).length);
      // Most dumps miss the rewrites (and a retry gets another chance): a check that failed every
      // backup would be no check.
      if (someListed) expect(manifests.length).toBeGreaterThan(0);
      for (const manifest of manifests) {
        expect(manifest.tables.find((t) => t.name === 'zzz')?.rows).toBe(ROWS);
        expect(await rowsInStoredDump(store, manifest, 'zzz')).toBe(ROWS);
      }
    },
  );
});

describe('a lock held by another session', () => {
  const database = uniqueName('ddl_held');
  const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-ddl-held-'))}`;
  beforeAll(() => createSource(database));
  afterAll(() => dropDatabase(pg, database));

  // With --jobs 2 the backup itself waits first: it reads each table's size (which takes its lock)
  // to plan the side pg_dumps.
  test.each([
    { jobs: 1, waiter: 'pg_dump' },
    { jobs: 2, waiter: 'the backup' },
  ])(
    '--jobs $jobs: fails the backup after --lock-wait-timeout, naming the table and its holder; nothing is listed',
    async ({ jobs, waiter }) => {
      const holder = await session(database, 'holder app');
      let holderPid: number;
      try {
        holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE zzz IN ACCESS EXCLUSIVE MODE');
        const started = Date.now();
        const result = await backup(database, store, ['--lock-wait-timeout', '2s', '--jobs', String(jobs)]);
        const seconds = (Date.now() - started) / 1000;
        expect(result.hung).toBe(false);
        expect(result.code).toBe(1);
        expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(result.stderr).toMatch(
          new RegExp(
            `^pgferry: ${waiter} could not lock public\\.zzz within 2s \\(--lock-wait-timeout\\): ACCESS EXCLUSIVE lock on public\\.zzz held by pid ${holderPid} \\(user postgres, application "holder app", idle in transaction, transaction started \\S+, last query started \\S+\\)`,
          ),
        );
        // A liveness bound, not a timing: it gave up instead of waiting for the holder.
        expect(seconds).toBeLessThan(45);
      } finally {
        await holder.end();
      }
      expect(await listed(store)).toEqual([]);
    },
  );
});

describe("a parallel backup: a side archive's table rewritten once the main pg_dump has ended", () => {
  const database = uniqueName('ddl_side');
  const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-ddl-side-'))}`;
  const BIG_ROWS = 20000;
  // `big` (2.6 MB) goes to the side archive; the main archive holds `zzz` and `other`.
  beforeAll(async () => {
    await createSource(database);
    await withClient(pg, database, (c) =>
      c.query(
        `CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 4) AS v FROM generate_series(1, ${BIG_ROWS}) g`,
      ),
    );
  });
  afterAll(() => dropDatabase(pg, database));

  test('is caught, and the backup dumped afresh: listed with every row, in its side archive', async () => {
    // The main pg_dump locks `big` too (it dumps its definition), but ends first here, its locks
    // gone, before the side pg_dump has imported the snapshot and locked `big`: a rewrite that
    // commits in between leaves the side pg_dump reading new storage with the old snapshot.
    const held = heldSidePgDump();
    const running = backup(database, store, ['--jobs', '2'], 60_000, { PGFERRY_PG_BIN_DIRS: held.binDirs });
    try {
      await waitFor('the main pg_dump to end', () => (held.mainEnded() ? true : undefined), 40_000);
      await withClient(pg, database, (c) => c.query('ALTER TABLE big ALTER COLUMN id TYPE bigint'));
    } finally {
      held.open();
    }
    const result = await running;
    if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
    const manifest = JSON.parse(result.stdout) as BackupManifest;
    expect(manifest.objects.map((o) => o.kind)).toEqual(['dump', 'table-data', 'globals']);
    expect(manifest.tables).toMatchObject([
      { schema: 'public', name: 'big', rows: BIG_ROWS },
      { schema: 'public', name: 'other', rows: 50 },
      { schema: 'public', name: 'zzz', rows: ROWS },
    ]);
    expect(await rowsInStoredDump(store, manifest, 'big')).toBe(BIG_ROWS);
    expect((await listed(store)).map((m) => m.id)).toEqual([manifest.id]);
  });

  test("is caught at the side archive's TOC: its data is not waited for", async () => {
    // The first side pg_dump's data is held until the backup has ended: only its own early look,
    // at its TOC, lets the attempt stop and the backup be dumped afresh.
    const held = heldSidePgDump(true);
    const running = backup(database, store, ['--jobs', '2'], 60_000, { PGFERRY_PG_BIN_DIRS: held.binDirs });
    let result: Awaited<typeof running>;
    try {
      try {
        await waitFor('the main pg_dump to end', () => (held.mainEnded() ? true : undefined), 40_000);
        await withClient(pg, database, (c) => c.query('ALTER TABLE big ALTER COLUMN id TYPE numeric'));
      } finally {
        held.open();
      }
      result = await running;
    } finally {
      held.release();
    }
    if (result.code !== 0) throw new Error(`backup failed${result.hung ? ' (hung)' : ''}: ${result.stderr}`);
    const manifest = JSON.parse(result.stdout) as BackupManifest;
    expect(manifest.tables).toMatchObject([{ schema: 'public', name: 'big', rows: BIG_ROWS }, {}, {}]);
    expect(await rowsInStoredDump(store, manifest, 'big')).toBe(BIG_ROWS);
  });
});
