/**
 * When a migration's schema test runs (`decideSchemaTest`): as the request says, else exactly when
 * something changes before the migration's own schema step, or a failure there would cost more.
 */
import { decideSchemaTest } from '../../../../../lambdas/migrate/preflight/preflight';

const newDatabase = { target: { database: 'app' }, targetExists: false } as const;
const existingDatabase = { target: { database: 'app' }, targetExists: true } as const;
const plain = { freezeSource: false, online: false, force: false } as const;
type Request = Parameters<typeof decideSchemaTest>[0];
type Databases = Parameters<typeof decideSchemaTest>[1];

const decide = (request: Partial<Request>, databases: readonly unknown[] = [newDatabase]) =>
  decideSchemaTest({ ...plain, ...request }, databases as Databases);

test('a plain migration into a database it creates: no schema test (its own schema step is the test)', () => {
  expect(decide({})).toEqual({
    run: false,
    reason: expect.stringMatching(/nothing changes before .* a failure there drops that database/),
  });
});

test.each<[string, Partial<Request>, readonly unknown[], RegExp]>([
  ['freezeSource', { freezeSource: true }, [newDatabase], /read-only first \(freezeSource\)/],
  ['online', { online: true }, [newDatabase], /replication on the source first \(online\)/],
  [
    'an existing empty target database',
    {},
    [existingDatabase],
    /target database app exists: a failed migration would drop it/,
  ],
  [
    'an existing target database replaced (force)',
    { force: true },
    [existingDatabase],
    /app exists: it is dropped and created again \(force\)/,
  ],
  [
    'more than one database (allDatabases)',
    {},
    [newDatabase, { target: { database: 'other' }, targetExists: false }],
    /2 databases/,
  ],
  [
    'services to scale down',
    { cutover: { ecsServices: [{ cluster: 'c', service: 's', desiredCount: 1 }] } },
    [newDatabase],
    /scaled down first/,
  ],
])('auto, with %s: the schema test runs, saying why', (_, request, databases, reason) => {
  expect(decide(request, databases)).toEqual({ run: true, reason: expect.stringMatching(reason) });
});

test('force with no existing target database protects nothing', () => {
  expect(decide({ force: true }).run).toBe(false);
});

test('every reason that applies is given', () => {
  const { reason } = decide({ freezeSource: true }, [existingDatabase]);
  expect(reason).toMatch(/freezeSource.*; the target database app exists/);
});

test('a cutover secret or command (after the data) protects nothing: no schema test', () => {
  expect(decide({ cutover: { secretArn: 'arn:x', command: 'true', ecsServices: [] } }).run).toBe(false);
});

test('schemaTest true always runs it, false never (as before)', () => {
  expect(decide({ schemaTest: true })).toEqual({
    run: true,
    reason: expect.stringMatching(/schemaTest: true/),
  });
  expect(decide({ schemaTest: false, freezeSource: true, online: true }, [existingDatabase])).toEqual({
    run: false,
    reason: expect.stringMatching(/schemaTest: false/),
  });
});
