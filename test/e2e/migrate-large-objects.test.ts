/**
 * `pgferry migrate` of a database with thousands of large objects: pg_restore reads the stream for
 * the data section only; the pre-data is restored from the definitions file first, its large
 * objects (pg_dump ≤ 16's `BLOB` entries, one each) created by the runner in batches as a restore
 * creates them (core/postgres/large-objects.ts) — the target commits fewer transactions than there
 * are objects, where pg_restore alone commits each object's `lo_create` and owner apart. With
 * pg_dump 17 (`BLOB METADATA` entries of 1,000 objects, in the data section) pg_restore creates
 * them from the stream. Either way every object arrives as it was: contents, owner (two roles),
 * a comment and a grant. A row the target rejects fails such a migration (pg_restore's data run,
 * pg_dump still streaming) with the server's message, and drops the target.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runCli, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { createRoles, dropRoles } from '../support/fidelity';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();
const OBJECTS = 2500;

/** Every large object: its oid, owner, privileges, comment and contents' MD5, and the table's rows. */
function largeObjects(pg: ReturnType<typeof env.server>, name: string) {
  return withClient(pg, name, async (c) => {
    const { rows } = await c.query(
      `SELECT m.oid::text, m.lomowner::regrole::text AS owner, m.lomacl::text AS acl,
              obj_description(m.oid, 'pg_largeobject') AS comment, md5(lo_get(m.oid)) AS md5,
              (SELECT array_agg(d.id) FROM docs d WHERE d.lo = m.oid) AS ids
       FROM pg_largeobject_metadata m ORDER BY m.oid`,
    );
    return rows;
  });
}

/** The transactions `name` has committed, once every session of the migration has ended. */
function commitsIn(pg: ReturnType<typeof env.server>, name: string) {
  return withClient(pg, 'postgres', async (c) => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await c.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await c.query<{ n: string }>(
      'SELECT xact_commit AS n FROM pg_stat_database WHERE datname = $1',
      [name],
    );
    return Number(rows[0].n);
  });
}

describe.each([
  { from: 14, to: 15 },
  { from: 17, to: 17 },
])('pgferry migrate of large objects, PostgreSQL $from → $to', ({ from, to }) => {
  const source = env.server(from);
  const target = usePrivateServer(to);
  const database = uniqueName(`mig_lobs_${from}`);
  const migrated = uniqueName(`mig_lobs_to_${to}`);
  const roles = [uniqueName('lo_owner'), uniqueName('lo_reader'), uniqueName('lo_writer')];
  const [owner, reader] = roles;
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-lobs-'));

  beforeAll(async () => {
    await createRoles(source, roles);
    await createSeededDatabase(
      source,
      database,
      `CREATE TABLE docs (id int PRIMARY KEY, lo oid);
       INSERT INTO docs SELECT g, lo_from_bytea(0, convert_to(repeat(md5(g::text), 1 + g % 7), 'UTF8'))
         FROM generate_series(1, ${OBJECTS}) g;
       DO $$ DECLARE o oid; BEGIN
         FOR o IN SELECT lo FROM docs WHERE id % 2 = 0 LOOP
           EXECUTE format('ALTER LARGE OBJECT %s OWNER TO ${quoteIdent(owner)}', o);
         END LOOP;
         EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT lo FROM docs WHERE id = 7), 'seventh');
         EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO ${quoteIdent(reader)}', (SELECT lo FROM docs WHERE id = 8));
       END $$;`,
    );
  }, 120_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropRoles(source, roles);
    rmSync(dir, { recursive: true, force: true });
  });

  test('every object arrives with its contents, owner, comment and grant; pg_dump ≤ 16 ones in batches', async () => {
    const result = await runCli([
      'migrate',
      '--source',
      sourceUrl(source, database),
      '--target',
      sourceUrl(target(), migrated),
      '--store',
      dir,
      '--json',
    ]);
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    const commits = await commitsIn(target(), migrated);
    const expected = await largeObjects(source, database);
    expect(expected).toHaveLength(OBJECTS);
    expect(expected.filter((o) => o.owner === owner)).toHaveLength(OBJECTS / 2);
    expect(expected.filter((o) => o.comment === 'seventh')).toHaveLength(1);
    expect(expected.filter((o) => o.acl?.includes(reader))).toHaveLength(1);
    expect(await largeObjects(target(), migrated)).toEqual(expected);
    // pg_dump 15's archive: pg_restore alone commits each object's lo_create and owner apart
    // (5,000 and more); pg_dump 17's groups them itself.
    expect(commits).toBeLessThan(OBJECTS);
  }, 600_000);
});

describe('a migration with large objects whose data the target rejects', () => {
  // A check that holds in the source database only: the pre-data (and its large objects)
  // restores, pg_restore's COPY of the row fails on the target while pg_dump still streams.
  const pg = env.server(15);
  const database = uniqueName('mig_lobs_reject');
  const migrated = uniqueName('mig_lobs_rejected');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-lobs-reject-'));

  beforeAll(async () => {
    await createSeededDatabase(
      pg,
      database,
      `CREATE TABLE docs (id int PRIMARY KEY, lo oid);
       INSERT INTO docs SELECT g, lo_from_bytea(0, convert_to(md5(g::text), 'UTF8')) FROM generate_series(1, 500) g;
       CREATE TABLE rejects (v int CHECK (v < 100 OR current_database() = '${database}'));
       INSERT INTO rejects SELECT generate_series(1, 200);`,
    );
  }, 120_000);

  afterAll(async () => {
    await dropDatabase(pg, database);
    rmSync(dir, { recursive: true, force: true });
  });

  test("fails with the server's message and drops the target", async () => {
    const result = await runCli([
      'migrate',
      '--source',
      sourceUrl(pg, database),
      '--target',
      sourceUrl(pg, migrated),
      '--store',
      dir,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/pg_restore failed: .*violates check constraint "rejects_v_check"/);
    expect(result.stderr).toMatch(new RegExp(`the partially migrated database ${migrated} was dropped`));
    const exists = await withClient(pg, 'postgres', async (c) => {
      const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [migrated]);
      return rows.length > 0;
    });
    expect(exists).toBe(false);
  }, 300_000);
});
