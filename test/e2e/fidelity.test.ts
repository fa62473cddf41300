/**
 * Fidelity of backup → restore on a deliberately complex database (test/support/complex-database.ts),
 * on the same major and from an older major to a newer one: after `pgferry backup` and
 * `pgferry restore`, `pg_dump --schema-only` of the restored database equals the source's (pg_dump's
 * own comment lines and session SET lines aside), and every table's rows, every sequence's state,
 * every large object and every materialized view are the source's.
 *
 * Roles the dump needs are created on the target beforehand for some pairs, and by
 * `--with-globals` from the backup's globals for the others. One pair backs up with `--jobs 2`:
 * its awkward tables, grown past 1 MiB ({@link GROW_PAST_ONE_MIB}), go to the side archive, and the
 * restore streams both archives at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { zstdDecompressSync } from 'node:zlib';
import type { BackupManifest, RestoreReport, StoredObject } from '../../core/contracts';
import type { ArchiveTocEntry } from '../../core/postgres/archive';
import { readArchiveToc } from '../../core/postgres/archive-toc';
import { databaseSegment } from '../../core/store-keys';
import { runCli, sourceUrl } from '../support/cli';
import { CHOSEN_LARGE_OBJECT_OID, createComplexDatabase, EMPTY_TABLES } from '../support/complex-database';
import { createDatabase, dropDatabase, quoteIdent, testEnv, uniqueName, withClient } from '../support/env';
import { createRoles, dataState, dropRoles, roleState, schemaDump } from '../support/fidelity';
import { readStored } from '../support/store';

const env = testEnv();

// Without large objects (and without --with-globals) the restore streams the archive into its own
// COPY sessions (containers/pg-tools/src/restore-stream.ts); else pg_restore reads it from a file.
// A parallel backup (`--jobs 2`) restores streamed too: its side archive (`table-data`) at once
// with the main one.
const pairs = [
  {
    from: 15,
    to: 15,
    withGlobals: true,
    withLargeObjects: true,
    jobs: 1,
    roles: 'from the backup (--with-globals)',
  },
  {
    from: 14,
    to: 15,
    withGlobals: false,
    withLargeObjects: false,
    jobs: 1,
    roles: 'created on the target beforehand',
  },
  {
    from: 15,
    to: 17,
    withGlobals: false,
    withLargeObjects: true,
    jobs: 1,
    roles: 'created on the target beforehand',
  },
  {
    from: 14,
    to: 17,
    withGlobals: true,
    withLargeObjects: true,
    jobs: 1,
    roles: 'from the backup (--with-globals)',
  },
  {
    from: 15,
    to: 15,
    withGlobals: false,
    withLargeObjects: false,
    jobs: 2,
    roles: "the source's own (the same server)",
  },
];

/**
 * For the `--jobs 2` pair: the complex database's awkward tables grown just past 1 MiB (heap and
 * TOAST; app.blobs is already), so that the backup may move their data to its side archive
 * (core/strategy.ts `MIN_TABLE_BYTES_OF_ITS_OWN_JOB`), beside two tables of their own: one whose rows
 * were all deleted (its size stays, it moves, it holds no rows) and one whose name holds a line
 * break. The tables that reference them (app.orders, app.measurement_notes) and the inheritance
 * parent stay in the main archive, with {@link BALLAST_TABLES} small tables: the plan
 * (`planDumpJobs`) balances the archives' bytes, the main one starting with its small tables', and
 * these outweigh every moved table together, so that all of them go to the side archive.
 */
