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
import { pgTool, runCli, runTool, sourceUrl } from '../support/cli';
import { CHOSEN_LARGE_OBJECT_OID, createComplexDatabase, EMPTY_TABLES } from '../support/complex-database';
import {
  createDatabase,
  dropDatabase,
  quoteIdent,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { fingerprint, largeObjectMetadata, materializedViews, sequenceStates } from '../support/fingerprint';

const env = testEnv();

/**
 * What is left of a plain `pg_dump --schema-only` once the lines that say nothing about the
 * database are removed:
 * - pg_dump's own comment lines (`--`, `-- Name: …; Type: …`, the header naming the server and
 *   pg_dump versions, the footer). Only these: a `--` comment inside a function body is part of the
 *   function and stays;
 * - session settings (`SET statement_timeout = 0;`, `SET default_tablespace = '';`, …) and
 *   `SELECT pg_catalog.set_config('search_path', '', false);`. `SET SESSION AUTHORIZATION` stays:
 *   it says who granted a privilege;
 * - `\restrict <key>` / `\unrestrict <key>` (newer pg_dump releases), whose key is random;
 * - runs of blank lines, which the removals leave behind, collapsed into one.
 */
function normalizeSchemaDump(dump: string): string {
  const pgDumpComment =
    /^--( (Name|Data for Name|TOC entry|Dependencies|Started on|Completed on|PostgreSQL database dump|Dumped (from database|by pg_dump) version)\b.*)?$/;
  const kept = dump
    .split('\n')
    .filter(
      (line) =>
        !pgDumpComment.test(line) &&
        !(line.startsWith('SET ') && !line.startsWith('SET SESSION AUTHORIZATION ')) &&
        !line.startsWith('SELECT pg_catalog.set_config(') &&
        !/^\\(un)?restrict /.test(line),
    );
  const collapsed: string[] = [];
  for (const line of kept) {
    if (line === '' && collapsed.at(-1) === '') continue;
    collapsed.push(line);
  }
  return collapsed.join('\n').trim();
}

/** An identifier as pg_dump writes it: double-quoted when it has to be, bare otherwise. */
const IDENT = '(?:"(?:[^"]|"")*"|[a-z_][a-z0-9_]*)';

/**
 * Known artifact, not a difference: pg_dump lists the roles of `CREATE POLICY … TO a, b` in the
 * order it happens to read them from pg_roles (its query has no ORDER BY), i.e. the order the
 * roles were created on that server — which a restore has no say in: `--with-globals` creates them
 * in pg_dumpall's order (by name). The policy applies to the same set of roles either way, so the
 * list is sorted, on both sides.
 */
function sortPolicyRoles(dump: string): string {
  const toClause = new RegExp(
    `^(CREATE POLICY .*? TO )(${IDENT}(?:, ${IDENT})*)(?=( USING | WITH CHECK |;$))`,
    'gm',
  );
  return dump.replace(toClause, (_, head: string, list: string) => {
    const roles = list.match(new RegExp(IDENT, 'g')) ?? [];
    return head + roles.sort().join(', ');
  });
}

/**
 * Known version artifact, not a difference: from PostgreSQL 16 on, the server's view deparser
 * (pg_get_viewdef, which pg_dump uses) no longer table-qualifies column references in a query whose
 * FROM has a single relation (`SELECT id FROM app.orders`, where 14 and 15 print
 * `SELECT orders.id FROM app.orders`). Applied only to the dump of a source older than 16 compared
 * with a target of 16 or newer, and only to view and materialized view definitions with exactly one
 * FROM naming one relation (no join, no subquery), where the qualifier cannot change the meaning.
 */
function unqualifySingleRelationViews(dump: string): string {
  return dump.replace(
    /^(CREATE (?:MATERIALIZED )?VIEW .* AS\n)([\s\S]*?;)$/gm,
    (whole, head: string, body: string) => {
      const froms = [...body.matchAll(/^\s+FROM (.*)$/gm)];
      if (froms.length !== 1 || /\bJOIN\b/.test(body)) return whole;
      const from = new RegExp(`^(?:${IDENT}\\.)?(${IDENT});?$`).exec(froms[0][1]);
      if (!from) return whole;
      const qualifier = from[1].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return head + body.replace(new RegExp(`(?<=[\\s(,])${qualifier}\\.(?=${IDENT})`, 'g'), '');
    },
  );
}

/**
 * `pg_dump --schema-only` of `database` on `pg`, normalized, by the pg_dump of `dumpMajor` (or the
 * closest newer one). `comparedWith` is the major of the server whose dump this one is compared with.
 */
async function schemaDump(
  pg: TestPostgres,
  database: string,
  dumpMajor: number,
  comparedWith: number,
): Promise<string> {
  const { stdout } = await runTool(pgTool('pg_dump', dumpMajor), ['--schema-only'], pg.env(database));
  let dump = sortPolicyRoles(normalizeSchemaDump(stdout.toString('utf8')));
  if (pg.major < 16 && comparedWith >= 16) dump = unqualifySingleRelationViews(dump);
  return dump;
}

/** Everything value-like in a database: table rows, sequences, large objects, materialized views. */
async function dataState(pg: TestPostgres, database: string) {
  return {
    fingerprint: await fingerprint(pg, database),
    sequences: await sequenceStates(pg, database),
    largeObjects: await largeObjectMetadata(pg, database),
    materializedViews: await materializedViews(pg, database),
  };
}

/** The three roles of the complex database: owner, reader, writer (a member of reader). */
async function createRoles(pg: TestPostgres, [owner, reader, writer]: string[]): Promise<void> {
  await withClient(pg, 'postgres', (c) =>
    c.query(`
      CREATE ROLE ${quoteIdent(owner)} NOLOGIN;
      CREATE ROLE ${quoteIdent(reader)} NOLOGIN CONNECTION LIMIT 3;
      CREATE ROLE ${quoteIdent(writer)} NOLOGIN;
      GRANT ${quoteIdent(reader)} TO ${quoteIdent(writer)};
      ALTER ROLE ${quoteIdent(reader)} SET statement_timeout = '5min';`),
  );
}

/** Drops those of `roles` that exist on `pg` (their databases must be gone already). */
async function dropRoles(pg: TestPostgres, roles: string[]): Promise<void> {
  await withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query<{ rolname: string }>(
      'SELECT rolname FROM pg_roles WHERE rolname = ANY($1)',
      [roles],
    );
    for (const { rolname } of rows) {
      await c.query(`DROP OWNED BY ${quoteIdent(rolname)}; DROP ROLE ${quoteIdent(rolname)}`);
    }
  });
}

