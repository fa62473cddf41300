/**
 * The stack knows which login belongs to which server and database, and what each may be used
 * for (`stack.bindings`, core/bindings.ts): what the runtime checks an execution input against.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { DatabaseBindingsSchema } from '../../../core/bindings';
import { minimalConfig, synthesize } from './fixtures';

const { stack } = synthesize();

test('the bindings are typed and versioned: they parse with the schema the runtime uses', () => {
  expect(DatabaseBindingsSchema.parse(stack.bindings)).toEqual(stack.bindings);
});

test('each configured database may be backed up, not restored into; each target restored into, not backed up', () => {
  expect(stack.bindings.bindings.map((b) => [b.id, b.source, b.target])).toEqual([
    ['shop', true, false],
    ['billing', true, false],
    ['analytics', true, false],
    ['shop-drill', false, true],
    ['shop-pg17', false, true],
  ]);
});

test('a binding pairs the secret with its host, port, database and user', () => {
  expect(stack.bindings.bindings.find((b) => b.id === 'shop-drill')).toEqual({
    id: 'shop-drill',
    source: false,
    target: true,
    host: 'shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com',
    port: 5432,
    database: 'shop_restored',
    anyDatabase: false,
    user: 'pgferry_backup',
    sslmode: 'verify-full',
    passwordSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf',
    cutoverEcsServices: [],
  });
  expect(stack.bindings.bindings.find((b) => b.id === 'shop-pg17')?.cutoverEcsServices).toEqual([
    { cluster: 'shop', service: 'shop-api' },
  ]);
});

test('a database that says restoreTarget: true may be restored into as well', () => {
  const config = minimalConfig();
  config.databases[0] = { ...config.databases[0], restoreTarget: true };
  const [binding] = synthesize(config).stack.bindings.bindings;
  expect(binding).toMatchObject({ id: 'shop', source: true, target: true });
});

test('an IAM-authenticated login is bound by its RDS resource id, with no secret', () => {
  const config = minimalConfig();
  const { passwordSecretArn: _omitted, ...connection } = config.databases[0].connection;
  config.databases[0] = {
    ...config.databases[0],
    connection: { ...connection, iamAuth: true },
    rdsResourceId: 'db-ABCDEFGHIJKL0123456789',
  };
  const [binding] = synthesize(config).stack.bindings.bindings;
  expect(binding).toMatchObject({ iamAuth: true, rdsResourceId: 'db-ABCDEFGHIJKL0123456789' });
  expect(binding.passwordSecretArn).toBeUndefined();
});

test('every password secret the stack lets its roles read is bound to a server', () => {
  const bound = new Set(stack.bindings.bindings.map((b) => b.passwordSecretArn));
  const policies = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy')) as {
    Properties: {
      PolicyDocument: { Statement: { Action: string | string[]; Resource: unknown; Condition?: unknown }[] };
    };
  }[];
  const readable = policies
    .flatMap((p) => p.Properties.PolicyDocument.Statement)
    // The migration's cutover secrets are another grant: only those tagged for it, never a login.
    .filter((s) => [s.Action].flat().includes('secretsmanager:GetSecretValue') && !s.Condition)
    .flatMap((s) => [s.Resource].flat());
  expect(readable.length).toBeGreaterThan(0);
  for (const arn of readable) expect(bound).toContain(arn);
});
