/**
 * `pgferry migrate --all-databases` moves every non-template database of a server, and its roles.
 * It runs on servers of its own (14 → 17): on the shared test servers "every database" would
 * include the other tests' databases.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import type { BackupManifest, MigrateReport } from '../../core/contracts';
import { runCli, runMigrate } from '../support/cli';
import { type PostgresServerInfo, startPostgres, stopPostgres } from '../support/postgres';

const url = (pg: PostgresServerInfo, database: string) =>
  `postgres://${pg.user}:${encodeURIComponent(pg.password)}@${pg.host}:${pg.port}/${database}`;

async function query<T extends object>(pg: PostgresServerInfo, database: string, sql: string): Promise<T[]> {
  const client = new Client({ host: pg.host, port: pg.port, user: pg.user, password: pg.password, database });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('pgferry migrate --all-databases', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-all-'));
  const store = path.join(dir, 'store');
  const serverDir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-servers-'));
  let source: PostgresServerInfo;
  let target: PostgresServerInfo;
  let report: MigrateReport | undefined;

  beforeAll(async () => {
    // The servers run as the postgres OS user, which must reach their directories.
    chmodSync(serverDir, 0o755);
    [source, target] = await Promise.all([
      startPostgres(14, { parentDir: serverDir, password: 'source pw' }),
      startPostgres(17, { parentDir: serverDir, password: 'target pw' }),
    ]);
    await query(source, 'postgres', 'CREATE ROLE app_owner NOLOGIN; CREATE ROLE app_reader NOLOGIN');
    await query(source, 'postgres', 'CREATE DATABASE shop OWNER app_owner');
    await query(source, 'postgres', 'CREATE DATABASE "ledger ☃"');
    await query(
      source,
      'shop',
      `CREATE TABLE orders (id int PRIMARY KEY, total numeric); ALTER TABLE orders OWNER TO app_owner;
       GRANT SELECT ON orders TO app_reader;
       INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g;`,
    );
    await query(
      source,
      'ledger ☃',
      `CREATE SEQUENCE entry_ids START 1000; CREATE TABLE entries (id bigint DEFAULT nextval('entry_ids'), memo text);
       INSERT INTO entries (memo) SELECT 'memo ' || g FROM generate_series(1, 300) g;`,
    );
    const result = await runMigrate(url(source, 'postgres'), url(target, 'postgres'), store, [
      '--all-databases',
      '--json',
    ]);
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    report = JSON.parse(result.stdout) as MigrateReport;
  }, 600_000);

  afterAll(async () => {
    await Promise.all([source, target].filter(Boolean).map((pg) => stopPostgres(pg)));
    rmSync(dir, { recursive: true, force: true });
    rmSync(serverDir, { recursive: true, force: true });
  });

  test('every non-template database of the source is migrated', async () => {
    expect(report?.databases.map((d) => d.database).sort()).toEqual(['ledger ☃', 'postgres', 'shop']);
    const names = await query<{ datname: string }>(
      target,
      'postgres',
      'SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1',
    );
    expect(names.map((r) => r.datname)).toEqual(['ledger ☃', 'postgres', 'shop']);
  });

  test("each database's rows and sequences equal the source's", async () => {
    const orders = 'SELECT count(*)::int AS n, sum(total)::text AS s FROM orders';
    expect(await query(target, 'shop', orders)).toEqual(await query(source, 'shop', orders));
    const entries =
      'SELECT count(*)::int AS n, max(id)::text AS m, (SELECT last_value::text FROM entry_ids) AS seq FROM entries';
    expect(await query(target, 'ledger ☃', entries)).toEqual(await query(source, 'ledger ☃', entries));
  });

  test('the roles come along, with ownership and grants', async () => {
    expect(report?.roles.created).toEqual(expect.arrayContaining(['app_owner', 'app_reader']));
    // (The owner's ACL itself differs: 17 adds the MAINTAIN privilege.)
    const acl = `SELECT pg_get_userbyid(relowner) AS owner,
                        has_table_privilege('app_reader', 'orders', 'SELECT') AS reads,
                        has_table_privilege('app_reader', 'orders', 'INSERT') AS writes
                 FROM pg_class WHERE relname = 'orders'`;
    expect(await query(target, 'shop', acl)).toEqual([{ owner: 'app_owner', reads: true, writes: false }]);
    const owner = `SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'shop'`;
    expect(await query(target, 'postgres', owner)).toEqual([{ owner: 'app_owner' }]);
  });

  test('each database leaves a complete backup in the store', async () => {
    const list = await runCli(['list', '--store', store, '--json']);
    const manifests = JSON.parse(list.stdout) as BackupManifest[];
    expect(manifests.map((m) => m.database).sort()).toEqual(['ledger ☃', 'postgres', 'shop']);
  });
});
