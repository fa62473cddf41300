/**
 * Fidelity of backup → restore on a deliberately complex database (test/support/complex-database.ts),
 * on the same major and from an older major to a newer one: after `pgferry backup` and
 * `pgferry restore`, `pg_dump --schema-only` of the restored database equals the source's (pg_dump's
 * own comment lines and session SET lines aside), and every table's rows, every sequence's state,
 * every large object and every materialized view are the source's.
 *
 * Roles the dump needs are created on the target beforehand for some pairs, and by
 * `--with-globals` from the backup's globals for the others.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { runCli, sourceUrl } from '../support/cli';
import { CHOSEN_LARGE_OBJECT_OID, createComplexDatabase, EMPTY_TABLES } from '../support/complex-database';
import { createDatabase, dropDatabase, quoteIdent, testEnv, uniqueName, withClient } from '../support/env';
import { createRoles, dataState, dropRoles, roleState, schemaDump } from '../support/fidelity';

const env = testEnv();

// Without large objects (and without --with-globals) the restore streams the archive into its own
// COPY sessions (containers/pg-tools/src/restore-stream.ts); else pg_restore reads it from a file.
const pairs = [
  { from: 15, to: 15, withGlobals: true, withLargeObjects: true, roles: 'from the backup (--with-globals)' },
  {
    from: 14,
    to: 15,
    withGlobals: false,
    withLargeObjects: false,
    roles: 'created on the target beforehand',
  },
  { from: 15, to: 17, withGlobals: false, withLargeObjects: true, roles: 'created on the target beforehand' },
  { from: 14, to: 17, withGlobals: true, withLargeObjects: true, roles: 'from the backup (--with-globals)' },
];

describe.each(pairs)(
  'PostgreSQL $from → $to, roles $roles, large objects: $withLargeObjects',
  ({ from, to, withGlobals, withLargeObjects }) => {
    const source = env.server(from);
    const target = env.server(to);
    const database = uniqueName(`fidelity_${from}`);
    const restored = uniqueName(`fidelity_${from}_to_${to}`);
    const roles = [uniqueName('fid_owner'), uniqueName('fid_reader'), `Wrïter "Q" ${uniqueName('w')}`];
    const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-fidelity-'));
    let report: RestoreReport | undefined;

    beforeAll(async () => {
      await createRoles(source, roles);
      if (!withGlobals) await createRoles(target, roles);
      await createDatabase(source, database);
      await createComplexDatabase(source, database, roles);
      if (!withLargeObjects) {
        await withClient(source, database, (c) =>
          c.query('SELECT lo_unlink(oid) FROM pg_largeobject_metadata'),
        );
      }

      const backup = await runCli([
        'backup',
        '--source',
        sourceUrl(source, database),
        '--store',
        dir,
        '--json',
      ]);
      if (backup.code !== 0) throw new Error(`backup failed: ${backup.stderr}`);
      const manifest = JSON.parse(backup.stdout) as BackupManifest;

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
      expect(await dataState(target, restored)).toEqual(await dataState(source, database));
    });

    test('the archive was streamed into COPY sessions, or (large objects, roles) restored from a file', () => {
      const streamed = !withLargeObjects && !withGlobals;
      expect(report?.timings.load !== undefined).toBe(streamed);
      expect(report?.timings.pgRestore !== undefined).toBe(!streamed);
    });

    test('the data comparison is not vacuous', async () => {
      const {
        fingerprint: fp,
        sequences,
        largeObjects,
        materializedViews: views,
      } = await dataState(source, database);
      const empty = fp.tables.filter((t) => EMPTY_TABLES.includes(`${t.schema}.${t.name}`));
      const nonEmpty = fp.tables.filter((t) => !EMPTY_TABLES.includes(`${t.schema}.${t.name}`));
      expect(empty.map((t) => [t.rows, t.digest])).toEqual([[0, null]]);
      expect(nonEmpty).toHaveLength(18);
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
