/**
 * A create restore of a parallel backup (`backup --jobs 2`: the dump object, and a data-only
 * `table-data` object of the largest table) streams every object at once, each into COPY sessions
 * of its own (containers/pg-tools/src/restore-stream.ts `streamArchives`), as a one-archive backup's
 * restore streams its dump: no object is downloaded to a file first. Against a real server and a
 * real backup in a folder store whose side object's download is held back at chosen points (so
 * the tests fail when nothing loads before every object has downloaded).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { restoreBackup } from '../../../../../containers/pg-tools/src/restore-backup';
import { RestoreProgress } from '../../../../../containers/pg-tools/src/run';
import type { BackupManifest, StoredObject } from '../../../../../core/contracts';
import { restoringName } from '../../../../../core/postgres/incomplete-database';
import type { BackupStore } from '../../../../../core/store';
import { LocalStore } from '../../../../../core/store';
import { backupObjectKey, catalogNameOf } from '../../../../../core/store-keys';
import { backupOf, existingDatabases, restoreRequest } from '../../../../support/backed-up-database';
import { pgTool } from '../../../../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../../support/env';
import { fingerprint, sequenceStates } from '../../../../support/fingerprint';

const pg = testEnv().server(15);
const source = uniqueName('streams_src');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-streams-'));
const store = path.join(dir, 'store');
let manifest: BackupManifest;

// `events` (2.6 MB, the largest) moves to the side archive with its serial and identity columns'
// sequences; `parent` and `small` stay in the main archive. A foreign key and a view span the two.
const SEED = `
  CREATE TABLE parent (id int PRIMARY KEY, v text);
  INSERT INTO parent SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 15000) g;
  CREATE TABLE events (
    id bigserial PRIMARY KEY,
    n int GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 7),
    parent_id int REFERENCES parent,
    v text);
  INSERT INTO events (parent_id, v) SELECT 1 + g % 15000, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g;
  CREATE INDEX events_n ON events (n);
  CREATE TABLE small (id serial PRIMARY KEY);
  INSERT INTO small DEFAULT VALUES; INSERT INTO small DEFAULT VALUES;
  CREATE VIEW event_parents AS SELECT e.id, p.v FROM events e JOIN parent p ON p.id = e.parent_id;`;

beforeAll(async () => {
  await createSeededDatabase(pg, source, SEED);
  manifest = await backupOf(pg, source, store, '--jobs', '2');
}, 300_000);

afterAll(async () => {
  await dropDatabase(pg, source);
  rmSync(dir, { recursive: true, force: true });
});

const request = (target: string) => restoreRequest(pg, target, '20261204T070000Z-0a1b2c');

const side = (): StoredObject => {
  const object = manifest.objects.find((o) => o.kind === 'table-data');
  if (!object) throw new Error('the backup has no table-data object');
  return object;
};
const keyOf = (object: StoredObject) => backupObjectKey(catalogNameOf(manifest), manifest.id, object.key);

const databases = (...names: string[]) => existingDatabases(pg, ...names);

/** The sessions running a COPY into `table` of `database` (none when it cannot be read). */
const copying = (database: string, table: string) =>
  withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY ' || $2 || ' %'",
      [database, table],
    );
    return rows[0].n;
  }).catch(() => 0);