const BALLAST_TABLES = 15;
const GROW_PAST_ONE_MIB = `
  -- leaves of a range partition and of its list sub-partition (row security enabled on the first)
  INSERT INTO app.measurements
  SELECT 100000 + g, date '2024-01-01' + g % 366, (ARRAY['eu', 'us', 'uk', 'jp'])[1 + g % 4], g * 0.5,
         (ARRAY['sad', 'ok', 'happy']::app.mood[])[1 + g % 3]
  FROM generate_series(1, 19000) g;
  INSERT INTO app.measurements
  SELECT 200000 + g, date '2025-01-01' + g % 365, (ARRAY['eu', 'uk'])[1 + g % 2], NULL, NULL
  FROM generate_series(1, 26000) g;
  -- identity and generated columns, a statement trigger (one more audit row), a unique domain column
  INSERT INTO app.customers (email, name, nickname, mood, address, attrs, tags, score, ratio, born,
                             seen_at, wake_at, span, uid, ip, doc, raw, readings, visits)
  SELECT 'more.' || email, name || ' (more)', nickname, mood, address, attrs, tags, score, ratio,
         born, seen_at, wake_at, span, uid, ip, doc, raw, readings, visits
  FROM app.customers WHERE id < 6100 ORDER BY id;
  REFRESH MATERIALIZED VIEW app.mood_counts;
  -- an inheritance child (its parent app.events stays small)
  INSERT INTO app.click_events
    SELECT g, 'click', jsonb_build_object('n', g), 'https://example.com/ü/' || g || '/' || md5(g::text)
    FROM generate_series(1001, 10000) g;
  -- quoting-hostile names: the table's, its columns', and unicode ones
  INSERT INTO app."x""; DROP TABLE y; --"
    SELECT g, md5(g::text), 'x"; DROP TABLE y; -- ' || g, 'new' || chr(10) || 'line ' || g, '''' || md5(g::text)
    FROM generate_series(6, 8005) g;
  INSERT INTO "Ünïcødé schema"."Ünïcødé täble"
    SELECT g, 'Ünïcødé ' || g || ' ✓ 日本語 🐘', g / 7.0, repeat('🐘', g % 5), 'Mïxed ' || g % 10
    FROM generate_series(501, 11500) g;
  -- row-level security forced on
  INSERT INTO app.documents
    SELECT g, CASE WHEN g % 2 = 0 THEN 'pg_monitor' ELSE 'pg_read_all_data' END, 'Döc ' || g,
           repeat('bödy ' || g, 60), g % 7 = 0
    FROM generate_series(301, 1800) g;
  -- no rows left, its size kept (autovacuum would truncate it)
  CREATE TABLE app.purged (id integer, v text) WITH (autovacuum_enabled = false);
  INSERT INTO app.purged SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 12000) g;
  DELETE FROM app.purged;
  CREATE TABLE app."line${'\n'}break" (id integer, v text);
  INSERT INTO app."line${'\n'}break" SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 12000) g;
  -- the main archive's ballast: about 0.95 MB each
  CREATE SCHEMA ballast;
  DO $$
  BEGIN
    FOR i IN 1..${BALLAST_TABLES} LOOP
      EXECUTE format('CREATE TABLE ballast.t%s AS SELECT g AS id, repeat(md5((g + %s)::text), 2) AS v
                      FROM generate_series(1, 9500) g', i, 100000 * i);
    END LOOP;
  END
  $$;`;

/** The tables GROW_PAST_ONE_MIB grows past 1 MiB or creates so, as [schema, name]: the side archive's. */
const SIDE_ARCHIVE_TABLES = [
  ['Ünïcødé schema', 'Ünïcødé täble'],
  ['app', 'blobs'],
  ['app', 'click_events'],
  ['app', 'customers'],
  ['app', 'documents'],
  ['app', `line${'\n'}break`],
  ['app', 'measurements_2024'],
  ['app', 'measurements_2025_europe'],
  ['app', 'purged'],
  ['app', 'x"; DROP TABLE y; --'],
];

/** The tables GROW_PAST_ONE_MIB creates: one empty, the others with rows. */
const ADDED_EMPTY = ['app.purged'];
const ADDED_WITH_ROWS = 1 + BALLAST_TABLES;

/** [schema, name] in the order the manifest lists tables: by their UTF-8 bytes. */
const byBytes = (a: readonly unknown[], b: readonly unknown[]) =>
  Buffer.compare(Buffer.from(String(a[0])), Buffer.from(String(b[0]))) ||
  Buffer.compare(Buffer.from(String(a[1])), Buffer.from(String(b[1])));