/** The roles' attributes and memberships among them, as a server has them. */
async function roleState(pg: TestPostgres, roles: string[]) {
  return withClient(pg, 'postgres', async (c) => {
    const attributes = await c.query(
      `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
              rolconnlimit, rolbypassrls, rolconfig
       FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1`,
      [roles],
    );
    const memberships = await c.query(
      `SELECT r.rolname AS role, m.rolname AS member, am.admin_option
       FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
       WHERE r.rolname = ANY($1) OR m.rolname = ANY($1) ORDER BY 1, 2`,
      [roles],
    );
    return { attributes: attributes.rows, memberships: memberships.rows };
  });
}

const pairs = [
  { from: 15, to: 15, withGlobals: true, roles: 'from the backup (--with-globals)' },
  { from: 14, to: 15, withGlobals: false, roles: 'created on the target beforehand' },
  { from: 15, to: 17, withGlobals: false, roles: 'created on the target beforehand' },
  { from: 14, to: 17, withGlobals: true, roles: 'from the backup (--with-globals)' },
];

describe.each(pairs)('PostgreSQL $from → $to, roles $roles', ({ from, to, withGlobals }) => {
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
    expect(fp.largeObjects).toHaveLength(4);
    expect(largeObjects.map((lo) => lo.oid)).toContain(String(CHOSEN_LARGE_OBJECT_OID));
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
});
