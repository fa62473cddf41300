/**
 * A streamed create restore analyzes each table once its load has ended, while the later tables
 * still load (core/postgres/admin.ts, `AnalyzeAsLoaded`), and the final step only what is left:
 * the statistics it leaves are those of a database-wide `ANALYZE` — plain tables, a table the
 * post-data gives an expression index, one it gives extended statistics (`CREATE STATISTICS`),
 * a partitioned table, an inheritance parent and child. An early `ANALYZE` that fails fails the
 * restore with its table named, the loading database dropped and no session left. Against a real
 * server and a real backup whose download is held back near its end (the last table's rows), so
 * that a table loaded earlier is seen analyzed while the load still waits.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { restoreBackup } from '../../../../../containers/pg-tools/src/restore-backup';
import { RestoreProgress } from '../../../../../containers/pg-tools/src/run';
import type { BackupManifest } from '../../../../../core/contracts';
import { restoringName } from '../../../../../core/postgres/incomplete-database';
import type { BackupStore } from '../../../../../core/store';
import { LocalStore } from '../../../../../core/store';
import { backupObjectKey, catalogNameOf } from '../../../../../core/store-keys';
import { backupOf, existingDatabases, restoreRequest } from '../../../../support/backed-up-database';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../../support/env';

const pg = testEnv().server(15);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-analyze-early-'));

// Every table under 30,000 rows: ANALYZE samples all of them, so two ANALYZEs of the same rows
// leave the same statistics. z_last's rows are the archive's last (pg_dump orders data by name).
const TABLES = `
  CREATE TABLE a_empty (id int, v text);
  CREATE TABLE a_plain (id int PRIMARY KEY, v text);
  INSERT INTO a_plain SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
  CREATE TABLE b_expr (id int, v text);
  INSERT INTO b_expr SELECT g, upper(md5((g % 700)::text)) FROM generate_series(1, 5000) g;
  CREATE INDEX b_expr_lower ON b_expr (lower(v));
  CREATE TABLE c_stats (a int, b int);
  INSERT INTO c_stats SELECT g % 50, (g % 50) * 3 FROM generate_series(1, 5000) g;
  CREATE STATISTICS c_ab (ndistinct, dependencies, mcv) ON a, b FROM c_stats;
  CREATE TABLE d_part (id int, v text) PARTITION BY RANGE (id);
  CREATE TABLE d_part1 PARTITION OF d_part FOR VALUES FROM (0) TO (2000);
  CREATE TABLE d_part2 PARTITION OF d_part FOR VALUES FROM (2000) TO (4000);
  INSERT INTO d_part SELECT g, (g % 37)::text FROM generate_series(0, 3999) g;
  CREATE TABLE e_parent (id int, v text);
  CREATE TABLE e_child (extra int) INHERITS (e_parent);
  INSERT INTO e_parent SELECT g, (g % 11)::text FROM generate_series(1, 1000) g;
  INSERT INTO e_child SELECT g, (g % 13)::text, g FROM generate_series(1, 3000) g;
  CREATE TABLE z_last (id int, v text);
  INSERT INTO z_last SELECT g, md5(g::text) || md5((g + 1)::text) FROM generate_series(1, 25000) g;`;

/** The restore's request, into `target`: two jobs, every table loaded by both sessions. */
const request = (target: string) => restoreRequest(pg, target, '20261203T230000Z-0a1b2c');

const dumpKey = (manifest: BackupManifest) =>
  backupObjectKey(catalogNameOf(manifest), manifest.id, 'dump.pgdump.zst');

/**
 * A folder store whose dump object's last bytes (the last table's rows) are held back until
 * `until` resolves.
 */
function heldStore(store: string, manifest: BackupManifest, until: () => Promise<void>): BackupStore {
  const local = new LocalStore(store);
  const held: Pick<BackupStore, 'download'> = {
    download: async (key: string) => {
      if (key !== dumpKey(manifest)) return local.download(key);
      const bytes = readFileSync(local.localFile(key));
      const cut = bytes.length - 64;
      // Not an async generator: destroyed while held back, it ends at once, as a socket does.
      const stream = new Readable({ read: () => undefined });
      stream.push(bytes.subarray(0, cut));
      void until().then(() => {
        if (stream.destroyed) return;
        stream.push(bytes.subarray(cut));
        stream.push(null);
      });
      return stream;
    },
  };
  return held as BackupStore;
}

/** Every planner statistic of the database's own relations, as text. */
async function statistics(database: string): Promise<Record<string, unknown[]>> {
  return withClient(pg, database, async (c) => ({
    columns: (
      await c.query(`
        SELECT tablename, attname, inherited, null_frac, avg_width, n_distinct, most_common_vals::text,
               most_common_freqs::text, histogram_bounds::text, correlation
          FROM pg_stats WHERE schemaname = 'public' ORDER BY 1, 2, 3`)
    ).rows,
    extended: (
      await c.query(`
        SELECT statistics_name, n_distinct::text, dependencies::text, most_common_vals::text,
               most_common_freqs::text
          FROM pg_stats_ext WHERE schemaname = 'public' ORDER BY 1`)
    ).rows,
    relations: (
      await c.query(`
        SELECT relname, reltuples, relpages FROM pg_class
          WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'i') ORDER BY 1`)
    ).rows,
  }));
}

