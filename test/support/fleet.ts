/**
 * A generated fleet configuration: `servers` RDS instances of `databasesPerServer` databases each,
 * every server in its own security group with one login (one password secret) shared by its
 * databases, every database backed up nightly at 02:00 UTC and verified weekly. What the
 * template tests synthesize to show that a fleet of hundreds of databases stays within
 * CloudFormation's, IAM's and the VPC's limits (test/unit/lib/fleet.test.ts).
 */
import type { PgferryConfigInput } from '../../lib/config';

export const FLEET_ACCOUNT = '123456789012';
export const FLEET_REGION = 'eu-west-1';

export interface FleetShape {
  readonly servers: number;
  readonly databasesPerServer: number;
  /** A weekly verification of every database (a second schedule each). @default true */
  readonly verify?: boolean;
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** The server's id and the database's: `s07` and `s07-db03`. */
export function fleetDatabaseId(server: number, database: number): string {
  return `s${String(server + 1).padStart(2, '0')}-db${String(database + 1).padStart(2, '0')}`;
}

/** The fleet's databases, the servers alternating between the VPC's two zones. */
export function fleetDatabases(shape: FleetShape): NonNullable<PgferryConfigInput['databases']> {
  const databases: NonNullable<PgferryConfigInput['databases']> = [];
  for (let s = 0; s < shape.servers; s++) {
    const host = `fleet-${hex(s, 4)}.abcdefghijkl.${FLEET_REGION}.rds.amazonaws.com`;
    for (let d = 0; d < shape.databasesPerServer; d++) {
      databases.push({
        id: fleetDatabaseId(s, d),
        connection: {
          host,
          database: `app_${d + 1}`,
          user: 'pgferry_backup',
          passwordSecretArn: `arn:aws:secretsmanager:${FLEET_REGION}:${FLEET_ACCOUNT}:secret:pgferry/fleet-${hex(s, 4)}-AbCdEf`,
        },
        network: { securityGroupId: `sg-0f1ee7${hex(s, 11)}` },
        availabilityZone: s % 2 === 0 ? `${FLEET_REGION}a` : `${FLEET_REGION}b`,
        backupSchedules: [{ cron: '0 2 * * ? *', flexibleWindowMinutes: 60 }],
        ...((shape.verify ?? true) ? { verifySchedule: { cron: `0 ${s % 6} ? * SUN *` } } : {}),
      });
    }
  }
  return databases;
}

/** A whole configuration around the fleet, in the databases' VPC. */
export function fleetConfig(
  shape: FleetShape,
  overrides: Partial<PgferryConfigInput> = {},
): PgferryConfigInput {
  return {
    account: FLEET_ACCOUNT,
    region: FLEET_REGION,
    vpc: {
      mode: 'existing',
      vpcId: 'vpc-0123456789abcdef0',
      cidr: '10.0.0.0/16',
      availabilityZones: [`${FLEET_REGION}a`, `${FLEET_REGION}b`],
      privateSubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
      privateSubnetRouteTableIds: ['rtb-0123456789abcdef0', 'rtb-0123456789abcdef1'],
    },
    databases: fleetDatabases(shape),
    ...overrides,
  };
}

/**
 * Server entries (`servers[]`, `databases: "all"`) for the servers numbered `from` to `from + count - 1`
 * (distinct from `fleetDatabases`' servers): each one schedule, at most 4 of its databases at once.
 */
export function fleetServers(from: number, count: number): NonNullable<PgferryConfigInput['servers']> {
  return Array.from({ length: count }, (_, i) => {
    const s = from + i;
    return {
      id: `srv${String(s + 1).padStart(2, '0')}`,
      connection: {
        host: `fleet-${hex(s, 4)}.abcdefghijkl.${FLEET_REGION}.rds.amazonaws.com`,
        database: 'postgres',
        user: 'pgferry_backup',
        passwordSecretArn: `arn:aws:secretsmanager:${FLEET_REGION}:${FLEET_ACCOUNT}:secret:pgferry/fleet-${hex(s, 4)}-AbCdEf`,
      },
      network: { securityGroupId: `sg-0f1ee7${hex(s, 11)}` },
      availabilityZone: s % 2 === 0 ? `${FLEET_REGION}a` : `${FLEET_REGION}b`,
      databases: 'all' as const,
      maxConcurrency: 4,
      backupSchedules: [{ cron: '0 2 * * ? *', flexibleWindowMinutes: 60 }],
    };
  });
}
