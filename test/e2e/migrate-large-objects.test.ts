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
import { runMigrate, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';
import { createRoles, dropRoles } from '../support/fidelity';
import { commitsIn, largeObjectRows, largeObjectsSeed } from '../support/large-objects';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();
const OBJECTS = 2500;

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
    await createSeededDatabase(source, database, largeObjectsSeed(OBJECTS, owner, reader));
  }, 120_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropRoles(source, roles);
    rmSync(dir, { recursive: true, force: true });
  });

  test('every object arrives with its contents, owner, comment and grant; pg_dump ≤ 16 ones in batches', async () => {
    const result = await runMigrate(sourceUrl(source, database), sourceUrl(target(), migrated), dir, [
      '--json',
    ]);
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    const commits = await commitsIn(target(), migrated);
    const expected = await largeObjectRows(source, database);
    expect(expected).toHaveLength(OBJECTS);
    expect(expected.filter((o) => o.owner === owner)).toHaveLength(OBJECTS / 2);
    expect(expected.filter((o) => o.comment === 'seventh')).toHaveLength(1);
    expect(expected.filter((o) => o.acl?.includes(reader))).toHaveLength(1);
    expect(await largeObjectRows(target(), migrated)).toEqual(expected);
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
    const result = await runMigrate(sourceUrl(pg, database), sourceUrl(pg, migrated), dir);
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