/** Polls (up to 20 s) until `table` of `database` has been analyzed; whether it was. */
async function analyzedYet(database: string, table: string): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    const done = await withClient(pg, database, async (c) => {
      const { rows } = await c.query(
        'SELECT 1 FROM pg_stat_user_tables WHERE relid = $1::regclass AND last_analyze IS NOT NULL',
        [table],
      );
      return rows.length > 0;
    }).catch(() => false);
    if (done) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

const databases = (...names: string[]) => existingDatabases(pg, ...names);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("analyzed as loaded, before the post-data: every table's statistics are a database-wide ANALYZE's", async () => {
  const source = uniqueName('early_src');
  const target = uniqueName('early_ok');
  const store = path.join(dir, 'ok');
  await createSeededDatabase(pg, source, TABLES);
  try {
    const manifest = await backupOf(pg, source, store);
    // While z_last's last rows are held back: a_plain, loaded long before, is analyzed.
    let earlier: boolean | undefined;
    const progress = new RestoreProgress();
    await restoreBackup(manifest, request(target), progress, {
      store: heldStore(store, manifest, async () => {
        earlier = await analyzedYet(restoringName(target), 'public.a_plain');
      }),
      env: process.env,
    });
    expect(earlier).toBe(true);
    expect(progress.checks.analyzed).toBe(true);
    expect(progress.timings.analyze).toBeDefined();

    const restored = await statistics(target);
    // The post-data's expression index and extended statistics have theirs; the partitioned table
    // and the inheritance parent their inherited ones.
    const columns = restored.columns as { tablename: string; inherited: boolean }[];
    const tables = [
      ...new Set(columns.map((r) => `${r.tablename}${r.inherited ? ' (inherited)' : ''}`)),
    ].sort();
    expect(tables).toEqual([
      'a_plain',
      'b_expr',
      'b_expr_lower',
      'c_stats',
      'd_part (inherited)',
      'd_part1',
      'd_part2',
      'e_child',
      'e_parent',
      'e_parent (inherited)',
      'z_last',
    ]);
    expect(restored.extended).toEqual([expect.objectContaining({ statistics_name: 'c_ab' })]);
    expect((restored.extended[0] as { dependencies: string | null }).dependencies).not.toBeNull();
    // The same as a database-wide ANALYZE leaves.
    await withClient(pg, target, (c) => c.query('ANALYZE'));
    expect(restored).toEqual(await statistics(target));
  } finally {
    await dropDatabase(pg, target);
    await dropDatabase(pg, source);
  }
}, 180_000);

test('an early ANALYZE that fails fails the restore, naming its table; the loading database is dropped, no session left', async () => {
  const source = uniqueName('early_bad_src');
  const target = uniqueName('early_bad');
  const loading = restoringName(target);
  const store = path.join(dir, 'bad');
  // ANALYZE of a range column measures its ranges' lengths with the type's subtype_diff: this one
  // refuses. Loading the rows never calls it.
  await createSeededDatabase(
    pg,
    source,
    `CREATE FUNCTION picky_diff(a float8, b float8) RETURNS float8 IMMUTABLE LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'picky_diff refuses %', a - b; END $$;
     CREATE TYPE picky_range AS RANGE (subtype = float8, subtype_diff = picky_diff);
     CREATE TABLE a_ranges (id int, r picky_range);
     ALTER TABLE a_ranges SET (autovacuum_enabled = false);
     INSERT INTO a_ranges SELECT g, picky_range(g, g + 1) FROM generate_series(1, 2000) g;
     CREATE TABLE z_last (id int, v text);
     INSERT INTO z_last SELECT g, md5(g::text) || md5((g + 1)::text) FROM generate_series(1, 25000) g;`,
  );
  try {
    const manifest = await backupOf(pg, source, store);
    let settled = false;
    let released = false;
    let failedWhileHeld: boolean | undefined;
    const progress = new RestoreProgress();
    const restoring = restoreBackup(manifest, request(target), progress, {
      // Held until the restore has failed (or 20 s): the early ANALYZE's failure stops the load.
      store: heldStore(store, manifest, async () => {
        for (let i = 0; i < 200 && !settled; i++) await new Promise((resolve) => setTimeout(resolve, 100));
        released = true;
      }),
      env: process.env,
    });
    restoring
      .catch(() => undefined)
      .finally(() => {
        settled = true;
        failedWhileHeld = !released;
      });
    await expect(restoring).rejects.toMatchObject({
      code: 'RestoreFailed',
      message: expect.stringMatching(
        new RegExp(
          `^analyzing "?public"?\\."?a_ranges"? once loaded failed: .*picky_diff refuses.* ` +
            `\\(the database ${loading}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target}\\)$`,
        ),
      ),
    });
    // It failed during the load (the download still held back): the post-data never ran.
    expect(failedWhileHeld).toBe(true);
    expect(progress.timings.postData).toBeUndefined();
    expect(await databases(target, loading)).toEqual([]);
    const sessions = await withClient(pg, 'postgres', (c) =>
      c.query('SELECT 1 FROM pg_stat_activity WHERE datname = ANY($1)', [[target, loading]]),
    );
    expect(sessions.rowCount).toBe(0);
  } finally {
    await dropDatabase(pg, target);
    await dropDatabase(pg, source);
  }
}, 180_000);
