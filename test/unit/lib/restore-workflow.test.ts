/**
 * The restore state machine's failure path and its cleanup function: a failed Restore task goes
 * to RestoreCleanup (which connects to the target, as the preflight does) and then to
 * RestoreRecord, also when the cleanup itself fails; the cleanup function may read the store and
 * log in to the databases the preflight may, and nothing more; Record stays without database access.
 */
import { allowedActionsOf, definitionOf, resourcesAllowed, templateOf } from './fixtures';

const template = templateOf();
const { StartAt, States } = definitionOf(template, 'RestoreStateMachine');

type CatchingState = { Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[] };
const catches = (name: string) => (States[name] as CatchingState).Catch;

test('Preflight → [SafetyBackup] → Restore → RestoreRecord; a failed Restore → RestoreCleanup → RestoreRecord', () => {
  expect(StartAt).toBe('RestorePreflight');
  expect(States.Restore.Next).toBe('RestoreRecord');
  expect(catches('Restore')).toEqual([
    { ErrorEquals: ['States.ALL'], Next: 'RestoreCleanup', ResultPath: '$.error' },
  ]);
  expect(States.RestoreCleanup).toMatchObject({ Type: 'Task', Next: 'RestoreRecord' });
  expect((States.RestoreCleanup as { ResultPath?: string }).ResultPath).toBe('$.cleanup');
  // The cleanup's own failure does not keep Record from failing the execution with the run's error.
  expect(catches('RestoreCleanup')).toEqual([
    { ErrorEquals: ['States.ALL'], Next: 'RestoreRecord', ResultPath: '$.cleanupError' },
  ]);
  expect(States.RestoreRecord.End).toBe(true);
});

type LambdaProperties = {
  VpcConfig: { SecurityGroupIds: unknown[]; SubnetIds: unknown[] };
  Environment: { Variables: Record<string, string> };
};

function functionNamed(name: string): LambdaProperties {
  const all = template.findResources('AWS::Lambda::Function') as Record<
    string,
    { Properties: LambdaProperties }
  >;
  const id = Object.keys(all).find((key) => key.startsWith(name));
  if (!id) throw new Error(`no function ${name}`);
  return all[id].Properties;
}

test('the cleanup function runs where the restore preflight runs: its security group and subnets, trusting the RDS CAs', () => {
  const cleanup = functionNamed('FunctionsRestoreCleanup');
  const preflight = functionNamed('FunctionsRestorePreflight');
  expect(cleanup.VpcConfig).toEqual(preflight.VpcConfig);
  expect(cleanup.Environment.Variables.NODE_EXTRA_CA_CERTS).toBe('/var/runtime/ca-cert.pem');
});

test('the cleanup function may log in to exactly the databases the restore preflight may', () => {
  for (const action of ['secretsmanager:GetSecretValue', 'rds-db:connect']) {
    const allowed = (role: string) =>
      resourcesAllowed(template, `${role}ServiceRole`, action)
        .map((r) => JSON.stringify(r))
        .sort();
    expect(allowed('FunctionsRestoreCleanup')).toEqual(allowed('FunctionsRestorePreflight'));
  }
  expect(
    resourcesAllowed(template, 'FunctionsRestoreCleanupServiceRole', 'secretsmanager:GetSecretValue'),
  ).not.toEqual([]);
});

test('the cleanup function reads the store (the run’s job) and never writes, tags or deletes there', () => {
  const s3 = allowedActionsOf(template, 'FunctionsRestoreCleanupServiceRole').filter((a) =>
    a.startsWith('s3:'),
  );
  expect(s3.sort()).toEqual(['s3:GetBucket*', 's3:GetObject*', 's3:List*']);
});

test('RestoreRecord still connects to no database: no password secret, the AWS API clients group', () => {
  expect(allowedActionsOf(template, 'FunctionsRestoreRecordServiceRole')).not.toContain(
    'secretsmanager:GetSecretValue',
  );
  expect(JSON.stringify(functionNamed('FunctionsRestoreRecord').VpcConfig.SecurityGroupIds)).toMatch(
    /NetworkAwsApiClients/,
  );
});
