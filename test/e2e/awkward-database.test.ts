/**
 * A database whose names and data are awkward — quotes, spaces, unicode, mixed case; bytea,
 * TOASTed values, large objects, NULL vs empty string — backed up and then restored with plain
 * pg_restore, and compared value by value with the source.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import type { BackupManifest } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { backupOf } from '../support/backed-up-database';
import { pgTool, runTool } from '../support/cli';
import { createDatabase, dropDatabase, quoteIdent, testEnv, withClient } from '../support/env';
import { readStored } from '../support/store';

const env = testEnv();
const pg = env.server(15);
const database = `Shop "Ünïcødé" ${process.pid}`;
const restored = `restored ${process.pid}`;
const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-awkward-'))}`;

/** A digest of every table's rows in a fixed order, of every large object, and of NULL/'' counts. */
async function fingerprint(db: string): Promise<Record<string, unknown>> {
  return withClient(pg, db, async (c) => {
    const { rows: names } = await c.query<{ schema: string; name: string }>(`
      SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`);
    const tables = [];
    for (const { schema, name } of names) {
      const { rows } = await c.query<{ digest: string }>(
        `SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS digest FROM ${quoteIdent(schema)}.${quoteIdent(name)} t`,
      );
      tables.push({ schema, name, digest: rows[0].digest });
    }
    const largeObjects = await c.query(
      'SELECT oid::text, md5(lo_get(oid)) AS digest FROM pg_largeobject_metadata ORDER BY oid',
    );
    const nulls = await c.query(`
      SELECT count(*) FILTER (WHERE "Note" IS NULL) AS nulls, count(*) FILTER (WHERE "Note" = '') AS empties
      FROM "Mixed Case"."we""ird tåble"`);
    return { tables, largeObjects: largeObjects.rows, nulls: nulls.rows[0] };
  });
}

let manifest: BackupManifest;

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, async (c) => {
    await c.query(`
      CREATE SCHEMA "Mixed Case";
      CREATE TABLE "Mixed Case"."we""ird tåble" (
        "Id" int PRIMARY KEY, "Note" text, "blob" bytea, "Big" text);
      INSERT INTO "Mixed Case"."we""ird tåble"
        SELECT g,
               CASE WHEN g % 3 = 0 THEN NULL WHEN g % 3 = 1 THEN '' ELSE 'note ' || g || ' ✓ 日本語' END,
               decode(md5(g::text) || md5((g * 7)::text), 'hex'),
               CASE WHEN g % 50 = 0 THEN repeat(md5(g::text), 40000) END
        FROM generate_series(1, 2000) g;
      CREATE TABLE public."Spaced Out Table" ("a b" text, "C" numeric);
      INSERT INTO public."Spaced Out Table" VALUES ('x', 1.5), (NULL, NULL), ('', 0);
      SELECT lo_from_bytea(0, convert_to(repeat('large object ', 100000), 'UTF8'));
      SELECT lo_from_bytea(0, '\\x00ff00ff'::bytea);`);
  });
  manifest = await backupOf(pg, database, store);
});

afterAll(async () => {
  await dropDatabase(pg, database);
  await dropDatabase(pg, restored);
});

test('the database name is kept in the manifest and encoded as one safe folder', () => {
  expect(manifest.database).toBe(database);
  expect(databaseSegment(database)).toMatch(/^[A-Za-z0-9_%-]+$/);
});

test('row counts cover the awkwardly named tables', () => {
  expect(manifest.tables).toMatchObject([
    { schema: 'Mixed Case', name: 'we"ird tåble', rows: 2000 },
    { schema: 'public', name: 'Spaced Out Table', rows: 3 },
  ]);
});

test('a plain pg_restore of the stored dump reproduces every value, large objects included', async () => {
  const dump = manifest.objects.find((o) => o.kind === 'dump');
  if (!dump) throw new Error('no dump object');
  const bytes = await readStored(store, `${databaseSegment(database)}/${manifest.id}/${dump.key}`);
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-awkward-dump-')), 'dump.pgdump');
  writeFileSync(file, zstdDecompressSync(bytes));
  await createDatabase(pg, restored);
  await runTool(
    pgTool('pg_restore', 15),
    ['--exit-on-error', '--no-owner', '-d', restored, file],
    pg.env(restored),
  );

  const [source, target] = [await fingerprint(database), await fingerprint(restored)];
  expect(target).toEqual(source);
  expect((source.tables as { digest: string }[]).map((t) => t.digest)).toEqual([
    expect.stringMatching(/^[0-9a-f]{32}$/),
    expect.stringMatching(/^[0-9a-f]{32}$/),
  ]);
  expect((source.largeObjects as unknown[]).length).toBe(2);
  expect(source.nulls).toEqual({ nulls: '666', empties: '667' });
});
