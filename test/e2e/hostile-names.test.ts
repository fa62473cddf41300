/**
 * Identifiers are always quoted: a database and tables named like SQL injections are backed up
 * and restored intact, and the server's other databases are untouched.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, quoteIdent, testEnv, withClient } from '../support/env';
import { fingerprint } from '../support/fingerprint';

const pg = testEnv().server(15);
const hostile = `x"; DROP DATABASE postgres; -- ${process.pid}`;
const restored = `y'); DROP TABLE t; -- ${process.pid}`;
const table = 'Robert"); DROP TABLE students;--';
const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-hostile-'))}`;

beforeAll(async () => {
  await createSeededDatabase(
    pg,
    hostile,
    `CREATE SCHEMA ${quoteIdent("s'; DROP SCHEMA public CASCADE; --")};
             CREATE TABLE ${quoteIdent("s'; DROP SCHEMA public CASCADE; --")}.${quoteIdent(table)} (${quoteIdent('a"b')} text);
             INSERT INTO ${quoteIdent("s'; DROP SCHEMA public CASCADE; --")}.${quoteIdent(table)} VALUES ('$$; DROP'), (NULL);`,
  );
});
afterAll(async () => {
  await dropDatabase(pg, hostile);
  await dropDatabase(pg, restored);
});

test('a database and tables named like SQL injections back up and restore intact', async () => {
  const backup = await runCli(['backup', '--source', sourceUrl(pg, hostile), '--store', store, '--json']);
  expect(backup.code).toBe(0);
  const manifest = JSON.parse(backup.stdout) as BackupManifest;
  expect(manifest.database).toBe(hostile);
  expect(manifest.tables).toMatchObject([
    { schema: "s'; DROP SCHEMA public CASCADE; --", name: table, rows: 2 },
  ]);

  const restore = await runCli([
    'restore',
    '--store',
    store,
    '--backup',
    manifest.id,
    '--database',
    hostile,
    '--target',
    sourceUrl(pg, restored),
    '--json',
  ]);
  expect(restore.code).toBe(0);
  expect((JSON.parse(restore.stdout) as RestoreReport).checks.rowCounts[0].restoredRows).toBe(2);
  expect(await fingerprint(pg, restored)).toEqual(await fingerprint(pg, hostile));
  const databases = await withClient(pg, 'postgres', (c) =>
    c.query("SELECT 1 FROM pg_database WHERE datname = 'postgres'"),
  );
  expect(databases.rows).toHaveLength(1);
});
