/** The deployment configuration: the example is valid, defaults are safe, mistakes fail synth clearly. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEFAULT_RETENTION } from '../../core/retention';
import { EXAMPLE_CONFIG_PATH, loadConfig, type PgferryConfigInput, parseConfig } from '../../lib/config';
import { ACCOUNT, minimalConfig, REGION } from './fixtures';

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

test('a connection without TLS is refused', () => {
  const config = withDatabase((d) => ({
    ...d,
    connection: { ...d.connection, sslmode: 'disable' as never },
  }));
  expect(problemsOf(config)).toMatch(/databases\.0\.connection\.sslmode/);
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

test('two databases with the same name are refused: the store keeps backups by name', () => {
  const config = minimalConfig();
  const second = { ...config.databases[0], id: 'shop-replica' };
  expect(problemsOf({ ...config, databases: [config.databases[0], second] })).toMatch(
    /databases\.1\.connection: database name "shop" is already used by databases\.0/,
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
