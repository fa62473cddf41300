/**
 * The stack's headroom: CloudFormation takes at most 500 resources per stack (a nested stack is
 * one resource of its parent, its own resources its own). With every optional feature on, the
 * stack's fixed part is ~210 resources; the databases' schedules and alarms stay in the stack up
 * to MAX_DATABASE_RESOURCES_IN_STACK, else go to nested stacks (lib/fleet.ts). Each ceiling below
 * is asserted on the worst case the configuration allows at that point, with its reason; a stack
 * over 500 is refused at synthesis (by CDK) rather than by CloudFormation after a long deploy.
 */
import { App, CfnResource, NestedStack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { PgferryConfigInput } from '../../../lib/config';
import { parseConfig } from '../../../lib/config';
import {
  databaseResourceCount,
  MAX_DATABASE_RESOURCES_IN_STACK,
  MAX_DATABASE_RESOURCES_PER_NESTED_STACK,
} from '../../../lib/fleet';
import { PgferryStack } from '../../../lib/pgferry-stack';
import { FLEET_ACCOUNT, FLEET_REGION, fleetConfig, fleetServers } from '../../support/fleet';
import { synthesize, templateOf } from './fixtures';

/** CloudFormation's limit of resources in one stack (a nested stack is one of its parent's). */
const MAX_RESOURCES_PER_STACK = 500;

/** The next feature's room: the worst case at the in-stack maximum keeps this many resources free. */
const ROOM_TO_GROW = 200;

/** Every optional feature on: a private API for two accounts, the runbooks with approvers, a target with cutover, a server entry. */
function everyFeature(
  databases: NonNullable<PgferryConfigInput['databases']>,
  overrides: Partial<PgferryConfigInput> = {},
): PgferryConfigInput {
  return fleetConfig(
    { servers: 0, databasesPerServer: 0 },
    {
      databases,
      api: {
        enabled: true,
        endpoint: 'private',
        vpcEndpointIds: ['vpce-0123456789abcdef0'],
        allowedAccountIds: ['210987654321'],
      },
      console: {
        enabled: true,
        approvers: [`arn:aws:iam::${FLEET_ACCOUNT}:role/dba-lead`],
        minRequiredApprovals: 1,
        requireApproval: true,
      },
      notifications: { emails: ['dba-oncall@example.com'], notifyOnSuccess: true },
      bucket: {
        objectLock: { mode: 'governance', retentionDays: 14 },
        readerRoleArns: [`arn:aws:iam::${FLEET_ACCOUNT}:role/dba`],
        breakGlassRoleArn: `arn:aws:iam::${FLEET_ACCOUNT}:role/pgferry-break-glass`,
      },
      servers: fleetServers(90, 1),
      targets: [
        {
          id: 'drill',
          connection: {
            host: `drill.abcdefghijkl.${FLEET_REGION}.rds.amazonaws.com`,
            database: 'drill',
            user: 'pgferry_restore',
            passwordSecretArn: `arn:aws:secretsmanager:${FLEET_REGION}:${FLEET_ACCOUNT}:secret:pgferry/drill-AbCdEf`,
          },
          network: { securityGroupId: 'sg-0fedcba9876543210' },
          cutoverEcsServices: [{ cluster: 'shop', service: 'shop-api' }],
        },
      ],
      ...overrides,
    },
  );
}

/**
 * Databases whose own resources (with the server entry's 4) fill the stack's maximum exactly:
 * each backed up and verified (3), the last one not verified (2). On `servers` servers, each
 * server behind a security group of its own.
 */
function fillingTheStack(servers: number): NonNullable<PgferryConfigInput['databases']> {
  const count = Math.ceil((MAX_DATABASE_RESOURCES_IN_STACK - 4) / 3);
  const perServer = Math.ceil(count / servers);
  const databases = fleetConfig({ servers, databasesPerServer: perServer }).databases.slice(0, count);
  const { verifySchedule: _, ...last } = databases[count - 1];
  return [...databases.slice(0, count - 1), last];
}

function measured(config: PgferryConfigInput) {
  const { stack } = synthesize(config);
  const parsed = parseConfig(config);
  const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, unknown> };
  const nested = stack.node.children.filter((c): c is NestedStack => c instanceof NestedStack);
  return {
    databaseResources: [...parsed.databases, ...parsed.servers].reduce(
      (sum, db) => sum + databaseResourceCount(db),
      0,
    ),
    resources: Object.keys(template.Resources).length,
    bytes: Buffer.byteLength(JSON.stringify(template)),
    nested: nested.map((n) => Object.keys(Template.fromStack(n).toJSON().Resources).length),
  };
}

