/**
 * Whole servers: `pgferry backup --all-databases` as a backup set, `restore --set` into a fresh
 * server, `verify --set`, `list --sets`/`show --set`, a set with a failed member, and origin and
 * pin respected by prune. The servers are the suite's own (PostgreSQL 15 as the source, a fresh 17
 * as the target): on the shared test servers "every database" would be every suite's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Client } from 'pg';
import type { BackupManifest, BackupSetManifest } from '../../core/contracts';
import { type CliResult, runCli } from '../support/cli';
import { quoteIdent, type TestPostgres, withClient } from '../support/env';
import { usePrivateServer } from '../support/private-server';

/** Quotes, a space, non-ASCII: a name every layer must carry as it is. */
const AWKWARD = `it's "odd" ☃ db`;

/** `postgres://postgres:…@host:port/` — a server, no database. */
const serverUrl = (pg: TestPostgres) => pg.url('').replace(/\/postgres$|\/$/, '/');

/** Every table's rows of `database`, as one text per table (order-independent). */
async function contents(pg: TestPostgres, database: string): Promise<Record<string, string>> {
  return withClient(pg, database, async (c) => {
    const { rows: tables } = await c.query<{ t: string }>(
      `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables
       WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    );
    const out: Record<string, string> = {};
    for (const { t } of tables) {
      const { rows } = await c.query<{ h: string; n: string }>(
        `SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h, count(*) AS n FROM ${t} x`,
      );
      out[t] = `${rows[0].n} rows ${rows[0].h}`;
    }
    return out;
  });
}

/** The roles (but the predefined ones) with their attributes and memberships, and who owns what. */
async function roles(pg: TestPostgres): Promise<string[]> {
  return withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query<{ r: string }>(
      `SELECT format('%s login=%s createdb=%s member of {%s}', r.rolname, r.rolcanlogin, r.rolcreatedb,
                     (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m
                      JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)) AS r
       FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1`,
    );
    return rows.map((row) => row.r);
  });
}

async function databases(pg: TestPostgres): Promise<string[]> {
  return withClient(pg, 'postgres', async (c) =>
    (
      await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1')
    ).rows.map((r) => r.datname),
  );
}

function ok(result: CliResult): CliResult {
  if (result.code !== 0) throw new Error(`pgferry failed (${result.code}): ${result.stderr}`);
  return result;
}

describe('backup sets: a whole server backed up, restored and verified', () => {
  const source = usePrivateServer(15);
  const target = usePrivateServer(17);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-sets-'));
  const store = path.join(dir, 'store');
  let first: BackupSetManifest;
  let second: BackupSetManifest;

  const backupSet = (...extra: string[]) =>
    runCli([
      'backup',
      '--all-databases',
      '--source',
      serverUrl(source()),
      '--store',
      store,
      '--json',
      ...extra,
    ]);

  beforeAll(async () => {
    const pg = source();
    await withClient(pg, 'postgres', async (c) => {
      await c.query('CREATE ROLE app_owner NOLOGIN CREATEDB; CREATE ROLE app_reader LOGIN IN ROLE app_owner');
      await c.query('CREATE DATABASE shop OWNER app_owner');
      await c.query(`CREATE DATABASE ${quoteIdent(AWKWARD)}`);
      await c.query('CREATE DATABASE crm');
      await c.query('CREATE DATABASE scratch');
      // The server's own postgres database holds data too: a set restores into a fresh one.
      await c.query(`CREATE TABLE notes (id int PRIMARY KEY, body text);
                     INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 50) g`);
    });
    await withClient(pg, 'shop', (c) =>
      c.query(`CREATE TABLE orders (id int PRIMARY KEY, total numeric); ALTER TABLE orders OWNER TO app_owner;
               GRANT SELECT ON orders TO app_reader;
               INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g`),
    );
    await withClient(pg, AWKWARD, (c) =>
      c.query(`CREATE TABLE "wéird ""t""" (id int PRIMARY KEY, v text);
               INSERT INTO "wéird ""t""" SELECT g, repeat('☃', g % 7) FROM generate_series(1, 300) g`),
    );
    await withClient(pg, 'crm', (c) =>
      c.query(`CREATE TABLE contacts (id int PRIMARY KEY, name text);
               INSERT INTO contacts SELECT g, 'contact ' || g FROM generate_series(1, 200) g`),
    );
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('backs up every database but the excluded ones, each a listed backup of origin set, the set manifest last', async () => {
    first = JSON.parse(ok(await backupSet('--exclude', 'scratch', '--parallel', '2')).stdout);
    expect(first).toMatchObject({ kind: 'backup-set', status: 'complete', failed: [], parallel: 2 });
    expect(first.members.map((m) => m.database)).toEqual([AWKWARD, 'crm', 'postgres', 'shop'].sort());
    expect(first.globals?.key).toMatch(/^globals/);
    const listed: (BackupManifest & { catalog: { origin: string } })[] = JSON.parse(
      ok(await runCli(['list', '--store', store, '--json'])).stdout,
    );
    expect(listed.map((m) => [m.database, m.origin, m.catalog.origin, m.setId]).sort()).toEqual(
      first.members.map((m) => [m.database, 'set', 'set', first.id]).sort(),
    );
  }, 300_000);

  test('a database created between two runs is in the next set; list --sets and show --set', async () => {
    await withClient(source(), 'postgres', (c) => c.query('CREATE DATABASE late'));
    await withClient(source(), 'late', (c) =>
      c.query('CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10)'),
    );
    second = JSON.parse(ok(await backupSet('--exclude', 'scratch')).stdout);
    expect(second.members.map((m) => m.database)).toEqual(
      [AWKWARD, 'crm', 'late', 'postgres', 'shop'].sort(),
    );

    const sets = ok(await runCli(['list', '--sets', '--store', store]))
      .stdout.trimEnd()
      .split('\n');
    expect(sets[0]).toMatch(/^SET\s+SERVER\s+STARTED\s+DURATION\s+STATUS\s+DATABASES\s+FAILED/);
    expect(sets.slice(1).map((line) => line.split(/\s+/).slice(0, 1)[0])).toEqual([second.id, first.id]);
    expect(sets[1]).toMatch(/complete\s+5\s+-/);
    const shown = ok(await runCli(['show', '--store', store, '--set', 'latest'])).stdout;
    expect(shown).toContain(`set        ${second.id}`);
    expect(shown).toContain(AWKWARD);
  }, 300_000);

  test('restore --set puts every database and the roles into a fresh server, with identical data', async () => {
    const result = ok(
      await runCli(['restore', '--set', 'latest', '--target', serverUrl(target()), '--store', store]),
    );
    expect(result.stdout).toContain(`restored set ${second.id}: 5 databases`);
    expect(await databases(target())).toEqual([AWKWARD, 'crm', 'late', 'postgres', 'shop'].sort());
    for (const db of second.members.map((m) => m.database)) {
      expect(await contents(target(), db)).toEqual(await contents(source(), db));
    }
    expect(await roles(target())).toEqual(await roles(source()));
    const owner = await withClient(target(), 'shop', (c: Client) =>
      c.query<{ o: string; acl: string }>(
        "SELECT tableowner AS o, has_table_privilege('app_reader', 'orders', 'SELECT')::text AS acl FROM pg_tables WHERE tablename = 'orders'",
      ),
    );
    expect(owner.rows[0]).toEqual({ o: 'app_owner', acl: 'true' });
  }, 300_000);

  test('restore --set refuses, before any change, a server where a member database has objects', async () => {
    const before = await Promise.all(second.members.map((m) => contents(target(), m.database)));
    const result = await runCli([
      'restore',
      '--set',
      second.id,
      '--target',
      serverUrl(target()),
      '--store',
      store,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(
      /^pgferry: the target server already has .*shop \(\d+ objects\).*drop them/,
    );
    expect(await Promise.all(second.members.map((m) => contents(target(), m.database)))).toEqual(before);
  }, 120_000);

  test('verify --set verifies every member', async () => {
    const result = ok(await runCli(['verify', '--set', 'latest', '--store', store]));
    expect(result.stdout).toContain(`verified set ${second.id}: 5 databases passed`);
    expect(result.stdout.match(/^passed /gm)).toHaveLength(5);
  }, 600_000);

  test('a member that fails leaves the set failed (exit 1) and the other members restorable', async () => {
    const holder = await (async () => {
      const { Client: PgClient } = await import('pg');
      const c = new PgClient(source().clientConfig('crm'));
      await c.connect();
      await c.query('BEGIN');
      await c.query('LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE');
      return c;
    })();
    let result: CliResult;
    try {
      result = await backupSet('--exclude', 'scratch', '--lock-wait-timeout', '1s');
    } finally {
      await holder.end();
    }
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /pgferry: backup set \S+ failed: crm \(pg_dump could not lock public\.contacts/,
    );
    const failed: BackupSetManifest = JSON.parse(result.stdout);
    expect(failed.status).toBe('failed');
    expect(failed.failed.map((f) => f.database)).toEqual(['crm']);
    expect(failed.members.map((m) => m.database)).toEqual([AWKWARD, 'late', 'postgres', 'shop'].sort());

    // latest is the newest complete set; the failed one is refused by id, naming what to do.
    expect(
      JSON.parse(ok(await runCli(['show', '--store', store, '--set', 'latest', '--json'])).stdout).id,
    ).toBe(second.id);
    const refused = await runCli([
      'restore',
      '--set',
      failed.id,
      '--target',
      serverUrl(target()),
      '--store',
      store,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /backup set \S+ failed \(crm .*\): restore its complete members one by one/,
    );

    const shop = failed.members.find((m) => m.database === 'shop');
    ok(
      await runCli([
        'restore',
        '--store',
        store,
        '--backup',
        shop?.backupId ?? '',
        '--name',
        'shop',
        '--target',
        target().url('shop_from_failed_set'),
      ]),
    );
    expect(await contents(target(), 'shop_from_failed_set')).toEqual(await contents(source(), 'shop'));
  }, 300_000);

  test('prune keeps a pinned backup and keeps safety backups by days, not by the rules', async () => {
    const keepOne = [
      '--keep-last',
      '1',
      '--keep-daily',
      '0',
      '--keep-weekly',
      '0',
      '--keep-monthly',
      '0',
      '--keep-yearly',
      '0',
    ];
    // crm has two backups (the third run failed it): pin the older one.
    ok(
      await runCli([
        'pin',
        'crm',
        first.members.find((m) => m.database === 'crm')?.backupId ?? '',
        '--store',
        store,
      ]),
    );
    const pruned = JSON.parse(
      ok(await runCli(['prune', '--store', store, '--name', 'crm', ...keepOne, '--json'])).stdout,
    );
    expect(
      pruned.backups.map((b: { id: string; action: string; pinned: boolean }) => [b.id, b.action, b.pinned]),
    ).toEqual([
      [second.members.find((m) => m.database === 'crm')?.backupId, 'keep', false],
      [first.members.find((m) => m.database === 'crm')?.backupId, 'keep', true],
    ]);
    // Unpinned, the older one goes.
    ok(
      await runCli([
        'unpin',
        'crm',
        first.members.find((m) => m.database === 'crm')?.backupId ?? '',
        '--store',
        store,
      ]),
    );
    const after = JSON.parse(
      ok(await runCli(['prune', '--store', store, '--name', 'crm', ...keepOne, '--json'])).stdout,
    );
    expect(after.backups.map((b: { action: string }) => b.action)).toEqual(['keep', 'delete']);

    // A clean restore's safety backup records its origin; prune keeps it 30 days, then deletes it.
    ok(
      await runCli([
        'restore',
        '--store',
        store,
        '--backup',
        'latest',
        '--name',
        'crm',
        '--target',
        target().url('crm'),
        '--mode',
        'clean',
        '--force',
      ]),
    );
    const safety = (
      JSON.parse(ok(await runCli(['list', '--store', store, '--json'])).stdout) as (BackupManifest & {
        origin: string;
      })[]
    ).filter((m) => m.origin === 'safety');
    expect(safety).toHaveLength(1);
    const name = safety[0].name ?? '';
    const at = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
    const plan = (days: number) =>
      runCli([
        'prune',
        '--store',
        store,
        '--name',
        name,
        ...keepOne,
        '--now',
        at(days),
        '--dry-run',
        '--json',
      ]);
    expect(JSON.parse(ok(await plan(29)).stdout).backups.map((b: { action: string }) => b.action)).toEqual([
      'keep',
    ]);
    expect(JSON.parse(ok(await plan(31)).stdout).backups.map((b: { action: string }) => b.action)).toEqual([
      'delete',
    ]);
  }, 300_000);
});
