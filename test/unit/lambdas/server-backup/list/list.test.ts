/**
 * The listing step's refusals on AWS, before any secret is read or any server reached: only a
 * configured server entry, named by its id, is backed up as a set.
 */
import { BINDINGS_VERSION, type DatabaseBinding } from '../../../../../core/bindings';
import { ServerBackupRequestSchema } from '../../../../../core/contracts';
import type { Deployment } from '../../../../../core/deployment';
import { listServer } from '../../../../../lambdas/server-backup/list/list';

const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:main-AbCdEf';
const binding = (extra: Partial<DatabaseBinding>): DatabaseBinding => ({
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
  ...extra,
});
const request = (name?: string) =>
  ServerBackupRequestSchema.parse({
    ...(name ? { name } : {}),
    source: {
      host: 'main.example.com',
      port: 5432,
      database: 'postgres',
      user: 'backup',
      sslmode: 'verify-full',
      passwordSecretArn: SECRET,
    },
    store: 's3://bucket/backups',
  });
const deps = (b: DatabaseBinding) => {
  const deployment: Deployment = { onAws: true, bindings: { version: BINDINGS_VERSION, bindings: [b] } };
  return {
    deployment,
    env: {},
    openStore: () => {
      throw new Error('the store must not be opened');
    },
  };
};

test('a database entry is not backed up as a set', async () => {
  await expect(listServer(request('main'), deps(binding({})))).rejects.toThrow(
    /configured as the database "main", not as a server entry/,
  );
});

test('a server entry is named by its id: no other name, and not none', async () => {
  const server = binding({ allDatabases: true });
  await expect(listServer(request('other'), deps(server))).rejects.toThrow(
    /is the server entry "main", not "other"/,
  );
  await expect(listServer(request(), deps(server))).rejects.toThrow(/not "\(none\)"/);
});
