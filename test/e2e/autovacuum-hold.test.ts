/**
 * The autovacuum hold (core/postgres/autovacuum-hold.ts) through the CLI, on a server whose
 * autovacuum looks at every database every second (`autovacuum_naptime = 1`): a restore (create
 * mode, both its paths) and a migration hold autovacuum off the tables they load — seen at a gate
 * once the data is in (a streamed restore's and the migration's pg_restore of `--section=post-data`
 * before it starts; a restore from a file, before its pg_restore of the data): the options set, and
 * autovacuum not running on the loaded tables for several naptimes — and leave
 * every table's and TOAST table's options exactly as the source's, its own `autovacuum_enabled`
 * (true or false) and other options included.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { backupOf } from '../support/backed-up-database';
import { type CliResult, runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, type TestPostgres, withClient } from '../support/env';
import { gatedPgRestore, waitFor } from '../support/faults';
import { usePrivateServer } from '../support/private-server';

const server = usePrivateServer(15, { settings: { autovacuum_naptime: 1 } });
const SOURCE = 'autovac_source';

/** The tables whose own options decide autovacuum: the hold leaves them alone. */
const OWN = ['public.own_on', 'public.own_off'];

const SEED = `
  CREATE TABLE big (id integer PRIMARY KEY, v text);
  INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
  CREATE TABLE small (id integer);
  INSERT INTO small SELECT generate_series(1, 2000);
  CREATE TABLE own_off (id integer, v text) WITH (fillfactor = 70, autovacuum_enabled = false);
  INSERT INTO own_off SELECT g, g::text FROM generate_series(1, 2000) g;
  CREATE TABLE own_on (id integer, v text) WITH (autovacuum_enabled = true);
  INSERT INTO own_on SELECT g, g::text FROM generate_series(1, 2000) g;
  CREATE TABLE toast_own (id integer, v text) WITH (toast.autovacuum_enabled = true, fillfactor = 90);
  INSERT INTO toast_own SELECT g, g::text FROM generate_series(1, 2000) g;
  CREATE TABLE p (id integer, v text) PARTITION BY RANGE (id);
  CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (5000);
  CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (5000) TO (10000) WITH (autovacuum_vacuum_scale_factor = 0.01);
  INSERT INTO p SELECT g, g::text FROM generate_series(0, 9999) g;
  CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM big WHERE id % 2 = 0;`;

let dir: string;
let manifest: BackupManifest;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-autovac-'));
  await createSeededDatabase(server(), SOURCE, SEED);
  manifest = await backupOf(server(), SOURCE, dir);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every table's, materialized view's and partitioned table's options, and its TOAST table's. */
async function options(pg: TestPostgres, database: string): Promise<Record<string, string[] | null>> {
  return withClient(pg, database, async (c) => {
    const { rows } = await c.query<{ name: string; reloptions: string[] | null }>(`
      SELECT format('%I.%I', n.nspname, c.relname) AS name, c.reloptions FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm', 'p')
      UNION ALL
      SELECT format('%I.%I (toast)', n.nspname, c.relname), t.reloptions FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class t ON t.oid = c.reltoastrelid
        WHERE n.nspname = 'public'
      ORDER BY 1`);
    return Object.fromEntries(rows.map((r) => [r.name, r.reloptions]));
  });
}

/**
 * At the gate: the tables (and TOAST tables) whose own options do not decide autovacuum have it
 * held off; once `loaded`, for three seconds (three naptimes) autovacuum neither vacuums nor
 * analyzes any of them, though their rows are there.
 */
