/**
 * Roles and tablespaces are stored beside the dump; role passwords only when asked for, and a
 * user who may not read them (as on managed services) gets a backup that says so.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { runCli, sourceUrl } from '../support/cli';
import {
  createDatabase,
  dropDatabase,
  quoteIdent,
  quoteLiteral,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { readStored } from '../support/store';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('globals');
const owner = uniqueName('owner');
const ownerPassword = `owner pw ${process.pid}`;

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, 'postgres', async (c) => {
    await c.query(`CREATE ROLE ${quoteIdent(owner)} LOGIN PASSWORD ${quoteLiteral(ownerPassword)}`);
    await c.query(`ALTER DATABASE ${quoteIdent(database)} OWNER TO ${quoteIdent(owner)}`);
  });
  await withClient(pg, database, (c) =>
    c.query(`CREATE TABLE t (id int); ALTER TABLE t OWNER TO ${quoteIdent(owner)}; INSERT INTO t VALUES (1)`),
  );
});

afterAll(async () => {
  await dropDatabase(pg, database);
  await withClient(pg, 'postgres', (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(owner)}`));
});

async function backup(url: string): Promise<{ manifest: BackupManifest; globals: string }> {
  const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-globals-'))}`;
  const result = await runCli([
    'backup',
    '--source',
    url,
    '--store',
    store,
    '--with-role-passwords',
    '--json',
  ]);
  if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
  const manifest = JSON.parse(result.stdout) as BackupManifest;
  const globals = await readStored(store, `${databaseSegment(database)}/${manifest.id}/globals.sql`);
  return { manifest, globals: globals.toString() };
}

test('a superuser backup with --with-role-passwords keeps the password hashes', async () => {
  const { manifest, globals } = await backup(sourceUrl(pg, database));
  expect(manifest.globals).toEqual({ rolePasswords: true });
  expect(globals).toMatch(new RegExp(`CREATE ROLE ${owner};`));
  expect(globals).toMatch(/PASSWORD 'SCRAM-SHA-256\$/);
});

test('a user who may not read pg_authid still gets a backup, without passwords, and is told so', async () => {
  const url = `postgres://${owner}:${encodeURIComponent(ownerPassword)}@${pg.host}:${pg.port}/${database}`;
  const { manifest, globals } = await backup(url);
  expect(manifest.globals).toEqual({
    rolePasswords: false,
    note: 'role passwords omitted: this user may not read pg_authid',
  });
  expect(globals).toMatch(new RegExp(`CREATE ROLE ${owner};`));
  expect(globals).not.toMatch(/PASSWORD/);
  expect(manifest.tables).toMatchObject([{ schema: 'public', name: 't', rows: 1 }]);
});
