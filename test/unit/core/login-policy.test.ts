/**
 * A server entry's binding (`allDatabases`): its login backs up any database of its server, each
 * filed under `<id>.<database>` and no other name, and is never used to write or to migrate.
 */
import { BINDINGS_VERSION, type DatabaseBinding, memberCatalogName } from '../../../core/bindings';
import { backupCatalogName } from '../../../core/catalog-name';
import type { Connection } from '../../../core/contracts';
import type { Deployment } from '../../../core/deployment';
import { allowedLogin, checkFiledUnder } from '../../../core/login-policy';

const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:main-AbCdEf';
const server: DatabaseBinding = {
  id: 'main',
  source: true,
  target: false,
  host: 'main.example.com',
  port: 5432,
  database: 'postgres',
  anyDatabase: false,
  user: 'backup',
  sslmode: 'verify-full',
  passwordSecretArn: SECRET,
  cutoverEcsServices: [],
  allDatabases: true,
};
const deployment: Deployment = { onAws: true, bindings: { version: BINDINGS_VERSION, bindings: [server] } };
const on = (database: string, extra: Partial<Connection> = {}): Connection => ({
  host: 'main.example.com',
  port: 5432,
  database,
  user: 'backup',
  sslmode: 'verify-full',
  passwordSecretArn: SECRET,
  ...extra,
});

test("a server entry's login backs up any database of its server, filed under <id>.<database>", () => {
  expect(allowedLogin(deployment, on('shop'), 'backup')).toBe(server);
  expect(backupCatalogName(deployment, on('shop'), undefined).name).toBe('main.shop');
  expect(backupCatalogName(deployment, on(`it's odd`), memberCatalogName('main', `it's odd`)).name).toBe(
    "main.it's odd",
  );
});

test('a member filed under another name, or the login sent to another server, is refused', () => {
  expect(() => backupCatalogName(deployment, on('shop'), 'main.crm')).toThrow(
    /are filed under "main\.shop", not "main\.crm"/,
  );
  expect(() => checkFiledUnder(server, 'main', 'shop')).toThrow(/filed under "main\.shop"/);
  expect(() => allowedLogin(deployment, on('shop', { host: 'evil.example.com' }), 'backup')).toThrow(
    /is configured for "main"/,
  );
});

test("a server entry's login is never used to restore into or migrate from another database", () => {
  expect(() => allowedLogin(deployment, on('shop'), 'restore-target')).toThrow(
    /not configured to be restored into/,
  );
  expect(() => allowedLogin(deployment, on('shop'), 'migrate-source')).toThrow(/is configured for "main"/);
});
