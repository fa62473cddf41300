import { parseConnectionUrl, resolvePassword } from '../../../core/connection';
import { libpqEnv } from '../../../core/postgres/connect';

test('parses every part of a URL, decoding special characters in user and password', () => {
  const { connection, password } = parseConnectionUrl(
    'postgres://app%40team:p%40ss%3Aw%2Frd%25%23%3F@db.example.com:6543/My%20DB?sslmode=verify-full&sslrootcert=/ca.pem',
  );
  expect(connection).toEqual({
    host: 'db.example.com',
    port: 6543,
    database: 'My DB',
    user: 'app@team',
    sslmode: 'verify-full',
    sslrootcert: '/ca.pem',
  });
  expect(password).toBe('p@ss:w/rd%#?');
});

test('defaults to port 5432, user postgres and sslmode prefer', () => {
  expect(parseConnectionUrl('postgresql://localhost/db')).toEqual({
    connection: { host: 'localhost', port: 5432, database: 'db', user: 'postgres', sslmode: 'prefer' },
    password: undefined,
  });
});

test.each([
  ['not a url', /is not a URL/],
  ['mysql://h/db', /must start with postgres:\/\//],
  ['postgres://h', /names no database/],
  ['postgres://h/db?sslmode=sometimes', /unknown sslmode/],
  ['postgres://h/db?options=-c%20x', /unsupported parameter: options/],
  ['postgres://u:%E0%A4%A@h/db', /malformed percent-encoding in its password/],
])('refuses %j with a clear message', (url, message) => {
  expect(() => parseConnectionUrl(url)).toThrow(message);
});

test('libpq tools get the password through PGPASSWORD, never an argument', () => {
  const { connection } = parseConnectionUrl('postgres://u@h:5433/db?sslmode=require');
  expect(libpqEnv(connection, 'secret')).toMatchObject({
    PGHOST: 'h',
    PGPORT: '5433',
    PGUSER: 'u',
    PGDATABASE: 'db',
    PGSSLMODE: 'require',
    PGPASSWORD: 'secret',
  });
});

test('a password comes from the named secret first, else from the environment', async () => {
  const { connection } = parseConnectionUrl('postgres://u@h/db');
  const env = { PGFERRY_SOURCE_PASSWORD: 'from-env' };
  expect(await resolvePassword(connection, 'source', env)).toBe('from-env');
  expect(await resolvePassword(connection, 'target', env)).toBeUndefined();
  const withSecret = {
    ...connection,
    passwordSecretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:db-AbCd',
  };
  expect(await resolvePassword(withSecret, 'source', env, async (arn) => `secret of ${arn.slice(-4)}`)).toBe(
    'secret of AbCd',
  );
});

describe('RDS IAM authentication', () => {
  const { connection } = parseConnectionUrl('postgres://backup@db.example.com:5433/shop?sslmode=verify-full');
  const iam = { ...connection, iamAuth: true };

  test('the password is a fresh token signed for the host, port and user', async () => {
    // The signer signs with the standard credential chain: here, credentials in the environment.
    const saved = { ...process.env };
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret' });
    try {
      const token = await resolvePassword(iam, 'source', { AWS_REGION: 'eu-west-1' });
      expect(token).toMatch(
        /^db\.example\.com:5433\/\?Action=connect&DBUser=backup&.*X-Amz-Signature=[0-9a-f]{64}/,
      );
    } finally {
      process.env = saved;
    }
  });

  test('is refused together with a password secret', async () => {
    const both = {
      ...iam,
      passwordSecretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:db-AbCd',
    };
    await expect(resolvePassword(both, 'source', {})).rejects.toThrow(/either iamAuth or passwordSecretArn/);
  });

  test('is refused without TLS', async () => {
    await expect(resolvePassword({ ...iam, sslmode: 'prefer' }, 'source', {})).rejects.toThrow(/needs TLS/);
  });
});
