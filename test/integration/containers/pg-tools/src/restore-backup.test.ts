/**
 * The restore runner's overlap (containers/pg-tools/src/restore-backup.ts, restore-stream.ts): a
 * create restore loads into a database of another name (`restoringName`), created and marked
 * incomplete while the backup is still downloaded and verified, its pre-data run and its tables
 * loaded by COPY sessions as the archive streams in; only once every checksum matched and the
 * checks passed is it renamed to the target's name. A checksum that fails — also at the very end, after loading began — drops it, and nothing
 * ever had the target's name. Against a real server and a real backup in a folder store whose
 * download is held back at chosen points (so the tests fail when the database is created, or the
 * load begins, only after the download). A selection that selects nothing, which the preflight
 * refuses when it can read the archive's TOC, is refused by the runner once the archive is here.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { restoreBackup } from '../../../../../containers/pg-tools/src/restore-backup';
import { RestoreProgress } from '../../../../../containers/pg-tools/src/run';
import type { BackupManifest } from '../../../../../core/contracts';
import { readIncompleteMark, restoringName } from '../../../../../core/postgres/incomplete-database';
import type { BackupStore } from '../../../../../core/store';
import { LocalStore } from '../../../../../core/store';
import { backupObjectKey, catalogNameOf } from '../../../../../core/store-keys';
import { backupOf, existingDatabases, restoreRequest } from '../../../../support/backed-up-database';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../../support/env';

const pg = testEnv().server(15);
const source = uniqueName('overlap_src');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-overlap-'));
const store = path.join(dir, 'store');
let manifest: BackupManifest;

beforeAll(async () => {
  await createSeededDatabase(
    pg,
    source,
    'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g;',
  );
  manifest = await backupOf(pg, source, store);
}, 300_000);

afterAll(async () => {
  await dropDatabase(pg, source);
  rmSync(dir, { recursive: true, force: true });
});

/** The restore's request, into `target`: two jobs, every table loaded by both sessions. */
const request = (target: string) => restoreRequest(pg, target, '20261202T170000Z-0a1b2c');

const databases = (...names: string[]) => existingDatabases(pg, ...names);

const dumpKey = () => backupObjectKey(catalogNameOf(manifest), manifest.id, 'dump.pgdump.zst');

