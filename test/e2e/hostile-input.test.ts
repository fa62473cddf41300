/**
 * Hostile input at the edges a user or an attacker controls: backup ids and database names shaped
 * like paths, quotes and very long strings on the command line; garbage and oversized input to
 * each workflow's first state through the local executor; a user and password made of
 * URL-special characters. Nothing is read or written outside the store's database folders.
 * (A NUL cannot be passed in a process's arguments; it is covered as state input in
 * test/unit/core/hostile-input.test.ts.)
 */
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { runCli, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  quoteLiteral,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';

const pg = testEnv().server(15);
const victim = uniqueName('victim');
/** `<parent>/store` is the store the commands name; `<parent>/other` holds a real backup of `victim`. */
const parent = mkdtempSync(path.join(tmpdir(), 'pgferry-hostile-input-'));
const store = path.join(parent, 'store');
const other = path.join(parent, 'other');
let victimBackupId: string;

beforeAll(async () => {
  mkdirSync(store);
  await createSeededDatabase(pg, victim, 'CREATE TABLE t AS SELECT 1 AS id');
  const backup = await runCli(['backup', '--source', sourceUrl(pg, victim), '--store', other]);
  expect(backup.code).toBe(0);
  victimBackupId = backup.stdout.trim();
});
afterAll(() => dropDatabase(pg, victim));

/** Every path under the test's folder: what a command must leave unchanged. */
function tree(): string[] {
  return (readdirSync(parent, { recursive: true }) as string[]).sort();
}

/** Runs each command; each must fail with one short line, print nothing, and change no file. */
async function expectRefused(commands: string[][], message: RegExp): Promise<void> {
  const before = tree();
  const results = await Promise.all(commands.map((args) => runCli(args)));
  results.forEach((result, i) => {
    const what = commands[i].slice(0, 1).join(' ');
    expect({ what, code: result.code, stdout: result.stdout }).toEqual({ what, code: 1, stdout: '' });
    expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^pgferry: /)]);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.length).toBeLessThan(400);
  });
  expect(tree()).toEqual(before);
}

const hostileIds = () => [
  `../other/${victim}/${victimBackupId}`,
  `${victimBackupId}/../../other/${victim}`,
  '../../etc/passwd',
  '/etc/passwd',
  'a/b',
  `x'"; DROP DATABASE postgres; --`,
  'x'.repeat(100_000),
];

test.each(hostileIds().map((_, i) => [i]))(
  'hostile backup id #%i is refused by show, verify and restore',
  async (i) => {
    const id = hostileIds()[i];
    const target = sourceUrl(pg, uniqueName('never'));
    await expectRefused(
      [
        ['show', '--store', store, '--backup', id],
        ['verify', '--store', store, '--backup', id],
        ['restore', '--store', store, '--backup', id, '--target', target],
      ],
      /not a backup id|invalid (verify|restore) request: backup: not latest or a backup id/,
    );
  },
);

test.each([
  [`../other/<victim>`, () => `../other/${victim}`],
  ['an absolute path', () => `${other}/${victim}`],
  ['a name with slashes', () => `${victim}/../${victim}`],
  ['a quoted injection', () => `x'"; DROP DATABASE postgres; --`],
])('the database name %s finds nothing outside its own folder of the store', async (_, name) => {
  await expectRefused(
    [
      ['show', '--store', store, '--backup', 'latest', '--database', name()],
      ['verify', '--store', store, '--backup', 'latest', '--database', name()],
      ['show', '--store', store, '--backup', victimBackupId, '--database', name()],
    ],
    /no complete backup of .* in file:\/\/|backup \d{8}T\d{6}Z-[0-9a-f]{6} not found in file:\/\//,
  );
});

test('a catalog name longer than 128 bytes (a database name and its server, at most) is refused by show, verify and restore', async () => {
  const name = 'x'.repeat(100_000);
  await expectRefused(
    [
      ['show', '--store', store, '--backup', 'latest', '--database', name],
      ['verify', '--store', store, '--backup', 'latest', '--database', name],
      ['restore', '--store', store, '--backup', 'latest', '--database', name, '--target', sourceUrl(pg, 'x')],
    ],
    /catalog name is longer than 128 bytes/,
  );
});

test('a source URL with a very long host is refused in one short line', async () => {
  await expectRefused(
    [['backup', '--source', `postgres://u@${'h'.repeat(100_000)}:5432/db`, '--store', store]],
    /--source|host/,
  );
});

describe("each workflow's first state refuses garbage and oversized input in one line", () => {
  const garbage: [string, unknown][] = [
    ['null', null],
    ['a number', 42],
    ['a string', 'DROP DATABASE postgres'],
    ['an array', [{ store: `file://${store}` }]],
    ['an empty object', {}],
    ['an object with unknown keys', { 'x\ny': 1, store: `file://${store}` }],
    ['an oversized object', { store: `file://${store}`, backup: 'latest', pad: 'x'.repeat(300_000) }],
    ['deep nesting', JSON.parse(`${'{"a":'.repeat(500)}1${'}'.repeat(500)}`)],
  ];
  const workflows = [
    ['backup', 'runBackupWorkflow'],
    ['restore', 'runRestoreWorkflow'],
    ['verify', 'runVerifyWorkflow'],
  ] as const;

  beforeAll(() => {
    process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
  });

  test.each(
    workflows.flatMap(([name, fn]) => garbage.map(([what, input]) => [name, what, fn, input] as const)),
  )('%s workflow, %s', async (name, _, fn, input) => {
    const executor = await import('../../cli/local-executor');
    const before = tree();
    const failure = await executor[fn](input).then(
      () => new Error('the workflow succeeded'),
      (err: Error) => err,
    );
    expect(failure.name).toBe('Pgferry.InvalidInput');
    expect(failure.message).toMatch(new RegExp(`^invalid ${name} request: \\S`));
    expect(failure.message).not.toMatch(/[\n\r]/);
    expect(failure.message.length).toBeLessThan(1200);
    expect(tree()).toEqual(before);
  });
});

describe('a user and password made of URL-special characters', () => {
  const user = `pgferry u@s:e/r?#%&=+'"\\ ${process.pid}`;
  const password = `p@ss:w/rd%#?&=+ '"\\${process.pid}`;
  const database = uniqueName('special_user');
  const restored = uniqueName('special_user_restored');
  const url = (db: string) =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${pg.host}:${pg.port}/${db}`;

  beforeAll(async () => {
    await withClient(pg, 'postgres', (c) =>
      c.query(`CREATE ROLE ${quoteIdent(user)} LOGIN SUPERUSER PASSWORD ${quoteLiteral(password)}`),
    );
    await createSeededDatabase(
      pg,
      database,
      'CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g',
    );
  });
  afterAll(async () => {
    await dropDatabase(pg, database);
    await dropDatabase(pg, restored);
    await withClient(pg, 'postgres', (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(user)}`));
  });

  test('back up and restore, with the user recorded as it is', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-special-user-'));
    const backup = await runCli(['backup', '--source', url(database), '--store', dir, '--json']);
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    const manifest = JSON.parse(backup.stdout) as BackupManifest;
    expect(manifest.source.user).toBe(user);
    const restore = await runCli([
      'restore',
      '--store',
      dir,
      '--backup',
      manifest.id,
      '--target',
      url(restored),
      '--json',
    ]);
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    expect((JSON.parse(restore.stdout) as RestoreReport).checks.rowCounts[0].restoredRows).toBe(10);
  });
});