describe(`every feature on, the databases' own resources at the stack's maximum (${MAX_DATABASE_RESOURCES_IN_STACK})`, () => {
  const shared = measured(everyFeature(fillingTheStack(1)));
  const apart = measured(everyFeature(fillingTheStack(19)));

  test('the databases are all in the stack: one resource more would move them to nested stacks', () => {
    for (const m of [shared, apart]) {
      expect(m.databaseResources).toBe(MAX_DATABASE_RESOURCES_IN_STACK);
      expect(m.nested).toEqual([]);
    }
  });

  test(`the stack keeps ${ROOM_TO_GROW} of CloudFormation's ${MAX_RESOURCES_PER_STACK} resources free for what comes next`, () => {
    // Measured: 275 (the databases on one server, behind one security group; 261 KB).
    expect(shared.resources).toBeLessThanOrEqual(MAX_RESOURCES_PER_STACK - ROOM_TO_GROW);
  });

  test('with a security group per database (two rules each in the stack), at most 340', () => {
    // Measured: 311 (281 KB). The rules stay in the stack whatever the placement: at AWS's
    // default of 60 egress rules on the clients' group, ~58 groups add at most ~116.
    expect(apart.resources).toBeLessThanOrEqual(340);
    expect(apart.resources - shared.resources).toBe(2 * 18);
  });

  test("the template is far under CloudFormation's 1 MB", () => {
    expect(apart.bytes).toBeLessThan(1_000_000 / 3);
  });
});

describe('every feature on, one resource over the maximum: a fleet in nested stacks', () => {
  const databases = fillingTheStack(19);
  const over = measured(
    everyFeature([
      ...databases.slice(0, -1),
      fleetConfig({ servers: 19, databasesPerServer: 1 }).databases[18],
    ]),
  );

  test('each server goes to its nested stack; the stack holds the fixed part, one resource per nested stack and the rules', () => {
    expect(over.databaseResources).toBe(MAX_DATABASE_RESOURCES_IN_STACK + 1);
    // 19 database servers and the server entry's server.
    expect(over.nested).toHaveLength(20);
    // Measured: 271 (the 61 resources replaced by 20 nested stacks of 3 or 4 each).
    expect(over.resources).toBeLessThanOrEqual(MAX_RESOURCES_PER_STACK - ROOM_TO_GROW);
  });

  test(`each nested stack holds at most ${MAX_DATABASE_RESOURCES_PER_NESTED_STACK} resources (its servers' schedules and alarms; the limit is CloudFormation's 500)`, () => {
    for (const count of over.nested)
      expect(count).toBeLessThanOrEqual(MAX_DATABASE_RESOURCES_PER_NESTED_STACK);
  });
});

test(`a stack over CloudFormation's ${MAX_RESOURCES_PER_STACK} resources is refused at synthesis (CDK's own check), not after a deploy`, () => {
  const config = parseConfig(fleetConfig({ servers: 1, databasesPerServer: 1 }));
  const free =
    MAX_RESOURCES_PER_STACK -
    Object.keys(templateOf(fleetConfig({ servers: 1, databasesPerServer: 1 })).toJSON().Resources).length;
  const app = new App({ builtinCloudFormationValidation: false, context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new PgferryStack(app, 'Test', {
    env: { account: FLEET_ACCOUNT, region: FLEET_REGION },
    config,
  });
  for (let i = 0; i <= free; i++) new CfnResource(stack, `Filler${i}`, { type: 'AWS::SQS::Queue' });
  expect(() => app.synth()).toThrow(
    `Number of resources in stack 'Test': ${MAX_RESOURCES_PER_STACK + 1} is greater than allowed maximum of ${MAX_RESOURCES_PER_STACK}`,
  );
});