test('a corrupt backup: the database created during the download is dropped, with nothing of the backup in it', async () => {
  const target = uniqueName('overlap_bad');
  const loading = restoringName(target);
  const local = new LocalStore(store);
  // What the database held while the download waited for it.
  let seen: { mark: string | undefined; tables: number } | undefined;
  const waitForDatabase = async () => {
    for (let i = 0; i < 200; i++) {
      const exists = await withClient(pg, 'postgres', async (c) => {
        const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [loading]);
        if (!rows.length) return false;
        const mark = await readIncompleteMark(c, loading);
        seen = { mark: mark?.id, tables: -1 };
        return mark !== undefined;
      });
      if (exists) {
        const tables = await withClient(pg, loading, (c) =>
          c.query("SELECT 1 FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"),
        );
        if (seen) seen.tables = tables.rowCount ?? -1;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('the database was not created while the backup downloaded');
  };
  // A folder store whose objects arrive only once the database exists, the dump's with one byte
  // flipped; read as from a remote store (no local file to decompress from).
  const gated: Pick<BackupStore, 'download'> = {
    download: async (key: string) => {
      await waitForDatabase();
      if (key !== dumpKey()) return local.download(key);
      const bytes = readFileSync(local.localFile(key));
      bytes[Math.floor(bytes.length / 2)] ^= 0x01;
      return Readable.from([bytes]);
    },
  };
  const progress = new RestoreProgress();
  const restoring = restoreBackup(manifest, request(target), progress, {
    store: gated as BackupStore,
    env: process.env,
  });
  await expect(restoring).rejects.toMatchObject({
    code: 'BackupCorrupt',
    message: expect.stringMatching(
      new RegExp(
        `(failed its checksum|cannot be read).*nothing of the backup was written to the target ` +
          `\\(the database ${loading}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target}\\)$`,
      ),
    ),
  });
  // It existed during the download: marked incomplete by this run, with no table.
  expect(seen).toEqual({ mark: '20261202T170000Z-0a1b2c', tables: 0 });
  expect(progress.timings.postData).toBeUndefined();
  expect(await databases(target, loading)).toEqual([]);
}, 120_000);

test('a checksum that fails only at the end, after the load began: the loaded database is dropped, the target never existed', async () => {
  const target = uniqueName('overlap_late');
  const loading = restoringName(target);
  const local = new LocalStore(store);
  // The dump object compressed anew: it decompresses to the very archive, but its bytes are not
  // the ones the manifest hashed — found only once the last byte has been hashed.
  const original = local.localFile(dumpKey());
  const other = execFileSync('zstd', ['-d', '-q', '-c', original], { maxBuffer: 1 << 30 });
  const recompressed = execFileSync('zstd', ['-q', '-c', '-6'], { input: other, maxBuffer: 1 << 30 });
  // While the last bytes are held back: what the database holds, and the sessions loading it.
  let seen: { tables: number; copying: number } | undefined;
  const whileLoading = async () => {
    for (let i = 0; i < 400; i++) {
      const state = await withClient(pg, 'postgres', async (c) => {
        const { rows } = await c.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY %'",
          [loading],
        );
        return rows[0].n;
      }).catch(() => 0);
      // Both sessions, each waiting for its half of the table's rows (a loaded machine starts the
      // second a moment after the first: CI once looked in between).
      if (state >= 2) {
        const tables = await withClient(pg, loading, (c) =>
          c.query("SELECT 1 FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"),
        );
        seen = { tables: tables.rowCount ?? -1, copying: state };
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('no table was being loaded in two sessions while the backup downloaded');
  };
  const held: Pick<BackupStore, 'download'> = {
    download: async (key: string) => {
      if (key !== dumpKey()) return local.download(key);
      const cut = recompressed.length - 64;
      return Readable.from(
        (async function* () {
          yield recompressed.subarray(0, cut);
          await whileLoading();
          yield recompressed.subarray(cut);
        })(),
      );
    },
  };
  const progress = new RestoreProgress();
  const restoring = restoreBackup(manifest, request(target), progress, {
    store: held as BackupStore,
    env: process.env,
  });
  await expect(restoring).rejects.toMatchObject({
    code: 'BackupCorrupt',
    message: expect.stringMatching(
      new RegExp(
        `^object dump\\.pgdump\\.zst of backup \\S+ failed its checksum .*nothing of the backup was written to the target ` +
          `\\(the database ${loading}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target}\\)$`,
      ),
    ),
  });
  // The load had begun: the pre-data ran and the table's rows were being copied in two sessions.
  expect(seen).toEqual({ tables: 1, copying: 2 });
  expect(progress.timings.preData).toBeDefined();
  expect(await databases(target, loading)).toEqual([]);
}, 120_000);

test('a sound backup: loaded as it streams in, no decompressed copy written, renamed into place complete, the incomplete mark gone', async () => {
  const target = uniqueName('overlap_ok');
  const progress = new RestoreProgress();
  // The largest file the restore's work folder held, looked at as it runs.
  const work = mkdtempSync(path.join(tmpdir(), 'pgferry-overlap-work-'));
  let largest = 0;
  const looking = setInterval(() => {
    for (const run of readdirSync(work)) {
      for (const f of readdirSync(path.join(work, run), { withFileTypes: true })) {
        if (f.isFile()) largest = Math.max(largest, statSync(path.join(work, run, f.name)).size);
      }
    }
  }, 5);
  await restoreBackup(manifest, request(target), progress, {
    store: new LocalStore(store),
    env: { ...process.env, PGFERRY_WORK_DIR: work },
  }).finally(() => clearInterval(looking));
  try {
    expect(Object.keys(progress.timings)).toEqual(
      expect.arrayContaining(['load', 'preData', 'postData', 'rename']),
    );
    expect(Object.keys(progress.timings)).not.toContain('rowCounts');
    // Only the archive's header and TOC went to disk: not the 2.3 MB of the table's rows.
    expect(largest).toBeGreaterThan(0);
    expect(largest).toBeLessThan(64 * 1024);
    expect(progress.checks.rowCounts).toEqual([
      { schema: 'public', name: 't', rows: 50000, restoredRows: 50000 },
    ]);
    expect(await databases(target, restoringName(target))).toEqual([target]);
    const restored = await withClient(pg, target, async (c) => ({
      sum: (await c.query('SELECT sum(id)::text AS s, count(DISTINCT v)::int AS d FROM t')).rows[0],
      pk: (await c.query("SELECT 1 FROM pg_constraint WHERE conname = 't_pkey'")).rowCount,
      mark: await readIncompleteMark(c, target),
    }));
    expect(restored).toEqual({ sum: { s: '1250025000', d: 50000 }, pk: 1, mark: undefined });
  } finally {
    await dropDatabase(pg, target);
    rmSync(work, { recursive: true, force: true });
  }
}, 120_000);

test('a --table that selects nothing, reaching the runner (its preflight could not read the TOC): refused in one line once downloaded, the database it created dropped', async () => {
  const target = uniqueName('overlap_none');
  const run = restoreBackup(manifest, { ...request(target), tables: ['T'] }, new RestoreProgress(), {
    store: new LocalStore(store),
    env: process.env,
  });
  await expect(run).rejects.toMatchObject({
    code: 'InvalidInput',
    message:
      `--table "T" matches nothing in backup ${manifest.id}: it has no table, view, materialized view, sequence or ` +
      `foreign table of that exact name (as pg_restore's -t: the name alone, case included); close names: "t" (in "public"); ` +
      `nothing was restored (the database ${restoringName(target)}, which the restore loads before renaming it ${target}, ` +
      `was dropped; nothing was written to ${target})`,
  });
  expect(await databases(target, restoringName(target))).toEqual([]);
}, 120_000);

test('interrupted while its largest table loads during the download: the sessions end, the loaded database is dropped, nothing is left', async () => {
  const target = uniqueName('overlap_int');
  const loading = restoringName(target);
  const local = new LocalStore(store);
  const stop = new AbortController();
  let copying = 0;
  // The last bytes are held back until the table is being copied; then the run is interrupted.
  const held: Pick<BackupStore, 'download'> = {
    download: async (key: string) => {
      if (key !== dumpKey()) return local.download(key);
      const bytes = readFileSync(local.localFile(key));
      const cut = bytes.length - 64;
      return Readable.from(
        (async function* () {
          yield bytes.subarray(0, cut);
          for (let i = 0; i < 400 && copying < 2; i++) {
            copying = await withClient(pg, 'postgres', async (c) => {
              const { rows } = await c.query<{ n: number }>(
                "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY %'",
                [loading],
              );
              return rows[0].n;
            });
            if (copying < 2) await new Promise((resolve) => setTimeout(resolve, 50));
          }
          stop.abort(new Error('SIGINT'));
          yield bytes.subarray(cut);
        })(),
      );
    },
  };
  const progress = new RestoreProgress();
  const restoring = restoreBackup(manifest, request(target), progress, {
    store: held as BackupStore,
    env: process.env,
    signal: stop.signal,
  });
  await expect(restoring).rejects.toMatchObject({
    message: `interrupted: SIGINT (the database ${loading}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target})`,
  });
  expect(copying).toBe(2);
  expect(await databases(target, loading)).toEqual([]);
  const sessions = await withClient(pg, 'postgres', (c) =>
    c.query('SELECT 1 FROM pg_stat_activity WHERE datname = ANY($1)', [[target, loading]]),
  );
  expect(sessions.rowCount).toBe(0);
}, 120_000);

test('large objects found where the manifest said none: before falling back to files, their disk is checked, and a restore they cannot fit fails in one line', async () => {
  const withLargeObject = uniqueName('overlap_lo');
  await createSeededDatabase(pg, withLargeObject, "CREATE TABLE t (id int); SELECT lo_from_bytea(0, 'x');");
  const target = uniqueName('overlap_lo_to');
  const loading = restoringName(target);
  const work = mkdtempSync(path.join(tmpdir(), 'pgferry-overlap-lo-'));
  try {
    const backedUp = await backupOf(pg, withLargeObject, store);
    expect(backedUp.objects.find((o) => o.kind === 'dump')?.largeObjects).toBe(true);
    // A manifest that lies (the preflight sized the disk for a streamed restore), of 1 EiB of dump.
    const lying: BackupManifest = {
      ...backedUp,
      uncompressedBytes: 2 ** 60,
      objects: backedUp.objects.map((o) => (o.kind === 'dump' ? { ...o, largeObjects: false } : o)),
    };
    const progress = new RestoreProgress();
    await expect(
      restoreBackup(lying, request(target), progress, {
        store: new LocalStore(store),
        env: { ...process.env, PGFERRY_WORK_DIR: work },
      }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(
        new RegExp(
          `^backup ${backedUp.id} needs \\d+\\.\\d GiB of disk \\(0\\.0 GiB downloaded and 1073741824\\.0 GiB decompressed, with a margin; ` +
            `its archive is restored from files, not streamed \\(\\S+ \\S+ is not COPY data\\)\\): \\d+\\.\\d GiB is free in ${work}: free space, or point ` +
            `PGFERRY_WORK_DIR at a larger disk; nothing was downloaded \\(the database ${loading}, which the restore loads before ` +
            `renaming it ${target}, was dropped; nothing was written to ${target}\\)$`,
        ),
      ),
    });
    expect(progress.timings.download).toBeUndefined();
    expect(await databases(target, loading)).toEqual([]);
    expect(readdirSync(work)).toEqual([]);
  } finally {
    await dropDatabase(pg, withLargeObject);
    rmSync(work, { recursive: true, force: true });
  }
}, 120_000);

test('from files, a whole archive of many small tables is restored in one pg_restore job; a table with more data per build, in every job', async () => {
  const small = uniqueName('overlap_small');
  // 200 tables of 20 rows, each with a key and an index: 400 builds, ~200 bytes of data each.
  await createSeededDatabase(
    pg,
    small,
    `DO $$ BEGIN FOR i IN 1..200 LOOP
       EXECUTE format('CREATE TABLE s%s (id int PRIMARY KEY, v text); CREATE INDEX ON s%s (v);
                       INSERT INTO s%s SELECT g, g::text FROM generate_series(1, 20) g', i, i, i);
     END LOOP; END $$;`,
  );
  try {
    const smallManifest = await backupOf(pg, small, store);
    /** The `--jobs` of the pg_restore runs of a clean restore of `backup` into an empty database. */
    const jobsOf = async (backup: BackupManifest) => {
      const target = uniqueName('overlap_jobs');
      await createSeededDatabase(pg, target, 'SELECT 1');
      const runs: string[][] = [];
      try {
        await restoreBackup(
          backup,
          // The split size left to the restore (32 MiB): no table here is split.
          { ...request(target), mode: 'clean', splitMinBytes: undefined },
          new RestoreProgress(),
          { store: new LocalStore(store), env: process.env, onChild: (child) => runs.push(child.spawnargs) },
        );
        return [
          ...new Set(
            runs
              .filter((args) => path.basename(args[0]) === 'pg_restore')
              .flatMap((args) => args.filter((a) => a.startsWith('--jobs='))),
          ),
        ];
      } finally {
        await dropDatabase(pg, target);
      }
    };
    expect(await jobsOf(smallManifest)).toEqual(['--jobs=1']);
    // `t`: 2.3 MB of rows for its one key.
    expect(await jobsOf(manifest)).toContain('--jobs=2');
  } finally {
    await dropDatabase(pg, small);
  }
}, 180_000);
