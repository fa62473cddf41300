/**
 * Profiles on the real CLI: store, source and target from flags, `PGFERRY_STORE`/`PGFERRY_SOURCE`
 * and the config file, in that order; and `--on-success`/`--on-failure` run after real runs, told
 * the outcome and never a password.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runCli, sourceUrl } from '../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';

const pg = testEnv().server(15);
const database = uniqueName('profile');
const restored = uniqueName('profile_restored');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-profiles-'));
const configFile = path.join(dir, 'etc', 'config.json');
/** What every run here is given: the config file and the password, as a user's shell would. */
const baseEnv = { PGFERRY_CONFIG: configFile, PGPASSWORD: pg.password };

/** `env` as the hook saw it, written by `env > file`. */
function hookEnv(file: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('PGFERRY_') || line.startsWith('PG'))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

function expectNoPassword(text: string): void {
  expect(text).not.toContain(pg.password);
  expect(text).not.toContain(encodeURIComponent(pg.password));
}

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, (c) =>
    c.query('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g'),
  );
  mkdirSync(path.join(dir, 'etc', 'backups'), { recursive: true });
  for (const store of ['flag', 'env']) mkdirSync(path.join(dir, store));
  writeFileSync(
    configFile,
    JSON.stringify({
      stores: { local: 'backups', other: path.join(dir, 'flag') },
      sources: { shop: pg.urlWithoutPassword(database), copy: pg.urlWithoutPassword(restored) },
      defaults: { store: 'local', source: 'shop' },
      hooks: { backup: { onSuccess: `env > ${path.join(dir, 'success.env')}` } },
    }),
  );
});
afterAll(async () => {
  await dropDatabase(pg, database);
  await dropDatabase(pg, restored);
});

test('backup, list, show, status, prune and restore run from the config file alone', async () => {
  const backup = await runCli(['backup'], { env: baseEnv });
  expect(backup).toMatchObject({ code: 0, stderr: '' });
  const id = backup.stdout.trim();

  // The success hook from the config file was told the outcome, and no password.
  const success = path.join(dir, 'success.env');
  expectNoPassword(readFileSync(success, 'utf8'));
  const told = hookEnv(success);
  expect(told).toMatchObject({
    PGFERRY_OUTCOME: 'success',
    PGFERRY_COMMAND: 'backup',
    PGFERRY_EXIT_STATUS: '0',
    PGFERRY_BACKUP_ID: id,
    PGFERRY_DATABASE: database,
    PGFERRY_STORE: pathToFileURL(path.join(dir, 'etc', 'backups')).href,
  });
  expect(told.PGPASSWORD).toBeUndefined();
  expect(existsSync(new URL(told.PGFERRY_DOCUMENT_URL))).toBe(true);

  const list = await runCli(['list', '--json'], { env: baseEnv });
  expect(JSON.parse(list.stdout).map((m: { id: string }) => m.id)).toEqual([id]);
  expect((await runCli(['show', '--backup', id], { env: baseEnv })).code).toBe(0);
  expect((await runCli(['status', '--max-age', '1h'], { env: baseEnv })).code).toBe(0);
  expect((await runCli(['prune', '--dry-run'], { env: baseEnv })).code).toBe(0);

  const restore = await runCli(['restore', '--backup', 'latest', '--target', '@copy'], { env: baseEnv });
  expect(restore.stderr).toBe('');
  expect(restore.stdout).toMatch(new RegExp(`^restored ${id} into ${restored} `));
});

test('the store comes from the flag, else PGFERRY_STORE, else the config file', async () => {
  const storeOf = async (args: string[], env: Record<string, string>) => {
    const result = await runCli(['status', '--json', ...args], { env: { ...baseEnv, ...env } });
    expect(result.stderr).toBe('');
    return JSON.parse(result.stdout).store as string;
  };
  const url = (folder: string) => pathToFileURL(path.join(dir, folder)).href;
  const env = { PGFERRY_STORE: path.join(dir, 'env') };
  expect(await storeOf(['--store', path.join(dir, 'flag')], env)).toBe(url('flag'));
  expect(await storeOf(['--store', '@other'], env)).toBe(url('flag'));
  expect(await storeOf([], env)).toBe(url('env'));
  expect(await storeOf([], { PGFERRY_STORE: '@other' })).toBe(url('flag'));
  expect(await storeOf([], {})).toBe(url(path.join('etc', 'backups')));
});

test('a store nothing gives is one line naming the three ways', async () => {
  const result = await runCli(['list'], { env: { XDG_CONFIG_HOME: dir } });
  expect(result).toMatchObject({
    code: 1,
    stderr: `pgferry: no store given: pass --store <store>, set PGFERRY_STORE, or set defaults.store in ${dir}/pgferry/config.json\n`,
  });
});

test('a failed backup runs --on-failure, told the error and no password, and exits as it failed', async () => {
  const failure = path.join(dir, 'failure.env');
  // PGFERRY_SOURCE (with a password in its URL) wins over the config's source; nothing listens there.
  const result = await runCli(['backup', '--on-failure', `env > ${failure}; exit 9`], {
    env: {
      ...baseEnv,
      PGFERRY_SOURCE: sourceUrl({ ...pg, port: 1 }, database),
      PGFERRY_SOURCE_PASSWORD: pg.password,
    },
  });
  expect(result.code).toBe(1);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines[0]).toBe(
    "pgferry: the --on-failure command failed (exit status 9); the run's exit status is its own",
  );
  expect(lines[1]).toMatch(/^pgferry: .*127\.0\.0\.1:1/);
  expectNoPassword(readFileSync(failure, 'utf8'));
  const told = hookEnv(failure);
  expect(told).toMatchObject({
    PGFERRY_OUTCOME: 'failure',
    PGFERRY_COMMAND: 'backup',
    PGFERRY_EXIT_STATUS: '1',
    PGFERRY_DATABASE: database,
    PGFERRY_SOURCE: pg.urlWithoutPassword(database).replace(`:${pg.port}/`, ':1/'),
  });
  expect(told.PGFERRY_ERROR).toBe(lines[1].replace(/^pgferry: /, ''));
  expect(told.PGFERRY_SOURCE_PASSWORD).toBeUndefined();
});

test('a failing --on-success hook is reported but leaves a stored backup exiting 0', async () => {
  const result = await runCli(['backup', '--on-success', 'exit 4'], { env: baseEnv });
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}\n$/);
  expect(result.stderr).toBe(
    "pgferry: the --on-success command failed (exit status 4); the run's exit status is its own\n",
  );
});
