/**
 * What a long row costs the runner's memory: a restore and a migration load a table's COPY text
 * through the runner's own sessions (core/postgres/copy-stream.ts), which cut it into pieces of
 * whole lines. A row longer than a piece — a bytea value of tens of MB is twice as much text — was
 * held whole in a batch that grew to hold it, and grew by doubling: one 92 MB value (184 MB of
 * text) took the runner to ~520 MiB, where the same database's backup peaked at 112. Now such a
 * row is sent in pieces of its own, all to one session.
 *
 * Each database is restored and migrated twice, the lower peak kept (when V8 collects varies with
 * the machine's load), and the database with one 24 MB value (48 MB of text) compared with the
 * same bytes in rows of 16 KiB: the one row may add less than half its text to the runner's peak RSS
 * (VmHWM of the pg-tools process, as the bench samples it: scripts/support/measure.ts). Before,
 * it added 108–117 MiB (the batch grown to 64 MiB, then copied into one of 128); now −2 to +1. A
 * memory bound, not a time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runCli, runnerPeakMiB, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';

const env = testEnv();
const pg = env.server(15);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-long-rows-'));
/** Bytes of the long bytea value: 48 MB of COPY text. */
const LONG_BYTES = 24 * 1024 * 1024;
const sources = { short: uniqueName('rows_mem_short'), long: uniqueName('rows_mem_long') };
/** The databases restored and migrated, dropped at the end. */
const made: string[] = [];

/**
 * 4,000 short rows around either one row of a `LONG_BYTES` value or (`long` false) the same bytes
 * in 1,536 rows of 16 KiB: the same COPY text through the same buffers, but for its rows' length.
 */
function seed(long: boolean): string {
  const value = long
    ? `SELECT 1000000, 'long', decode(repeat(md5('x'), ${LONG_BYTES / 16}), 'hex')`
    : `SELECT 1000000 + g, 'part ' || g, decode(repeat(md5(g::text), 1024), 'hex') FROM generate_series(1, ${LONG_BYTES / 16384}) g`;
  return `CREATE TABLE files (id int PRIMARY KEY, name text, data bytea);
    INSERT INTO files SELECT g, 'file ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 2000) g;
    INSERT INTO files ${value};
    INSERT INTO files SELECT g, 'file ' || g, decode(md5(g::text), 'hex') FROM generate_series(2001, 4000) g;`;
}

beforeAll(async () => {
  for (const kind of ['short', 'long'] as const) {
    await createSeededDatabase(pg, sources[kind], seed(kind === 'long'));
    const backup = await runCli(['backup', '--source', sourceUrl(pg, sources[kind]), '--store', dir]);
    if (backup.code !== 0) throw new Error(`backup failed: ${backup.stderr}`);
  }
}, 180_000);

afterAll(async () => {
  for (const name of [...Object.values(sources), ...made]) await dropDatabase(pg, name);
  rmSync(dir, { recursive: true, force: true });
});

/** The runner's peak RSS, in MiB, restoring (or migrating) the database `kind`. */
async function peak(action: 'restore' | 'migrate', kind: 'short' | 'long'): Promise<number> {
  const target = uniqueName(`rows_mem_${kind}_${action === 'restore' ? 'r' : 'm'}`);
  made.push(target);
  const args =
    action === 'restore'
      ? ['restore', '--store', dir, '--name', sources[kind], '--backup', 'latest']
      : ['migrate', '--source', sourceUrl(pg, sources[kind]), '--store', path.join(dir, 'migrations')];
  return runnerPeakMiB([...args, '--target', sourceUrl(pg, target)]);
}

/** The table's rows, hashed in key order. */
async function contents(database: string): Promise<string> {
  return withClient(pg, database, async (c) => {
    const { rows } = await c.query<{ h: string }>(
      `SELECT count(*) || ':' || md5(string_agg(id || name || md5(data), '|' ORDER BY id)) AS h FROM files`,
    );
    return rows[0].h;
  });
}

test.each(['restore', 'migrate'] as const)(
  'a %s of a 24 MB value adds under half its COPY text to the runner RSS, and loads it whole',
  async (action) => {
    const runs: number[] = [];
    for (let i = 0; i < 2; i++) runs.push(await peak(action, 'short'), await peak(action, 'long'));
    const short = Math.min(runs[0], runs[2]);
    const long = Math.min(runs[1], runs[3]);
    const added = long - short;
    const seen = `runs ${runs.map((r) => r.toFixed(0)).join(', ')} MiB: ${short.toFixed(0)} MiB in rows of 16 KiB, ${long.toFixed(0)} MiB in one`;
    if (!(added < LONG_BYTES / 2 ** 20)) throw new Error(`the runner's peak RSS grew too much: ${seen}`);
    expect(added).toBeLessThan(LONG_BYTES / 2 ** 20);
    expect(await contents(made[made.length - 1])).toEqual(await contents(sources.long));
  },
  300_000,
);
