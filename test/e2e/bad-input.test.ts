/**
 * Bad input to `pgferry backup`: one clear line on stderr, a non-zero exit, and nothing that
 * `pgferry list` would show.
 */
import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REPO, runCli, sourceUrl } from '../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('badinput');

beforeAll(() => createDatabase(pg, database));
afterAll(() => dropDatabase(pg, database));

function freshStore(): string {
  return mkdtempSync(path.join(tmpdir(), 'pgferry-bad-'));
}

const cases: { name: string; source: () => string; store?: () => string; message: RegExp }[] = [
  {
    name: 'an unreachable host',
    source: () => `postgres://postgres:x@127.0.0.1:1/${database}`,
    message: /cannot reach PostgreSQL at postgres@127\.0\.0\.1:1\/.*ECONNREFUSED/,
  },
  {
    name: 'a wrong password',
    source: () => sourceUrl(pg, database, 'not-the-password'),
    message: /PostgreSQL refused the login .*password authentication failed/,
  },
  {
    name: 'a missing database',
    source: () => sourceUrl(pg, 'no_such_database'),
    message: /database does not exist: postgres@127\.0\.0\.1:\d+\/no_such_database/,
  },
  { name: 'a malformed URL', source: () => 'postgres//oops', message: /--source is not a URL/ },
  {
    name: 'a URL of another scheme',
    source: () => 'mysql://u@h/db',
    message: /must start with postgres:\/\//,
  },
  {
    name: 'a store that is not writable',
    source: () => sourceUrl(pg, database),
    store: () => {
      const file = path.join(freshStore(), 'a-file');
      writeFileSync(file, '');
      chmodSync(file, 0o444);
      return path.join(file, 'store');
    },
    message: /store file:\/\/.* is not writable: ENOTDIR/,
  },
  {
    name: 'an unsupported store URL',
    source: () => sourceUrl(pg, database),
    store: () => 'ftp://example/backups',
    message: /unsupported store URL/,
  },
];

describe.each(cases)('backup with $name', ({ source, store, message }) => {
  test('fails with one clear line and leaves nothing listed', async () => {
    const dir = freshStore();
    const target = store ? store() : dir;
    const result = await runCli(['backup', '--source', source(), '--store', target]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^pgferry: /);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toContain(pg.password);
    const listed = await runCli(['list', '--store', dir, '--json']);
    expect(JSON.parse(listed.stdout)).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });
});

test('an unknown compression is refused before anything runs', async () => {
  const result = await runCli([
    'backup',
    '--source',
    sourceUrl(pg, database),
    '--store',
    freshStore(),
    '--compress',
    'brotli',
  ]);
  expect(result.code).not.toBe(0);
  expect(result.stderr.trimEnd().split('\n')).toEqual([
    expect.stringMatching(/^pgferry: .*unknown compression "brotli"/),
  ]);
});

/** A folder holding nothing: a HOME without ~/.pgpass or ~/.aws, a cwd without a store. */
const empty = freshStore();

describe('common mistakes get one line that says what to do', () => {
  test('no password anywhere: where pgferry looks for one, not the driver', async () => {
    const result = await runCli(
      [
        'backup',
        '--source',
        `postgres://${pg.user}@127.0.0.1:${pg.port}/${database}`,
        '--store',
        freshStore(),
      ],
      { env: { HOME: empty } },
    );
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toBe(
      `pgferry: PostgreSQL at ${pg.user}@127.0.0.1:${pg.port}/${database} asks for a password and there is none: ` +
        'put it in the URL (postgres://user:password@host/db), in PGPASSWORD, or in ~/.pgpass (or the file PGPASSFILE names)\n',
    );
  });

  test('a password in ~/.pgpass is found, quietly: no driver deprecation warning on stderr', async () => {
    const home = freshStore();
    const passFile = path.join(home, '.pgpass');
    writeFileSync(passFile, `127.0.0.1:${pg.port}:*:${pg.user}:${pg.password.replace(/([:\\])/g, '\\$1')}\n`);
    chmodSync(passFile, 0o600);
    const store = freshStore();
    const result = await runCli(
      ['backup', '--source', `postgres://${pg.user}@127.0.0.1:${pg.port}/${database}`, '--store', store],
      { env: { HOME: home } },
    );
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}\n$/);
  });

  test('--aws without a region says how to set one', async () => {
    const result = await runCli(['list', '--aws'], { env: { HOME: empty } });
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toBe(
      'pgferry: --aws needs an AWS region: set AWS_REGION (e.g. AWS_REGION=eu-west-1), or a region in your AWS ' +
        'profile (aws configure set region eu-west-1; AWS_PROFILE picks the profile)\n',
    );
  });

  test.each([
    ['backup', ['--stroe', 'x', '--source', 'postgres://u@h/d'], '--stroe', '--store'],
    ['status', ['--stroe', 'x'], '--stroe', '--store'],
    [
      'restore',
      ['--store', 'x', '--backup', 'latest', '--traget', 'postgres://u@h/d'],
      '--traget',
      '--target',
    ],
  ])(
    '%s: a mistyped flag is reported as unknown, not as the required one it was meant to be',
    async (command, args, typo, meant) => {
      const result = await runCli([command, ...args]);
      expect(result).toMatchObject({
        code: 1,
        stdout: '',
        stderr: `pgferry: unknown option '${typo}' (Did you mean ${meant}?)\n`,
      });
    },
  );

  test('a missing required flag, with nothing mistyped, is still named', async () => {
    const restore = await runCli(['restore', '--store', 'x', '--backup', 'latest']);
    expect(restore).toMatchObject({
      code: 1,
      stderr: "pgferry: required option '--target <url>' not specified\n",
    });
    // The store may come from the environment or the config file too: the line names all three.
    const status = await runCli(['status']);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(
      /^pgferry: no store given: pass --store <store>, set PGFERRY_STORE, or set defaults\.store in \S+config\.json\n$/,
    );
  });

  test('--mode with a value it does not take lists the choices', async () => {
    const args = ['restore', '--store', empty, '--backup', 'latest', '--target', 'postgres://u@h/d'];
    const result = await runCli([...args, '--mode', 'replace']);
    expect(result).toMatchObject({
      code: 1,
      stdout: '',
      stderr:
        "pgferry: option '--mode <mode>' argument 'replace' is invalid. Allowed choices are create, clean.\n",
    });
  });

  test.each([
    ['list'],
    ['status'],
    ['prune'],
    ['show', '--backup', 'latest'],
    ['restore', '--backup', 'latest', '--target', 'postgres://u@127.0.0.1:1/d'],
  ])('%s --store ./no-such-dir fails instead of showing an empty store', async (command, ...args) => {
    // The CLI runs in the repository's folder, which has no no-such-dir.
    const result = await runCli([command, '--store', './no-such-dir', ...args]);
    const missing = path.join(REPO, 'no-such-dir');
    expect(result).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `pgferry: store file://${missing} does not exist (no folder ${missing}): check the path, or that its file system is mounted\n`,
    });
  });
});
