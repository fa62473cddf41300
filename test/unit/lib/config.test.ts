/** The deployment configuration: the example is valid, defaults are safe, mistakes fail synth clearly. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEFAULT_RETENTION } from '../../../core/retention';
import { EXAMPLE_CONFIG_PATH, loadConfig, type PgferryConfigInput, parseConfig } from '../../../lib/config';
import { ACCOUNT, existingVpc, minimalConfig, REGION } from './fixtures';

type DatabaseInput = PgferryConfigInput['databases'][number];

/** The minimal configuration with its one database changed by `change`. */
function withDatabase(change: (db: DatabaseInput) => DatabaseInput): PgferryConfigInput {
  const config = minimalConfig();
  return { ...config, databases: [change(config.databases[0])] };
}

function problemsOf(config: unknown): string {
  try {
    parseConfig(config);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the configuration was accepted');
}

test('the example configuration is valid', () => {
  expect(loadConfig(EXAMPLE_CONFIG_PATH).databases.length).toBeGreaterThan(0);
});

test('connections default to TLS with certificate and host name verification on port 5432', () => {
  const [db] = parseConfig(minimalConfig()).databases;
  expect(db.connection).toMatchObject({ sslmode: 'verify-full', port: 5432 });
});

test('schedules default to UTC with a 15-minute flexible window', () => {
  const [db] = parseConfig(minimalConfig()).databases;
  expect(db.backupSchedules[0]).toMatchObject({ timeZone: 'Europe/Berlin', flexibleWindowMinutes: 15 });
  const utc = withDatabase((d) => ({ ...d, backupSchedules: [{ cron: '0 3 * * ? *' }] }));
  expect(parseConfig(utc).databases[0].backupSchedules[0].timeZone).toBe('UTC');
});

test('the retention policy defaults to the core default', () => {
  expect(parseConfig(minimalConfig()).retention).toEqual(DEFAULT_RETENTION);
});

test('a plain password in a connection is refused: credentials are Secrets Manager ARNs', () => {
  const config = withDatabase((d) => ({
    ...d,
    connection: { ...d.connection, password: 'hunter2' } as never,
  }));
  expect(problemsOf(config)).toMatch(/databases\.0\.connection: Unrecognized key: "password"/);
});

test('a secret ARN without its 6-character suffix is refused', () => {
  const config = withDatabase((d) => ({
    ...d,
    connection: {
      ...d.connection,
      passwordSecretArn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:shop`,
    },
  }));
  expect(problemsOf(config)).toMatch(/databases\.0\.connection\.passwordSecretArn: must be the complete ARN/);
});

test('a secret in another region than the stack is refused', () => {
  const config = { ...minimalConfig(), region: 'us-east-2' };
  expect(problemsOf(config)).toMatch(
    /passwordSecretArn: the secret must be in the stack's account and region/,
  );
});

test.each(['disable', 'prefer', 'require'])(
  'sslmode %s is refused on AWS: only verify-full or verify-ca authenticate the server',
  (sslmode) => {
    const config = withDatabase((d) => ({
      ...d,
      connection: { ...d.connection, sslmode: sslmode as never },
    }));
    expect(problemsOf(config)).toMatch(
      /databases\.0\.connection\.sslmode: on AWS only "verify-full" \(the default\) or "verify-ca" is accepted/,
    );
  },
);

test('sslmode verify-ca is accepted (checked against the RDS certificate authorities)', () => {
  const config = withDatabase((d) => ({ ...d, connection: { ...d.connection, sslmode: 'verify-ca' } }));
  expect(parseConfig(config).databases[0].connection.sslmode).toBe('verify-ca');
});

test('a cron expression needs six fields', () => {
  const config = withDatabase((d) => ({ ...d, backupSchedules: [{ cron: '0 3 * * *' }] }));
  expect(problemsOf(config)).toMatch(/databases\.0\.backupSchedules\.0\.cron: cron needs 6 fields/);
});

test('a cron expression needs "?" in exactly one day field', () => {
  const config = withDatabase((d) => ({ ...d, backupSchedules: [{ cron: '0 3 * * * *' }] }));
  expect(problemsOf(config)).toMatch(/cron needs "\?" in exactly one of day-of-month/);
});

test('an unknown time zone is refused', () => {
  const config = withDatabase((d) => ({
    ...d,
    backupSchedules: [{ cron: '0 3 * * ? *', timeZone: 'Mars/Olympus' }],
  }));
  expect(problemsOf(config)).toMatch(/timeZone: not an IANA time zone/);
});

test('a database needs a network placement', () => {
  const config = withDatabase((d) => ({ ...d, network: {} }));
  expect(problemsOf(config)).toMatch(/databases\.0\.network: name the database security group/);
});

test("two servers' databases of the same name may both be configured: backups are filed under their ids", () => {
  const config = minimalConfig();
  const second = {
    ...config.databases[0],
    id: 'shop-eu',
    connection: {
      ...config.databases[0].connection,
      host: 'shop.def.eu-west-1.rds.amazonaws.com',
      passwordSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-eu-GhIjKl',
    },
  };
  expect(() => parseConfig({ ...config, databases: [config.databases[0], second] })).not.toThrow();
});

test('one database configured twice is refused (two ids would be two catalogs of the same backups)', () => {
  const config = minimalConfig();
  const second = { ...config.databases[0], id: 'shop-again' };
  expect(problemsOf({ ...config, databases: [config.databases[0], second] })).toMatch(
    /databases\.1\.connection: shop\.abc\.eu-west-1\.rds\.amazonaws\.com:5432\/shop is already databases\.0/,
  );
});

test('an alarm threshold beyond 7 days is refused (CloudWatch evaluates at most 7 days)', () => {
  const config = withDatabase((d) => ({ ...d, alarmAfterHours: 169 }));
  expect(problemsOf(config)).toMatch(/databases\.0\.alarmAfterHours/);
});

test('every problem is listed, each with its field', () => {
  const config = withDatabase((d) => ({ ...d, id: '1-bad', backupSchedules: [] }));
  const message = problemsOf(config);
  expect(message).toMatch(/databases\.0\.id/);
  expect(message).toMatch(/databases\.0\.backupSchedules: give at least one backup schedule/);
});

test('a configuration file that is not JSON fails naming the file', () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-config-')), 'broken.json');
  writeFileSync(file, '{ "databases": [');
  expect(() => loadConfig(file)).toThrow(`the pgferry configuration ${file} is not JSON`);
});

describe('the network: a database the chosen VPC cannot reach fails synth, naming the field', () => {
  const NEW_VPC = { mode: 'create', cidr: '10.70.0.0/16' } as const;

  test("the VPC must be named: the databases' own (existing) or a new one", () => {
    const { vpc: _omitted, ...config } = minimalConfig();
    expect(problemsOf(config)).toMatch(/^ {2}vpc: /m);
  });

  test("a database's security group with a new VPC is refused: it is in another VPC", () => {
    expect(problemsOf(minimalConfig({ vpc: NEW_VPC }))).toMatch(
      /databases\.0\.network\.securityGroupId: a security group belongs to one VPC, and vpc\.mode "create" makes a new one/,
    );
  });

  test("a target's security group with a new VPC is refused likewise", () => {
    const config = minimalConfig({ vpc: NEW_VPC });
    config.databases[0].network = { cidr: '10.70.8.0/24' };
    config.targets = [{ ...target(), network: { securityGroupId: 'sg-0123456789abcdef1' } }];
    expect(problemsOf(config)).toMatch(
      /targets\.0\.network\.securityGroupId: a security group belongs to one VPC/,
    );
  });

  test('a database range outside the VPC and outside every routed range is refused', () => {
    const config = withDatabase((d) => ({ ...d, network: { cidr: '10.20.0.0/16' } }));
    expect(problemsOf(config)).toMatch(
      /databases\.0\.network\.cidr: 10\.20\.0\.0\/16 is outside the VPC \(10\.0\.0\.0\/16\) and outside every range routed to it/,
    );
  });

  test('a database range that is only partly routed is refused', () => {
    const config = withDatabase((d) => ({ ...d, network: { cidr: '10.20.0.0/15' } }));
    config.vpc = existingVpc({ routedCidrs: ['10.20.0.0/16'] });
    expect(problemsOf(config)).toMatch(/databases\.0\.network\.cidr: 10\.20\.0\.0\/15 is outside the VPC/);
  });

  test('a database range inside the VPC, or inside a routed range, is accepted', () => {
    const inside = withDatabase((d) => ({ ...d, network: { cidr: '10.0.32.0/24' } }));
    expect(() => parseConfig(inside)).not.toThrow();
    const routed = withDatabase((d) => ({ ...d, network: { cidr: '10.20.4.0/24' } }));
    routed.vpc = existingVpc({ routedCidrs: ['10.20.0.0/16'] });
    expect(() => parseConfig(routed)).not.toThrow();
  });

  test('an existing VPC needs its own range (synth looks nothing up)', () => {
    const { cidr: _omitted, ...vpc } = existingVpc();
    expect(problemsOf(minimalConfig({ vpc: vpc as never }))).toMatch(/vpc\.cidr: /);
  });

  test('a range that is not an IPv4 CIDR block is refused', () => {
    const config = withDatabase((d) => ({ ...d, network: { cidr: '10.0.300.0/24' } }));
    expect(problemsOf(config)).toMatch(/databases\.0\.network\.cidr: an IPv4 CIDR block/);
  });

  test('creating the S3 gateway endpoint in an existing VPC needs its route tables', () => {
    const { privateSubnetRouteTableIds: _omitted, ...vpc } = existingVpc();
    expect(problemsOf(minimalConfig({ vpc: vpc as never }))).toMatch(
      /vpc\.privateSubnetRouteTableIds: the S3 gateway endpoint is added to the route tables/,
    );
    const existingS3 = { ...vpc, endpoints: { s3: 'existing' } };
    expect(() => parseConfig(minimalConfig({ vpc: existingS3 as never }))).not.toThrow();
  });

  test("using the VPC's own interface endpoints needs their security groups", () => {
    const vpc = existingVpc({ endpoints: { interface: 'existing' } });
    expect(problemsOf(minimalConfig({ vpc: vpc as never }))).toMatch(
      /vpc\.endpoints\.securityGroupIds: with interface: existing, name the security groups/,
    );
  });

  test('a NAT gateway is no longer an option: pgferry reaches AWS through VPC endpoints', () => {
    expect(problemsOf(minimalConfig({ vpc: { ...NEW_VPC, natGateways: 1 } as never }))).toMatch(
      /vpc: Unrecognized key: "natGateways"/,
    );
  });
});

/** A restore target on the minimal configuration's server, in another database. */
function target(): NonNullable<PgferryConfigInput['targets']>[number] {
  const [db] = minimalConfig().databases;
  return {
    id: 'shop-drill',
    connection: { ...db.connection, database: 'shop_restored' },
    network: db.network,
  };
}

describe('targets: where restores and migrations may write', () => {
  test('a target needs no schedule and is not a source', () => {
    const parsed = parseConfig(minimalConfig({ targets: [target()] }));
    expect(parsed.targets[0]).toMatchObject({ id: 'shop-drill', anyDatabase: false, cutoverEcsServices: [] });
  });

  test('a configured database is not a restore target unless it says restoreTarget: true', () => {
    expect(parseConfig(minimalConfig()).databases[0].restoreTarget).toBe(false);
  });

  test('a target that is a configured database is refused, pointing at restoreTarget', () => {
    const [db] = minimalConfig().databases;
    const config = minimalConfig({ targets: [{ ...target(), connection: db.connection }] });
    expect(problemsOf(config)).toMatch(
      /targets\.0\.connection: shop\.abc\.eu-west-1\.rds\.amazonaws\.com:5432\/shop is databases\.0: to restore into it, set restoreTarget: true there instead/,
    );
  });

  test('ids are unique across databases and targets', () => {
    const config = minimalConfig({ targets: [{ ...target(), id: 'SHOP' }] });
    expect(problemsOf(config)).toMatch(/targets\.0\.id: id "SHOP" is already used by databases\.0/);
  });

  test('a target logs in exactly one way, as a database does', () => {
    const { passwordSecretArn: _omitted, ...connection } = target().connection;
    const config = minimalConfig({ targets: [{ ...target(), connection }] });
    expect(problemsOf(config)).toMatch(/targets\.0\.connection: give exactly one way to log in/);
  });

  test("a secret paired with another server than its first is refused: it holds one server's password", () => {
    const elsewhere = { ...target(), connection: { ...target().connection, host: 'other.example.com' } };
    expect(problemsOf(minimalConfig({ targets: [elsewhere] }))).toMatch(
      /targets\.0\.connection\.passwordSecretArn: this secret is backup@shop\.abc\.eu-west-1\.rds\.amazonaws\.com:5432's \(databases\.0\)/,
    );
  });

  test('the same secret for another database of the same server and user is accepted', () => {
    expect(() => parseConfig(minimalConfig({ targets: [target()] }))).not.toThrow();
  });

  test('a target sslmode weaker than verify-ca is refused', () => {
    const weak = { ...target(), connection: { ...target().connection, sslmode: 'require' as never } };
    expect(problemsOf(minimalConfig({ targets: [weak] }))).toMatch(
      /targets\.0\.connection\.sslmode: on AWS only/,
    );
  });
});

test("a database's scope is pg_dump's patterns, each checked", () => {
  const scoped = withDatabase((d) => ({
    ...d,
    scope: { tables: ['public.orders'], excludeTableData: ['log_*'] },
  }));
  expect(parseConfig(scoped).databases[0].scope).toMatchObject({ tables: ['public.orders'] });
  const empty = withDatabase((d) => ({ ...d, scope: { excludeTables: [''] } }));
  expect(problemsOf(empty)).toMatch(
    /databases\.0\.scope\.excludeTables\.0: a pattern needs a schema or table name/,
  );
  const unknown = withDatabase((d) => ({ ...d, scope: { table: ['orders'] } as never }));
  expect(problemsOf(unknown)).toMatch(/databases\.0\.scope: Unrecognized key: "table"/);
});
