/**
 * A migration of one database copies the roles it needs without their passwords (unless
 * `--with-role-passwords`) — and says so: the summary names each login role it created without a
 * password and how to set one, and the report lists them (`roles.createdWithoutPassword`).
 * The roles are created while the copy starts; the table they own and are granted still arrives
 * with its owner and grant when creating them is held back until long after the copy began.
 * The archived backup keeps the same roles (pg_dumpall runs once per migration: the globals the
 * target's roles were created from are the archive's).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { type BackupManifest, type MigrateReport, MigrateReportSchema } from '../../core/contracts';
import { LocalStore } from '../../core/store';
import { backupObjectKey, manifestKey } from '../../core/store-keys';
import { runMigrate, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { waitFor } from '../support/faults';
import { usePrivateServer } from '../support/private-server';

const source = testEnv().server(15);
const target = usePrivateServer(15);
const owner = uniqueName('app_owner');
const group = uniqueName('app_readers');
const database = uniqueName('roles_src');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-roles-'));
let stdout = '';
// Whether creating the roles on the target was seen waiting for the lock held below.
let rolesHeldBack = false;

beforeAll(async () => {
  await withClient(source, 'postgres', (c) =>
    c.query(
      `CREATE ROLE ${quoteIdent(owner)} LOGIN PASSWORD 'owner secret'; CREATE ROLE ${quoteIdent(group)} NOLOGIN`,
    ),
  );
  await createSeededDatabase(
    source,
    database,
    `CREATE TABLE orders (id int PRIMARY KEY); ALTER TABLE orders OWNER TO ${quoteIdent(owner)};
             GRANT SELECT ON orders TO ${quoteIdent(group)}; INSERT INTO orders SELECT generate_series(1, 10)`,
  );
  // CREATE ROLE on the target waits for this lock (logins and reading the roles do not): the
  // roles are created only long after the copy started, which must wait for them.
  const holder = new Client(target().clientConfig('postgres'));
  await holder.connect();
  await holder.query('BEGIN; LOCK TABLE pg_catalog.pg_authid IN SHARE MODE');
  const migrating = runMigrate(sourceUrl(source, database), sourceUrl(target(), database), dir);
  try {
    rolesHeldBack = await waitFor('CREATE ROLE waiting on the target', async () => {
      const { rows } = await holder.query(
        "SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'pg_catalog.pg_authid'::regclass",
      );
      return rows.length > 0 ? true : undefined;
    });
    // Long enough for pg_dump's catalog reads and the pre-data, were they not waiting.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
  } finally {
    await holder.query('COMMIT').catch(() => undefined);
    await holder.end();
  }
  const result = await migrating;
  if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
  stdout = result.stdout;
}, 300_000);

afterAll(async () => {
  await dropDatabase(source, database);
  await withClient(source, 'postgres', (c) =>
    c.query(`DROP ROLE ${quoteIdent(owner)}; DROP ROLE ${quoteIdent(group)}`),
  );
  rmSync(dir, { recursive: true, force: true });
});

test('the table arrives with its owner and grant though the roles were created long after the copy began', async () => {
  expect(rolesHeldBack).toBe(true);
  const { rows } = await withClient(target(), database, (c) =>
    c.query<{ owner: string; acl: string }>(
      "SELECT tableowner AS owner, (SELECT relacl::text FROM pg_class WHERE oid = 'orders'::regclass) AS acl FROM pg_tables WHERE tablename = 'orders'",
    ),
  );
  expect(rows).toEqual([{ owner, acl: expect.stringContaining(`${group}=r/`) }]);
});

test('the summary names the login role created without a password, and how to set one', () => {
  const lines = stdout.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^migrated /);
  expect(lines.slice(1)).toEqual([
    expect.stringMatching(/^no schema test: /),
    `created without a password, so they cannot log in with one yet: "${owner}"`,
    `  set each on the target: ALTER ROLE "${owner}" PASSWORD '…';  (or migrate with --with-role-passwords)`,
  ]);
});

test('the stored report lists it; the NOLOGIN role is created but needs no password', async () => {
  const store = new LocalStore(dir);
  const reports: MigrateReport[] = [];
  for await (const entry of store.list('')) {
    if (/\/migrate-report-[^/]+\.json$/.test(entry.key)) {
      reports.push(MigrateReportSchema.parse(await store.getJson(entry.key)));
    }
  }
  expect(reports).toHaveLength(1);
  expect(reports[0].roles.created).toEqual(expect.arrayContaining([owner, group]));
  expect(reports[0].roles.createdWithoutPassword).toEqual([owner]);
  // As it says: the role can log in on the target, and has no password there.
  const roles = await withClient(target(), 'postgres', (c) =>
    c.query<{ rolcanlogin: boolean; haspassword: boolean }>(
      'SELECT rolcanlogin, rolpassword IS NOT NULL AS haspassword FROM pg_authid WHERE rolname = $1',
      [owner],
    ),
  );
  expect(roles.rows).toEqual([{ rolcanlogin: true, haspassword: false }]);
});

test("the archived backup's globals are the source's roles, without passwords, as its manifest states them", async () => {
  const store = new LocalStore(dir);
  let backupId = '';
  for await (const entry of store.list('')) {
    if (/\/migrate-report-[^/]+\.json$/.test(entry.key)) {
      backupId = MigrateReportSchema.parse(await store.getJson(entry.key)).databases[0].backupId;
    }
  }
  const manifest = (await store.getJson(manifestKey(database, backupId))) as BackupManifest;
  expect(manifest.globals).toEqual({ rolePasswords: false });
  const object = manifest.objects.find((o) => o.kind === 'globals');
  expect(object).toMatchObject({ key: 'globals.sql', compression: { codec: 'none' } });
  const stored = readFileSync(path.join(dir, backupObjectKey(database, manifest.id, object?.key ?? '')));
  expect({ bytes: stored.length, sha256: createHash('sha256').update(stored).digest('hex') }).toEqual({
    bytes: object?.bytes,
    sha256: object?.sha256,
  });
  const text = stored.toString('utf8');
  expect(text).toMatch(new RegExp(`CREATE ROLE "?${owner}"?;`));
  expect(text).toMatch(new RegExp(`CREATE ROLE "?${group}"?;`));
  expect(text).not.toMatch(/PASSWORD/);
});
