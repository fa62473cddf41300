/**
 * A restore of an archive with many large objects (pg_dump 15: one `BLOB` entry each) by
 * `pgRestoreParallel`: the objects are created in batches of core/postgres/large-objects.ts, not
 * one transaction per statement as pg_restore runs them — the target commits fewer transactions
 * than there are objects — and arrive as they were: contents, owners (two roles), a comment and a
 * grant.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Client } from 'pg';
import { pgRestoreParallel } from '../../../../core/postgres/tools';
import { pgTool, runTool } from '../../../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  testEnv,
  uniqueName,
  withClient,
} from '../../../support/env';

const pg = testEnv().server(15);
const database = uniqueName('lobs_src');
const target = uniqueName('lobs_to');
const owner = uniqueName('lo_owner');
const reader = uniqueName('lo_reader');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-lobs-'));
const dump = path.join(dir, 'db.dump');
const OBJECTS = 2500;
const toolEnv = () => ({
  PATH: process.env.PATH,
  PGHOST: pg.host,
  PGPORT: String(pg.port),
  PGUSER: pg.user,
  PGPASSWORD: pg.password,
});

beforeAll(async () => {
  await withClient(pg, 'postgres', (c) =>
    c.query(`CREATE ROLE ${quoteIdent(owner)}; CREATE ROLE ${quoteIdent(reader)}`),
  );
  await createSeededDatabase(
    pg,
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
  await runTool(
    pgTool('pg_dump', 15),
    ['-Fc', '-Z0', '-f', dump, '-h', pg.host, '-p', String(pg.port), '-U', pg.user, database],
    { PGPASSWORD: pg.password },
  );
}, 120_000);

afterAll(async () => {
  await dropDatabase(pg, database);
  await dropDatabase(pg, target);
  await withClient(pg, 'postgres', (c) =>
    c.query(`DROP ROLE ${quoteIdent(owner)}; DROP ROLE ${quoteIdent(reader)}`),
  );
  rmSync(dir, { recursive: true, force: true });
});

/** Every large object: its oid, owner, privileges, comment and contents' MD5. */
function largeObjects(name: string) {
  return withClient(pg, name, async (c) => {
    const { rows } = await c.query(
      `SELECT m.oid::text, m.lomowner::regrole::text AS owner, m.lomacl::text AS acl,
              obj_description(m.oid, 'pg_largeobject') AS comment, md5(lo_get(m.oid)) AS md5
       FROM pg_largeobject_metadata m ORDER BY m.oid`,
    );
    return rows;
  });
}

test('large objects are created in batches, with their contents, owners, comment and grant', async () => {
  await withClient(pg, 'postgres', (c) => c.query(`CREATE DATABASE ${quoteIdent(target)}`));
  const pgRestore = { path: pgTool('pg_restore', 15), version: '15', major: 15 };
  const { Client: PgClient } = await import('pg');
  await pgRestoreParallel(pgRestore, {
    args: ['--exit-on-error', '--no-password', `--dbname=${target}`],
    jobs: 2,
    dumpFile: dump,
    env: toolEnv(),
    split: {
      connect: async () => {
        const client: Client = new PgClient(pg.clientConfig(target));
        await client.connect();
        return client;
      },
    },
    afterPreData: async () => undefined,
  });
  // Every session of the restore has ended: its transactions are counted.
  const commits = await withClient(pg, 'postgres', async (c) => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { rows } = await c.query<{ n: string }>(
      'SELECT xact_commit AS n FROM pg_stat_database WHERE datname = $1',
      [target],
    );
    return Number(rows[0].n);
  });
  const expected = await largeObjects(database);
  expect(expected).toHaveLength(OBJECTS);
  expect(expected.filter((o) => o.owner === owner)).toHaveLength(OBJECTS / 2);
  expect(expected.filter((o) => o.comment === 'seventh')).toHaveLength(1);
  expect(expected.filter((o) => o.acl?.includes(reader))).toHaveLength(1);
  expect(await largeObjects(target)).toEqual(expected);
  // pg_restore alone commits each object's lo_create and ALTER LARGE OBJECT … OWNER apart.
  expect(commits).toBeLessThan(OBJECTS);
}, 300_000);
