/**
 * A `PGFERRY_WORK_DIR` that does not exist, or is not a folder: every workflow that works there
 * (a restore in either mode, verify, migrate) refuses in one line naming the variable and what to
 * do, before anything starts — no database created or changed, no safety backup, nothing stored.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { restoringName } from '../../core/postgres/incomplete-database';
import { existingDatabases, useBackedUpDatabase } from '../support/backed-up-database';
import { runCli, runMigrate, sourceUrl } from '../support/cli';
import { dropDatabase, quoteIdent, testEnv, uniqueName, withClient } from '../support/env';
import { fingerprint } from '../support/fingerprint';

const env = testEnv();
const pg = env.server(15);
const backedUp = useBackedUpDatabase(pg, {
  prefix: 'workdir',
  seed: `CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 10);`,
});
const scratch = mkdtempSync(path.join(tmpdir(), 'pgferry-work-folder-'));
const missing = path.join(scratch, 'no-such-folder', 'work');
const aFile = path.join(scratch, 'a-file');
const migrateStore = path.join(scratch, 'migrate-store');
const created: string[] = [];

beforeAll(() => writeFileSync(aFile, ''));

afterAll(async () => {
  for (const name of created) await dropDatabase(pg, name);
  rmSync(scratch, { recursive: true, force: true });
});

/** Every file under `dir` (a local store), relative to it. */
function filesIn(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

function refusal(workDir: string, problem: string): string {
  return `pgferry: PGFERRY_WORK_DIR is ${workDir}, which ${problem}: `;
}

/** `pgferry restore` of the backup into `target`, working in `workDir`. */
function restore(target: string, workDir: string, ...args: string[]) {
  return runCli(
    [
      'restore',
      '--store',
      backedUp.store,
      '--backup',
      backedUp.manifest.id,
      '--target',
      sourceUrl(pg, target),
      ...args,
    ],
    { env: { PGFERRY_WORK_DIR: workDir } },
  );
}

test.each([
  { workflow: 'restore --mode create', mode: 'create' },
  { workflow: 'restore --mode clean --force', mode: 'clean' },
])(
  '$workflow with PGFERRY_WORK_DIR missing is refused in one line; the target untouched',
  async ({ mode }) => {
    const target = uniqueName(`workdir_${mode}`);
    created.push(target);
    if (mode === 'clean') {
      await withClient(pg, 'postgres', (c) =>
        c.query(`CREATE DATABASE ${quoteIdent(target)} TEMPLATE ${quoteIdent(backedUp.name)}`),
      );
    }
    const before = mode === 'clean' ? await fingerprint(pg, target) : undefined;
    const stored = filesIn(backedUp.dir);
    const result = await restore(
      target,
      missing,
      ...(mode === 'clean' ? ['--mode', 'clean', '--force'] : []),
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(refusal(missing, 'does not exist'));
    expect(filesIn(backedUp.dir)).toEqual(stored); // no safety backup, no report
    if (before) expect(await fingerprint(pg, target)).toEqual(before);
    else expect(await existingDatabases(pg, target, restoringName(target))).toEqual([]);
  },
  120_000,
);

test('verify with PGFERRY_WORK_DIR missing is refused in one line', async () => {
  const stored = filesIn(backedUp.dir);
  const result = await runCli(['verify', '--store', backedUp.store, '--backup', backedUp.manifest.id], {
    env: { PGFERRY_WORK_DIR: missing },
  });
  expect(result.code).toBe(1);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain(refusal(missing, 'does not exist'));
  expect(filesIn(backedUp.dir)).toEqual(stored);
}, 120_000);

test('migrate with PGFERRY_WORK_DIR missing is refused in one line; nothing created or stored', async () => {
  const migrated = uniqueName('workdir_migrated');
  created.push(migrated);
  const result = await runMigrate(sourceUrl(pg, backedUp.name), sourceUrl(pg, migrated), migrateStore, [], {
    env: { PGFERRY_WORK_DIR: missing },
  });
  expect(result.code).toBe(1);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain(refusal(missing, 'does not exist'));
  expect(await existingDatabases(pg, migrated)).toEqual([]);
  expect(filesIn(scratch)).toEqual(['a-file']);
}, 120_000);

test('a PGFERRY_WORK_DIR that is a file is refused in one line', async () => {
  const target = uniqueName('workdir_file');
  created.push(target);
  const result = await restore(target, aFile);
  expect(result.code).toBe(1);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain(refusal(aFile, 'is not a folder'));
  expect(await existingDatabases(pg, target, restoringName(target))).toEqual([]);
}, 120_000);
