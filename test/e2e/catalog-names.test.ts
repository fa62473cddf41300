/**
 * Catalog names (issue 13, item 7): a name belongs to one server. Two servers' databases of the
 * same name, backed up into one store: the second is refused unless it has a name of its own
 * (`--name`), and each name then has its own `latest`, retention and status. A restore's safety
 * backup is filed under its target's name (`<database>@<host>:<port>`), never the source's. Old
 * manifests (no `name`) read as before.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { openStore } from '../../core/store';
import { manifestKey } from '../../core/store-keys';
import { runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';

const env = testEnv();
const pg15 = env.server(15);
const pg17 = env.server(17);
const database = uniqueName('samename');
const store = mkdtempSync(path.join(tmpdir(), 'pgferry-names-'));
const restored: { server: typeof pg15; name: string }[] = [];
let first: BackupManifest; // pg15's

function filesOf(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

async function backup(server: typeof pg15, ...args: string[]) {
  return runCli(['backup', '--source', sourceUrl(server, database), '--store', store, '--json', ...args]);
}

async function list(...args: string[]): Promise<BackupManifest[]> {
  const result = await runCli(['list', '--store', store, '--json', ...args]);
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as BackupManifest[];
}

beforeAll(async () => {
  for (const [server, rows] of [
    [pg15, 15],
    [pg17, 17],
  ] as const) {
    await createSeededDatabase(
      server,
      database,
      `CREATE TABLE t AS SELECT g AS id FROM generate_series(1, ${rows}) g`,
    );
  }
  const result = await backup(pg15);
  expect(result.stderr).toBe('');
  first = JSON.parse(result.stdout) as BackupManifest;
}, 120_000);
afterAll(async () => {
  await Promise.all([dropDatabase(pg15, database), dropDatabase(pg17, database)]);
  for (const r of restored) await dropDatabase(r.server, r.name);
  rmSync(store, { recursive: true, force: true });
});

test('a backup is filed under its database name by default, which its manifest records with the server', () => {
  expect(first.name).toBe(database);
  expect(first.database).toBe(database);
  expect(first.server.systemIdentifier).toMatch(/^\d+$/);
});

test("another server's database of the same name is refused without --name: nothing is written", async () => {
  const before = filesOf(store);
  const result = await backup(pg17);
  expect(result.code).toBe(1);
  expect(result.stderr.trimEnd().split('\n')).toEqual([
    expect.stringMatching(
      new RegExp(
        `^pgferry: the backups filed under "${database}" in file://${store} come from 127\\.0\\.0\\.1:${pg15.port} \\(system identifier \\d+\\) \\(the newest: ${first.id}\\); ${database} at 127\\.0\\.0\\.1:${pg17.port} \\(system identifier \\d+\\) is another server: file its backups under a name of their own with --name \\(for example --name ${database}-localhost-${pg17.port}\\); nothing was written$`,
      ),
    ),
  ]);
  expect(filesOf(store)).toEqual(before);
});

test('the same server by another address (same system identifier) is the same server', async () => {
  const alias = sourceUrl(pg15, database).replace('@127.0.0.1:', '@localhost:');
  const result = await runCli(['backup', '--source', alias, '--store', store]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
});

describe('with --name, each server has a catalog of its own', () => {
  const name17 = `${database}-17`;
  let second: BackupManifest;
  beforeAll(async () => {
    const result = await backup(pg17, '--name', name17);
    expect(result.stderr).toBe('');
    second = JSON.parse(result.stdout) as BackupManifest;
  });

  test('filed under the name, recording the database it came from', async () => {
    expect(second).toMatchObject({ name: name17, database });
    expect((await list('--name', name17)).map((m) => m.id)).toEqual([second.id]);
    // pg15's name keeps its own backups: pg17's is not its latest.
    expect((await list('--name', database)).map((m) => m.id)).not.toContain(second.id);
  });

  test('latest and restore take --name (and show --database, its earlier spelling)', async () => {
    const target = uniqueName('fromname');
    restored.push({ server: pg17, name: target });
    const result = await runCli([
      'restore',
      '--store',
      store,
      '--backup',
      'latest',
      '--name',
      name17,
      '--target',
      sourceUrl(pg17, target),
      '--json',
    ]);
    expect(result.stderr).toBe('');
    const report = JSON.parse(result.stdout) as RestoreReport;
    expect(report).toMatchObject({ backupId: second.id, database: name17 });
    expect(report.checks.rowCounts).toEqual([{ schema: 'public', name: 't', rows: 17, restoredRows: 17 }]);
    const shown = await runCli([
      'show',
      '--store',
      store,
      '--backup',
      'latest',
      '--database',
      database,
      '--json',
    ]);
    expect(JSON.parse(shown.stdout).manifest.id).not.toBe(second.id);
    const both = await runCli([
      'show',
      '--store',
      store,
      '--backup',
      'latest',
      '--name',
      'a',
      '--database',
      'b',
    ]);
    expect(both.stderr).toMatch(/^pgferry: --name "a" and --database "b" differ/);
  });

  test('status and prune count each name on its own', async () => {
    const status = await runCli(['status', '--store', store, '--json']);
    const names = (JSON.parse(status.stdout) as { databases: { database: string }[] }).databases.map(
      (d) => d.database,
    );
    expect(names).toEqual(expect.arrayContaining([database, name17]));
    const prune = await runCli([
      'prune',
      '--store',
      store,
      '--name',
      name17,
      '--keep-last',
      '1',
      '--dry-run',
      '--json',
    ]);
    expect((JSON.parse(prune.stdout) as { backups: { database: string }[] }).backups).toEqual([
      expect.objectContaining({ database: name17, id: second.id }),
    ]);
  });
});

test("a restore's safety backup is filed under its target's name, never becoming the source's latest", async () => {
  // Restoring pg15's backup over pg17's same-named database: the safety backup is of pg17's.
  const before = (await list('--name', database)).map((m) => m.id);
  const result = await runCli([
    'restore',
    '--store',
    store,
    '--backup',
    first.id,
    '--target',
    sourceUrl(pg17, database),
    '--mode',
    'clean',
    '--force',
    '--json',
  ]);
  expect(result.code).toBe(0);
  const report = JSON.parse(result.stdout) as RestoreReport;
  const targetName = `${database}@localhost:${pg17.port}`;
  expect(result.stderr).toContain(`${report.safetyBackupId} (filed under ${targetName})`);
  expect((await list('--name', database)).map((m) => m.id)).toEqual(before);
  const [safety] = await list('--name', targetName);
  expect(safety).toMatchObject({ id: report.safetyBackupId, name: targetName, database });
  expect(safety.tables).toMatchObject([{ schema: 'public', name: 't', rows: 17 }]);
});

test("a migration archives under the source database's name, refused when that name is another server's", async () => {
  // Into another database of pg17 itself: a migration never downgrades, and the name is checked
  // once both servers have answered.
  const target = uniqueName('migrated');
  const result = await runCli([
    'migrate',
    '--source',
    sourceUrl(pg17, database),
    '--target',
    sourceUrl(pg17, target),
    '--store',
    store,
  ]);
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(
    new RegExp(
      `^pgferry: the backups filed under "${database}" .* is another server: file its backups under a name of their own with --name`,
    ),
  );
});

test('a manifest written before catalog names (no name) is read as before: its folder is its database', async () => {
  const local = openStore(`file://${store}`);
  const { name: _name, ...old } = (await local.getJson(manifestKey(database, first.id))) as BackupManifest;
  await local.putJson(manifestKey(database, first.id), old);
  const shown = await runCli([
    'show',
    '--store',
    store,
    '--backup',
    first.id,
    '--database',
    database,
    '--json',
  ]);
  expect(shown.stderr).toBe('');
  expect(JSON.parse(shown.stdout).manifest.name).toBeUndefined();
  expect((await list('--name', database)).map((m) => m.id)).toContain(first.id);
});
