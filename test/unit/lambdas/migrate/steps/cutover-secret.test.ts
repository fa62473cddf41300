/**
 * The cutover on AWS points the application's secret at the target: its connection fields are
 * replaced, everything else (the password) kept, and nothing of the value is returned.
 */
import type { MigratePlan } from '../../../../../core/contracts';
import { PgferryError } from '../../../../../core/errors';
import {
  pointSecretAt,
  type SecretsApi,
  updateCutoverSecret,
} from '../../../../../lambdas/migrate/steps/cutover-secret';

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/app-AbCdEf';
const PASSWORD = 'app-password-kept-as-is';

/** Only the parts of a plan the cutover reads. */
const plan = {
  migrateId: '20261122T030000Z-abcdef',
  request: { cutover: { secretArn: SECRET_ARN } },
  cutoverSecretFields: { host: 'new.example.internal', port: 5433, dbname: 'shop' },
} as unknown as MigratePlan;

/** Secrets Manager as a map of ARN → value, remembering what was written. */
function fakeSecrets(initial: string): SecretsApi & { written: string[] } {
  let value = initial;
  const written: string[] = [];
  return {
    written,
    async getSecretString() {
      return value;
    },
    async putSecretString(_arn, next) {
      written.push(next);
      value = next;
      return 'v2';
    },
  };
}

test("host, port and dbname become the target's; the username, password and other fields are kept", () => {
  const current = JSON.stringify({
    engine: 'postgres',
    host: 'old.example.internal',
    port: 5432,
    dbname: 'shop',
    username: 'app',
    password: PASSWORD,
  });
  expect(JSON.parse(pointSecretAt(current, { host: 'new', port: 5433, dbname: 'shop2' }))).toEqual({
    engine: 'postgres',
    host: 'new',
    port: 5433,
    dbname: 'shop2',
    username: 'app',
    password: PASSWORD,
  });
});

test.each([['not json'], ['"a string"'], ['[1,2]'], ['null'], [undefined]])(
  'a secret that is not a JSON object (%s) is refused, not overwritten',
  (value) => {
    expect(() => pointSecretAt(value, { host: 'new' })).toThrow(PgferryError);
    expect(() => pointSecretAt(value, { host: 'new' })).toThrow(/not a JSON object.*left unchanged/);
  },
);

test('the update writes the merged secret and returns its ARN, version and field names — never the value', async () => {
  const api = fakeSecrets(JSON.stringify({ host: 'old', port: 5432, username: 'app', password: PASSWORD }));
  const result = await updateCutoverSecret(plan, api);
  expect(result).toEqual({ secretArn: SECRET_ARN, versionId: 'v2', fields: ['host', 'port', 'dbname'] });
  expect(JSON.stringify(result)).not.toContain(PASSWORD);
  expect(JSON.parse(api.written[0])).toMatchObject({ host: 'new.example.internal', password: PASSWORD });
});
