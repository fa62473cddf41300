/**
 * A runbook's form as the workflow's request (lambdas/console/request/runbook-request.ts): the
 * connections come from the deployment, never from the form; what is not configured or not offered
 * is refused with one line.
 */
import type { ConsoleDeployment } from '../../../../../core/console-deployment';
import { runbookRequest } from '../../../../../lambdas/console/request/runbook-request';

const STORE = 's3://pgferry-backups/backups';
const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf';
const source = {
  host: 'shop.abc.eu-west-1.rds.amazonaws.com',
  port: 5432,
  database: 'shop',
  user: 'pgferry_backup',
  sslmode: 'verify-full' as const,
  passwordSecretArn: SECRET,
};
const drill = { ...source, database: 'shop_restored' };

function deployment(offers = { cleanRestore: true, cutover: true }): ConsoleDeployment {
  return {
    version: 1,
    databases: [
      {
        id: 'shop',
        alarmAfterHours: 26,
        backup: {
          name: 'shop',
          source,
          withRolePasswords: false,
          scope: { tables: ['public.orders'] },
          origin: 'scheduled',
        },
        restoreTarget: false,
      },
      {
        id: 'billing',
        alarmAfterHours: 26,
        backup: { name: 'billing', source: { ...source, database: 'billing' } },
        restoreTarget: true,
      },
    ],
    targets: [
      { id: 'shop-drill', connection: drill, cutoverEcsServices: [] },
      {
        id: 'shop-pg17',
        connection: { ...source, host: 'pg17.abc' },
        cutoverEcsServices: [{ cluster: 'prod', service: 'api' }],
      },
    ],
    offers,
  };
}

test('a restore: the target connection and the backup named by the form, the guard rails at their defaults', () => {
  const request = runbookRequest(deployment(), STORE, {
    kind: 'restore',
    database: 'shop',
    target: 'shop-drill',
    backup: 'latest',
    mode: 'clean',
  });
  expect(request).toMatchObject({
    store: STORE,
    backup: 'latest',
    name: 'shop',
    target: drill,
    mode: 'clean',
    force: false,
    safetyBackup: true,
  });
});

test('a restore into a database configured with restoreTarget; not into one without it', () => {
  expect(
    runbookRequest(deployment(), STORE, {
      kind: 'restore',
      database: 'shop',
      target: 'billing',
      backup: 'latest',
      mode: 'create',
    }),
  ).toMatchObject({
    target: { database: 'billing' },
  });
  expect(() =>
    runbookRequest(deployment(), STORE, {
      kind: 'restore',
      database: 'billing',
      target: 'shop',
      backup: 'latest',
      mode: 'create',
    }),
  ).toThrow(
    'target "shop" is not configured (configured: shop-drill, shop-pg17, billing): configure it and deploy',
  );
});

test("a backup is the schedule's request (scope included), filed as manual", () => {
  expect(runbookRequest(deployment(), STORE, { kind: 'backup', database: 'shop' })).toMatchObject({
    name: 'shop',
    source,
    store: STORE,
    scope: { tables: ['public.orders'] },
    origin: 'manual',
  });
});

test('a verification names the backup and the database only', () => {
  expect(
    runbookRequest(deployment(), STORE, {
      kind: 'verify',
      database: 'shop',
      backup: '20261202T021500Z-3fa9c1',
    }),
  ).toEqual({
    store: STORE,
    backup: '20261202T021500Z-3fa9c1',
    name: 'shop',
  });
});

test("a migration with cutover scales the target's configured services; SSM's text parameters are read", () => {
  const request = runbookRequest(deployment(), STORE, {
    kind: 'migrate',
    database: 'shop',
    target: 'shop-pg17',
    cutover: 'ecs-services',
    cutoverDesiredCount: '3',
    freezeSource: 'true',
  }) as Record<string, unknown>;
  expect(request).toMatchObject({
    name: 'shop',
    source,
    target: { host: 'pg17.abc' },
    freezeSource: true,
    cutover: { ecsServices: [{ cluster: 'prod', service: 'api', desiredCount: 3 }] },
  });
  expect(() =>
    runbookRequest(deployment(), STORE, {
      kind: 'migrate',
      database: 'shop',
      target: 'shop-drill',
      cutover: 'ecs-services',
      cutoverDesiredCount: 1,
      freezeSource: false,
    }),
  ).toThrow('target "shop-drill" has no cutoverEcsServices');
});

test('what the deployment does not offer is refused even when the form is bypassed', () => {
  const closed = deployment({ cleanRestore: false, cutover: false });
  expect(() =>
    runbookRequest(closed, STORE, {
      kind: 'restore',
      database: 'shop',
      target: 'shop-drill',
      backup: 'latest',
      mode: 'clean',
    }),
  ).toThrow('a restore in clean mode needs an approver: configure console.approvers and deploy');
  expect(() =>
    runbookRequest(closed, STORE, {
      kind: 'migrate',
      database: 'shop',
      target: 'shop-pg17',
      cutover: 'ecs-services',
      cutoverDesiredCount: 1,
      freezeSource: false,
    }),
  ).toThrow('a migration with cutover needs an approver');
});

test('an unconfigured database, a connection in the form or a bad backup id is refused in one line', () => {
  expect(() => runbookRequest(deployment(), STORE, { kind: 'backup', database: 'payroll' })).toThrow(
    'database "payroll" is not configured (configured: shop, billing): configure it and deploy',
  );
  expect(() =>
    runbookRequest(deployment(), STORE, { kind: 'backup', database: 'shop', source: { host: 'evil' } }),
  ).toThrow(/invalid runbook parameters/);
  expect(() =>
    runbookRequest(deployment(), STORE, { kind: 'verify', database: 'shop', backup: '../x' }),
  ).toThrow(/invalid verify request/);
});
