/**
 * Bad input to `pgferry backup`: one clear line on stderr, a non-zero exit, and nothing that
 * `pgferry list` would show.
 */
import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runCli, sourceUrl } from '../support/cli';
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
