/**
 * A migration of one database copies the roles it needs without their passwords (unless
 * `--with-role-passwords`) — and says so: the summary names each login role it created without a
 * password and how to set one, and the report lists them (`roles.createdWithoutPassword`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type MigrateReport, MigrateReportSchema } from '../../core/contracts';
import { LocalStore } from '../../core/store';
import { runCli, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { usePrivateServer } from '../support/private-server';

const source = testEnv().server(15);
const target = usePrivateServer(15);
const owner = uniqueName('app_owner');
const group = uniqueName('app_readers');
const database = uniqueName('roles_src');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-roles-'));
let stdout = '';

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
  const result = await runCli([
    'migrate',
    '--source',
    sourceUrl(source, database),
    '--target',
    sourceUrl(target(), database),
    '--store',
    dir,
  ]);
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