/** Waits (up to 20 s) until `table` of `database` is being copied into; the sessions seen. */
async function whileCopying(database: string, table: string): Promise<number> {
  for (let i = 0; i < 400; i++) {
    const n = await copying(database, table);
    if (n > 0) return n;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return 0;
}

/** A store whose side object arrives but for its last 64 bytes, held until `beforeLast` returns. */
function holdingSide(bytes: Buffer, beforeLast: () => Promise<void>): BackupStore {
  const local = new LocalStore(store);
  const held: Pick<BackupStore, 'download'> = {
    download: async (key: string) => {
      if (key !== keyOf(side())) return local.download(key);
      const cut = bytes.length - 64;
      return Readable.from(
        (async function* () {
          yield bytes.subarray(0, cut);
          await beforeLast();
          yield bytes.subarray(cut);
        })(),
      );
    },
  };
  return held as BackupStore;
}

const schemaOf = (db: string) =>
  withClient(pg, db, async (c) => ({
    indexes: (await c.query("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")).rows,
    constraints: (
      await c.query(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1",
      )
    ).rows,
    views: (await c.query("SELECT viewname FROM pg_views WHERE schemaname = 'public'")).rows,
  }));

test("a --jobs 2 backup streams every archive at once and restores faithfully: rows, the moved table's sequences' values, indexes, constraints", async () => {
  expect(manifest.objects.map((o) => o.kind)).toEqual(['dump', 'table-data', 'globals']);
  // The side archive holds the moved table's data and its sequences' values (SEQUENCE SET), which
  // the streamed restore leaves out: the main archive holds those values too.
  const sideArchive = path.join(dir, 'side.pgdump');
  writeFileSync(
    sideArchive,
    execFileSync('zstd', ['-d', '-q', '-c', new LocalStore(store).localFile(keyOf(side()))], {
      maxBuffer: 1 << 30,
    }),
  );
  const listed = execFileSync(pgTool('pg_restore', 15), ['--list', sideArchive]).toString();
  expect(
    listed
      .split('\n')
      .filter((l) => /^\d+;/.test(l))
      .map((l) => l.replace(/^\d+; \d+ \d+ /, '')),
  ).toEqual([
    expect.stringMatching(/^TABLE DATA public events /),
    expect.stringMatching(/^SEQUENCE SET public events_id_seq /),
    expect.stringMatching(/^SEQUENCE SET public events_n_seq /),
  ]);

  const target = uniqueName('streams_ok');
  const loading = restoringName(target);
  // While the side object's last bytes are held back: the moved table is being loaded, and the
  // main archive's tables are loaded (committed) already.
  let seen: { events: number; parentLoaded: boolean } | undefined;
  const progress = new RestoreProgress();
  const bytes = readFileSync(new LocalStore(store).localFile(keyOf(side())));
  await restoreBackup(manifest, request(target), progress, {
    store: holdingSide(bytes, async () => {
      await whileCopying(loading, 'public.events');
      let parentLoaded = false;
      for (let i = 0; i < 400 && !parentLoaded; i++) {
        const parent = await withClient(pg, loading, (c) =>
          c.query('SELECT count(*)::int AS n FROM parent'),
        ).catch(() => undefined);
        parentLoaded = parent?.rows[0].n === 15000;
        if (!parentLoaded) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      seen = { events: await copying(loading, 'public.events'), parentLoaded };
    }),
    env: process.env,
  });
  try {
    expect(seen).toEqual({ events: expect.any(Number), parentLoaded: true });
    expect(seen?.events).toBeGreaterThan(0);
    expect(Object.keys(progress.timings)).toEqual(expect.arrayContaining(['load', 'preData', 'postData']));
    expect(Object.keys(progress.timings)).not.toContain('download');
    expect(Object.keys(progress.timings)).not.toContain('pgRestore');
    expect(Object.keys(progress.timings)).not.toContain('rowCounts');
    expect(progress.checks.checksums.map((c) => c.key)).toEqual(['dump.pgdump.zst', side().key]);
    expect(progress.checks.rowCounts).toEqual([
      { schema: 'public', name: 'events', rows: 20000, restoredRows: 20000 },
      { schema: 'public', name: 'parent', rows: 15000, restoredRows: 15000 },
      { schema: 'public', name: 'small', rows: 2, restoredRows: 2 },
    ]);
    expect(await databases(target, loading)).toEqual([target]);
    expect(await fingerprint(pg, target)).toEqual(await fingerprint(pg, source));
    expect(await sequenceStates(pg, target)).toEqual(await sequenceStates(pg, source));
    expect(await schemaOf(target)).toEqual(await schemaOf(source));
    // The next values follow the restored ones, as in the source.
    const next = (db: string) =>
      withClient(pg, db, async (c) => {
        await c.query('BEGIN');
        const { rows } = await c.query(
          "INSERT INTO events (parent_id, v) VALUES (1, 'next') RETURNING id::text, n",
        );
        await c.query('ROLLBACK');
        return rows[0];
      });
    expect(await next(target)).toEqual({ id: '20001', n: 100 + 7 * 20000 });
  } finally {
    await dropDatabase(pg, target);
  }
}, 120_000);

test('a side object whose checksum fails only at its end, after its table began loading: the loaded database is dropped, the target never existed', async () => {
  const target = uniqueName('streams_late');
  const loading = restoringName(target);
  // The side object compressed anew: it decompresses to the very archive, but its bytes are not
  // the ones the manifest hashed — found only once its last byte has been hashed.
  const original = new LocalStore(store).localFile(keyOf(side()));
  const archive = execFileSync('zstd', ['-d', '-q', '-c', original], { maxBuffer: 1 << 30 });
  const recompressed = execFileSync('zstd', ['-q', '-c', '-6'], { input: archive, maxBuffer: 1 << 30 });
  let seen = 0;
  const progress = new RestoreProgress();
  const restoring = restoreBackup(manifest, request(target), progress, {
    store: holdingSide(recompressed, async () => {
      seen = await whileCopying(loading, 'public.events');
    }),
    env: process.env,
  });
  await expect(restoring).rejects.toMatchObject({
    code: 'BackupCorrupt',
    message: expect.stringMatching(
      new RegExp(
        `^object table-data-1\\.pgdump\\.zst of backup \\S+ failed its checksum .*nothing of the backup was written to the target ` +
          `\\(the database ${loading}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target}\\)$`,
      ),
    ),
  });
  // The load had begun: the side object's table was being copied while it downloaded.
  expect(seen).toBeGreaterThan(0);
  expect(progress.timings.preData).toBeDefined();
  expect(await databases(target, loading)).toEqual([]);
}, 120_000);

test('interrupted while the side object streams: every stream stops, the loaded database is dropped, no session is left', async () => {
  const target = uniqueName('streams_int');
  const loading = restoringName(target);
  const stop = new AbortController();
  let seen = 0;
  const bytes = readFileSync(new LocalStore(store).localFile(keyOf(side())));
  const progress = new RestoreProgress();
  const restoring = restoreBackup(manifest, request(target), progress, {
    store: holdingSide(bytes, async () => {
      seen = await whileCopying(loading, 'public.events');
      stop.abort(new Error('SIGINT'));
    }),
    env: process.env,
    signal: stop.signal,
  });
  await expect(restoring).rejects.toMatchObject({
    message: `interrupted: SIGINT (the database ${loading}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target})`,
  });
  expect(seen).toBeGreaterThan(0);
  expect(progress.timings.postData).toBeUndefined();
  expect(await databases(target, loading)).toEqual([]);
  const sessions = await withClient(pg, 'postgres', (c) =>
    c.query('SELECT 1 FROM pg_stat_activity WHERE datname = ANY($1)', [[target, loading]]),
  );
  expect(sessions.rowCount).toBe(0);
}, 120_000);

/**
 * Databases in other encodings than UTF8, with non-ASCII schema, table and column names, and two
 * tables whose names differ in one non-ASCII character only (different rows each: a name read
 * wrongly merges or misnames them). A `--jobs 2` backup moves the ASCII-named `ballast` to its side
 * archive, not `near[0]` (as large): pg_dump's patterns could not name it (`readDumpJobTables`).
 */
const NON_UTF8 = [
  { encoding: 'LATIN1', schema: 'schéma', near: ['tá', 'tà'], column: 'cö', text: 'äÿ' },
  // € is 0x80 in WIN1252, Ž 0x8E, ‰ 0x89.
  { encoding: 'WIN1252', schema: 'sch€ma', near: ['t€', 'tŽ'], column: 'c‰', text: '€Ž‰' },
  { encoding: 'EUC_JP', schema: 'スキーマ', near: ['表甲', '表乙'], column: '列名', text: '日本語ｶﾅ' },
  { encoding: 'KOI8R', schema: 'схема', near: ['таблица', 'таблицы'], column: 'столбец', text: 'ёЁщ' },
] as const;

describe.each(NON_UTF8)('a $encoding database whose names are not ASCII', (names) => {
  const db = uniqueName(`streams_${names.encoding.toLowerCase()}`);
  const q = (name: string) => `"${name}"`;
  const [big, small] = names.near.map((t) => `${q(names.schema)}.${q(t)}`);

  beforeAll(async () => {
    await withClient(pg, 'postgres', (c) =>
      c.query(
        `CREATE DATABASE "${db}" TEMPLATE template0 ENCODING '${names.encoding}' LC_COLLATE 'C' LC_CTYPE 'C'`,
      ),
    );
    await withClient(pg, db, (c) =>
      c.query(`CREATE SCHEMA ${q(names.schema)};
               CREATE TABLE ${big} (id int PRIMARY KEY, ${q(names.column)} text);
               CREATE TABLE ${small} (id int PRIMARY KEY, ${q(names.column)} text);
               INSERT INTO ${big} SELECT g, '${names.text}' || repeat(md5(g::text), 4) FROM generate_series(1, 20000) g;
               CREATE TABLE public.ballast AS SELECT g AS id, repeat(md5(g::text), 5) AS v FROM generate_series(1, 20000) g;
               INSERT INTO ${small} SELECT g, '${names.text}' || g FROM generate_series(1, 7) g;`),
    );
  }, 120_000);

  afterAll(() => dropDatabase(pg, db));

  test.each([
    { backup: 'backup', args: [] },
    { backup: 'backup --jobs 2', args: ['--jobs', '2'] },
  ])(
    '$backup: the manifest counts each table under its name; the restore streams and is faithful',
    async ({ args }) => {
      const backup = await backupOf(pg, db, store, ...args);
      const expected = [
        { schema: 'public', name: 'ballast', rows: 20000 },
        { schema: names.schema, name: names.near[0], rows: 20000 },
        { schema: names.schema, name: names.near[1], rows: 7 },
      ].sort(
        (a, b) =>
          Buffer.compare(Buffer.from(a.schema), Buffer.from(b.schema)) ||
          Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)),
      );
      expect(backup.tables.map(({ schema, name, rows }) => ({ schema, name, rows }))).toEqual(expected);
      if (args.length) {
        expect(backup.objects.map((o) => o.kind)).toEqual(['dump', 'table-data', 'globals']);
        const side = backup.objects.find((o) => o.kind === 'table-data') as StoredObject;
        const key = backupObjectKey(catalogNameOf(backup), backup.id, side.key);
        const sideArchive = path.join(dir, `${db}-side.pgdump`);
        writeFileSync(
          sideArchive,
          execFileSync('zstd', ['-d', '-q', '-c', new LocalStore(store).localFile(key)], {
            maxBuffer: 1 << 30,
          }),
        );
        const listed = execFileSync(pgTool('pg_restore', 15), ['--list', sideArchive]).toString();
        expect(listed).toMatch(/TABLE DATA public ballast /);
      }
      const target = uniqueName(`streams_${names.encoding.toLowerCase()}_to`);
      try {
        const progress = new RestoreProgress();
        await restoreBackup(backup, request(target), progress, {
          store: new LocalStore(store),
          env: process.env,
        });
        expect(progress.checks.rowCounts).toEqual(expected.map((t) => ({ ...t, restoredRows: t.rows })));
        // Streamed: loaded as it downloaded, no archive file for pg_restore.
        expect(Object.keys(progress.timings)).toContain('load');
        expect(Object.keys(progress.timings)).not.toContain('pgRestore');
        expect(await fingerprint(pg, target)).toEqual(await fingerprint(pg, db));
      } finally {
        await dropDatabase(pg, target);
      }
    },
    180_000,
  );
});

test("a SQL_ASCII database (bytes without an encoding) restores from its archive's file, faithfully", async () => {
  const ascii = uniqueName('streams_sqlascii');
  const target = uniqueName('streams_sqlascii_to');
  await withClient(pg, 'postgres', (c) =>
    c.query(`CREATE DATABASE "${ascii}" TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'`),
  );
  try {
    await withClient(pg, ascii, (c) =>
      c.query(`CREATE TABLE "täble" (id int, "välue" text);
               INSERT INTO "täble" SELECT g, 'ä' || g FROM generate_series(1, 10) g`),
    );
    const asciiManifest = await backupOf(pg, ascii, store);
    const progress = new RestoreProgress();
    await restoreBackup(asciiManifest, request(target), progress, {
      store: new LocalStore(store),
      env: process.env,
    });
    expect(progress.checks.rowCounts).toEqual([
      { schema: 'public', name: 'täble', rows: 10, restoredRows: 10 },
    ]);
    expect(Object.keys(progress.timings)).toContain('pgRestore');
    expect(await fingerprint(pg, target)).toEqual(await fingerprint(pg, ascii));
  } finally {
    await dropDatabase(pg, target);
    await dropDatabase(pg, ascii);
  }
}, 120_000);
