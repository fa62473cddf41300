/** RDS IAM authentication instead of a password secret: configuration and least-privilege grants. */
import { Match } from 'aws-cdk-lib/assertions';
import { parseConfig } from '../../../lib/config';
import { ACCOUNT, minimalConfig, REGION, templateOf } from './fixtures';

function iamConfig(rdsResourceId?: string) {
  const config = minimalConfig();
  const [db] = config.databases;
  const { passwordSecretArn: _omitted, ...connection } = db.connection;
  return { ...config, databases: [{ ...db, connection: { ...connection, iamAuth: true }, rdsResourceId }] };
}

test('a database may log in with RDS IAM authentication instead of a secret', () => {
  expect(() => parseConfig(iamConfig('db-ABCDEFGHIJKL0123456789'))).not.toThrow();
});

test('IAM authentication needs the RDS resource id to grant rds-db:connect', () => {
  expect(() => parseConfig(iamConfig())).toThrow(/rdsResourceId: iamAuth needs the RDS resource id/);
});

test('a connection with neither a secret nor IAM authentication is refused', () => {
  const config = iamConfig('db-ABCDEFGHIJKL0123456789');
  const [db] = config.databases;
  const refused = { ...config, databases: [{ ...db, connection: { ...db.connection, iamAuth: undefined } }] };
  expect(() => parseConfig(refused)).toThrow(/give exactly one way to log in/);
});

test("the task and the functions that connect may rds-db:connect as the database's user only", () => {
  const template = templateOf(iamConfig('db-ABCDEFGHIJKL0123456789'));
  const grants = template.findResources('AWS::IAM::Policy', {
    Properties: {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'rds-db:connect',
            Resource: `arn:aws:rds-db:${REGION}:${ACCOUNT}:dbuser:db-ABCDEFGHIJKL0123456789/backup`,
          }),
        ]),
      },
    },
  });
  // The pg-tools task role, backup preflight and restore preflight.
  expect(Object.keys(grants).length).toBeGreaterThanOrEqual(3);
  // No secret is read for logging in; the migrate cutover may read only secrets tagged for it.
  const secretReads = Object.values(template.findResources('AWS::IAM::Policy'))
    .flatMap(
      (p) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Condition?: unknown }[],
    )
    .filter((s) => [s.Action].flat().includes('secretsmanager:GetSecretValue'));
  expect(secretReads).toEqual([
    expect.objectContaining({
      Condition: { StringEquals: { 'secretsmanager:ResourceTag/pgferry-cutover': 'true' } },
    }),
  ]);
});