describe.each(pairs)(
  'PostgreSQL $from → $to, roles $roles, large objects: $withLargeObjects, --jobs $jobs',
  ({ from, to, withGlobals, withLargeObjects, jobs }) => {
    const source = env.server(from);
    const target = env.server(to);
    const database = uniqueName(`fidelity_${from}`);
    const restored = uniqueName(`fidelity_${from}_to_${to}`);
    const roles = [uniqueName('fid_owner'), uniqueName('fid_reader'), `Wrïter "Q" ${uniqueName('w')}`];
    const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-fidelity-'));
    let manifest: BackupManifest;
    let report: RestoreReport | undefined;
    // The source's data state, read once (it reads every row).
    let sourceData: ReturnType<typeof dataState> | undefined;
    const sourceState = () => (sourceData ??= dataState(source, database));
    const emptyTables = jobs > 1 ? [...EMPTY_TABLES, ...ADDED_EMPTY] : EMPTY_TABLES;

    beforeAll(async () => {
      await createRoles(source, roles);
      if (!withGlobals && to !== from) await createRoles(target, roles);
      await createDatabase(source, database);
      await createComplexDatabase(source, database, roles);
      if (!withLargeObjects) {
        await withClient(source, database, (c) =>
          c.query('SELECT lo_unlink(oid) FROM pg_largeobject_metadata'),
        );
      }
      if (jobs > 1) await withClient(source, database, (c) => c.query(GROW_PAST_ONE_MIB));

      const backup = await runCli([
        'backup',
        '--source',
        sourceUrl(source, database),
        '--store',
        dir,
        '--json',
        ...(jobs > 1 ? ['--jobs', String(jobs)] : []),
      ]);
      if (backup.code !== 0) throw new Error(`backup failed: ${backup.stderr}`);
      manifest = JSON.parse(backup.stdout) as BackupManifest;

      const args = [
        'restore',
        '--store',
        dir,
        '--backup',
        manifest.id,
        '--target',
        sourceUrl(target, restored),
      ];
      const restore = await runCli([...args, '--json', ...(withGlobals ? ['--with-globals'] : [])]);
      if (restore.code !== 0) throw new Error(`restore failed: ${restore.stderr}`);
      report = JSON.parse(restore.stdout) as RestoreReport;
    }, 600_000);

    afterAll(async () => {
      await dropDatabase(target, restored);
      await dropDatabase(source, database);
      await dropRoles(source, roles);
      // --with-globals may have created more than our roles: every role of the source server.
      await dropRoles(target, [...roles, ...(report?.checks.globals?.created ?? [])]);
      rmSync(dir, { recursive: true, force: true });
    });

    test("pg_dump --schema-only of the restored database equals the source's", async () => {
      const expected = await schemaDump(source, database, to, target.major);
      // Not vacuous: the dump holds the kinds of object the complex database is made of.
      for (const needle of [
        'CREATE POLICY "own documents"',
        'COMMENT ON COLUMN app.customers.nickname',
        'CREATE MATERIALIZED VIEW app.mood_counts',
        'PARTITION BY HASH (k)',
        'CREATE TRIGGER "check reading"',
        'CREATE PROCEDURE app.bump_visits',
        'CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA ext',
        `SET SESSION AUTHORIZATION ${quoteIdent(roles[2])};\nGRANT SELECT ON TABLE app.documents TO ${roles[1]};`,
        'CREATE TABLE app."x""; DROP TABLE y; --"',
        '-- a comment inside a function body is part of its definition',
      ]) {
        expect(expected).toContain(needle);
      }
      expect(await schemaDump(target, restored, to, source.major)).toEqual(expected);
    });

    test("every table's rows, sequence, large object and materialized view equal the source's", async () => {
      expect(await dataState(target, restored)).toEqual(await sourceState());
    });

    test('the archive was streamed into COPY sessions, or (large objects, roles) restored from a file', () => {
      const streamed = !withLargeObjects && !withGlobals;
      expect(report?.timings.load !== undefined).toBe(streamed);
      expect(report?.timings.pgRestore !== undefined).toBe(!streamed);
    });

    test("the manifest's row counts are the source's, table by table", async () => {
      const { tables } = (await sourceState()).fingerprint;
      const expected = tables.map((t) => [t.schema, t.name, t.rows]).sort(byBytes);
      expect(manifest.tables.map((t) => [t.schema, t.name, t.rows])).toEqual(expected);
      expect(report?.checks.rowCounts.filter((t) => t.rows !== t.restoredRows)).toEqual([]);
    });

    test('the data comparison is not vacuous', async () => {
      const { fingerprint: fp, sequences, largeObjects, materializedViews: views } = await sourceState();
      const empty = fp.tables.filter((t) => emptyTables.includes(`${t.schema}.${t.name}`));
      const nonEmpty = fp.tables.filter((t) => !emptyTables.includes(`${t.schema}.${t.name}`));
      expect(empty.map((t) => [t.rows, t.digest])).toEqual(emptyTables.map(() => [0, null]));
      expect(nonEmpty).toHaveLength(18 + (jobs > 1 ? ADDED_WITH_ROWS : 0));
      expect(nonEmpty.filter((t) => t.rows === 0 || !/^[0-9a-f]{32}$/.test(t.digest ?? ''))).toEqual([]);
      expect(sequences).toEqual(
        expect.arrayContaining([
          { schema: 'app', name: 'countdown', last_value: '988', is_called: true },
          { schema: 'app', name: 'huge', last_value: '9000000000', is_called: true },
          { schema: 'app', name: 'cycler', last_value: '2', is_called: true },
          { schema: 'app', name: 'untouched', last_value: '42', is_called: false },
          { schema: 'app', name: 'rewound', last_value: '77', is_called: false },
        ]),
      );
      if (withLargeObjects) {
        expect(fp.largeObjects).toHaveLength(4);
        expect(largeObjects.map((lo) => lo.oid)).toContain(String(CHOSEN_LARGE_OBJECT_OID));
      } else {
        expect(fp.largeObjects).toHaveLength(0);
      }
      expect(views).toEqual([
        {
          schema: 'app',
          name: 'mood_counts',
          populated: true,
          rows: 6,
          digest: expect.stringMatching(/^[0-9a-f]{32}$/),
        },
        { schema: 'app', name: 'unpopulated', populated: false, rows: null, digest: null },
      ]);
      const toasted = await withClient(source, database, (c) =>
        c.query(`SELECT max(octet_length(body)) AS text_bytes, max(octet_length(payload)) AS bytea_bytes,
                      pg_relation_size((SELECT reltoastrelid FROM pg_class WHERE oid = 'app.blobs'::regclass)) AS toast_bytes
               FROM app.blobs`),
      );
      expect(Number(toasted.rows[0].text_bytes)).toBeGreaterThan(1024 * 1024);
      expect(Number(toasted.rows[0].bytea_bytes)).toBeGreaterThan(300 * 1024);
      expect(Number(toasted.rows[0].toast_bytes)).toBeGreaterThan(300 * 1024);
    });

    if (jobs > 1) {
      test("the side archive holds the grown tables' data, the main archive the rest, and both were loaded", async () => {
        const toc = async (object: StoredObject | undefined) => {
          if (!object) throw new Error('no such object');
          const key = `${databaseSegment(manifest.database)}/${manifest.id}/${object.key}`;
          const archive = zstdDecompressSync(await readStored(`file://${dir}`, key));
          return readArchiveToc(Readable.from([archive]));
        };
        const dataOf = (entries: ArchiveTocEntry[]) =>
          entries.filter((e) => e.desc === 'TABLE DATA').map((e) => [e.namespace ?? '', e.tag ?? '']);
        const kinds = manifest.objects.map((o) => o.kind);
        expect(kinds).toEqual(['dump', 'table-data', 'globals']);
        const side = dataOf(await toc(manifest.objects.find((o) => o.kind === 'table-data')));
        expect(side.sort(byBytes)).toEqual([...SIDE_ARCHIVE_TABLES].sort(byBytes));
        const main = dataOf(await toc(manifest.objects.find((o) => o.kind === 'dump')));
        expect(main.length).toBeGreaterThan(10);
        expect(main.filter(([s, n]) => side.some(([s2, n2]) => s === s2 && n === n2))).toEqual([]);
        // Both streamed, each verified (and every table's restored rows are its manifest's: above).
        expect(report?.checks.checksums.map((c) => c.key)).toEqual(
          manifest.objects.filter((o) => o.kind !== 'globals').map((o) => o.key),
        );
      });
    }

    if (withGlobals) {
      test("--with-globals gives the target the source's roles, attributes and memberships", async () => {
        const created = report?.checks.globals?.created ?? [];
        // On the same server our roles exist already: they must be reported as skipped, never recreated.
        // (Roles of other test files that came and went meanwhile may be recreated: they are cleaned up.)
        if (from === to) expect(created.filter((r) => roles.includes(r))).toEqual([]);
        else expect(created).toEqual(expect.arrayContaining(roles));
        expect(await roleState(target, roles)).toEqual(await roleState(source, roles));
      });
    }
  },
);
