/** Template assertions on the synthesized stack: one behaviour each. */
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { PgferryStack } from '../../lib/pgferry-stack';

const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
const template = Template.fromStack(
  new PgferryStack(app, 'Test', { env: { account: '111111111111', region: 'eu-west-1' } }),
);

function definitionOf(): Record<string, unknown> {
  const machines = template.findResources('AWS::StepFunctions::StateMachine');
  const [machine] = Object.values(machines) as {
    Properties: { DefinitionString: { 'Fn::Join': [string, unknown[]] } };
  }[];
  const text = machine.Properties.DefinitionString['Fn::Join'][1]
    .map((p) => (typeof p === 'string' ? p : 'X'))
    .join('');
  return JSON.parse(text) as Record<string, unknown>;
}

test('the state machine logs without execution data and is traced', () => {
  template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
    LoggingConfiguration: Match.objectLike({ IncludeExecutionData: false, Level: 'ALL' }),
    TracingConfiguration: { Enabled: true },
  });
});

test('the Lambda handlers run on Node.js 22 on arm64', () => {
  const functions = template.findResources('AWS::Lambda::Function', {
    Properties: { Runtime: 'nodejs22.x', Architectures: ['arm64'] },
  });
  expect(Object.keys(functions)).toHaveLength(3);
});

test('the dump runs as a Fargate task with the job in its environment, waiting for completion', () => {
  const dump = (definitionOf().States as Record<string, Record<string, unknown>>).Dump;
  expect(dump.Resource).toMatch(/:states:::ecs:runTask\.sync$/);
  expect(JSON.stringify(dump.Parameters)).toContain('"Name":"PGFERRY_JOB","Value.$":"$.job"');
});

test('only failures to start the dump task are retried', () => {
  const dump = (definitionOf().States as Record<string, { Retry: { ErrorEquals: string[] }[] }>).Dump;
  expect(dump.Retry.flatMap((r) => r.ErrorEquals)).toEqual(['ECS.AmazonECSException', 'ECS.ServerException']);
});

test('the backup bucket blocks public access, is encrypted and versioned', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    PublicAccessBlockConfiguration: {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    },
    BucketEncryption: Match.anyValue(),
    VersioningConfiguration: { Status: 'Enabled' },
  });
});

test('the bucket refuses requests without TLS', () => {
  template.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]),
    },
  });
});

test('the pg-tools container knows where the client tools of every major are', () => {
  template.hasResourceProperties('AWS::ECS::TaskDefinition', {
    ContainerDefinitions: [
      Match.objectLike({
        Name: 'pg-tools',
        Environment: [
          {
            Name: 'PGFERRY_PG_BIN_DIRS',
            Value: Match.stringLikeRegexp('/usr/lib/postgresql/13/bin:.*/18/bin'),
          },
        ],
      }),
    ],
  });
});