async function expectHeld(pg: TestPostgres, database: string, loaded = true): Promise<void> {
  const during = await options(pg, database);
  const source = await options(pg, SOURCE);
  for (const [name, own] of Object.entries(source)) {
    // A partitioned table takes no such option; a table whose own options decide keeps them.
    const kept = name === 'public.p' || (own ?? []).some((o) => o.startsWith('autovacuum_enabled='));
    expect([name, during[name]]).toEqual([name, kept ? own : [...(own ?? []), 'autovacuum_enabled=false']]);
  }
  if (!loaded) return;
  const visited = async () =>
    withClient(pg, database, async (c) => {
      const { rows } = await c.query<{ name: string; mods: string; visits: string }>(`
        SELECT format('%I.%I', schemaname, relname) AS name, n_mod_since_analyze AS mods,
               autovacuum_count + autoanalyze_count AS visits
          FROM pg_stat_user_tables WHERE schemaname = 'public'`);
      return rows.filter((r) => !OWN.includes(r.name));
    });
  // The load's rows are counted: autovacuum would have work.
  expect((await visited()).find((r) => r.name === 'public.big')?.mods).toBe('20000');
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    expect((await visited()).filter((r) => r.visits !== '0')).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The database a create-mode restore is loading. */
async function loadingDatabase(pg: TestPostgres): Promise<string> {
  const loading = await withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'pgferry\\_restoring\\_%'",
    );
    return rows.map((r) => r.datname);
  });
  expect(loading).toHaveLength(1);
  return loading[0];
}

/** Runs the CLI with the gated pg_restore; at the gate, `atGate` (then the gate opens). */
async function gatedRun(
  args: string[],
  gated: 'post-data' | 'data',
  atGate: () => Promise<void>,
): Promise<{ result: CliResult; reached: boolean }> {
  const gate = gatedPgRestore(gated);
  const running = runCli(args, { env: { PGFERRY_PG_BIN_DIRS: gate.binDirs } });
  let reached = false;
  try {
    const done = running.then(() => false);
    reached = await Promise.race([waitFor('the gate', () => (gate.reached() ? true : undefined)), done]);
    if (reached) await atGate();
  } finally {
    gate.open();
  }
  return { result: await running, reached };
}

test('a restore (create mode) holds autovacuum off the tables it loads, and gives them the options of the dump', async () => {
  const pg = server();
  const target = 'autovac_restored';
  const { result, reached } = await gatedRun(
    ['restore', '--store', dir, '--backup', manifest.id, '--target', sourceUrl(pg, target), '--json'],
    // Streamed: its COPYs have ended when the post-data's pg_restore starts.
    'post-data',
    async () => expectHeld(pg, await loadingDatabase(pg)),
  );
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(reached).toBe(true);
  expect(JSON.parse(result.stdout).timings).toEqual(
    expect.objectContaining({ holdAutovacuum: expect.any(Number), releaseAutovacuum: expect.any(Number) }),
  );
  expect(await options(pg, target)).toEqual(await options(pg, SOURCE));
}, 180_000);

test('a restore that waits for the download (--with-globals) holds it too, and gives the options back', async () => {
  const pg = server();
  const target = 'autovac_restored_globals';
  const { result, reached } = await gatedRun(
    [
      'restore',
      '--store',
      dir,
      '--backup',
      manifest.id,
      '--target',
      sourceUrl(pg, target),
      '--with-globals',
      '--json',
    ],
    'data',
    async () => expectHeld(pg, await loadingDatabase(pg), false),
  );
  expect(result.code).toBe(0);
  expect(reached).toBe(true);
  expect(JSON.parse(result.stdout).timings).toEqual(
    expect.objectContaining({ holdAutovacuum: expect.any(Number), releaseAutovacuum: expect.any(Number) }),
  );
  expect(await options(pg, target)).toEqual(await options(pg, SOURCE));
}, 180_000);

test('a migration holds autovacuum off the target while it loads, and gives it the source options', async () => {
  const pg = server();
  const target = 'autovac_migrated';
  const { result, reached } = await gatedRun(
    [
      'migrate',
      '--source',
      sourceUrl(pg, SOURCE),
      '--target',
      sourceUrl(pg, target),
      '--store',
      path.join(dir, 'migrations'),
      '--json',
    ],
    'post-data',
    () => expectHeld(pg, target),
  );
  expect(result.code).toBe(0);
  expect(reached).toBe(true);
  expect(await options(pg, target)).toEqual(await options(pg, SOURCE));
}, 180_000);
