/**
 * The setup most end-to-end tests of restore and verify share: a source database with seed data
 * and a backup of it, made by the CLI, in a store folder of the test's own; removed afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { runCli, sourceUrl } from './cli';
import { createSeededDatabase, dropDatabase, type TestPostgres, uniqueName, withClient } from './env';

/**
 * `pgferry backup --json` of `database` on `pg` into `store` (with `args`): its manifest. Throws
 * with the CLI's stderr when it fails.
 */
export async function backupOf(
  pg: TestPostgres,
  database: string,
  store: string,
  ...args: string[]
): Promise<BackupManifest> {
  const result = await runCli([
    'backup',
    '--source',
    sourceUrl(pg, database),
    '--store',
    store,
    '--json',
    ...args,
  ]);
  if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as BackupManifest;
}

/**
 * The runner's request for a create restore (restoreBackup's) into `target` on `pg`: two jobs, and
 * every table's rows, however few, loaded by both sessions (`splitMinBytes: 1`).
 */
export function restoreRequest(pg: TestPostgres, target: string, runId: string) {
  return {
    runId,
    target: pg.connection(target),
    password: pg.password,
    mode: 'create' as const,
    withGlobals: false,
    noOwner: false,
    noAcl: false,
    schemas: [],
    tables: [],
    terminateConnections: false,
    jobs: 2,
    toastCompression: 'server-default' as const,
    splitMinBytes: 1,
  };
}

/** Which of `names` are databases on `pg` (a restore's target, and the database it loads first). */
export async function existingDatabases(pg: TestPostgres, ...names: string[]): Promise<string[]> {
  return withClient(pg, 'postgres', async (c) =>
    (
      await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1)', [names])
    ).rows.map((r) => r.datname),
  );
}

export interface BackedUpDatabase {
  /** The source database's name (`uniqueName(prefix)`). */
  readonly name: string;
  /** The store's folder, and its URL (`file://…`). */
  readonly dir: string;
  readonly store: string;
  /** The backup taken before the tests (read it in a test or a later hook). */
  readonly manifest: BackupManifest;
  /** Another backup of the source into the store: for tests that damage or edit one. */
  backup(...args: string[]): Promise<BackupManifest>;
}

/**
 * Registers the hooks of a test file (or `describe`) that works on one backup: before its tests,
 * creates a source database on `pg` seeded with `seed` and backs it up into a new store folder;
 * after them, drops the database and removes the folder.
 */
export function useBackedUpDatabase(
  pg: TestPostgres,
  { prefix, seed, timeoutMs = 120_000 }: { prefix: string; seed: string; timeoutMs?: number },
): BackedUpDatabase {
  const name = uniqueName(prefix);
  const dir = mkdtempSync(path.join(tmpdir(), `pgferry-${prefix}-`));
  const store = `file://${dir}`;
  let manifest: BackupManifest | undefined;
  beforeAll(async () => {
    await createSeededDatabase(pg, name, seed);
    manifest = await backupOf(pg, name, store);
  }, timeoutMs);
  afterAll(async () => {
    await dropDatabase(pg, name);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    name,
    dir,
    store,
    get manifest(): BackupManifest {
      if (!manifest) throw new Error(`no backup of ${name}: its beforeAll failed or has not run`);
      return manifest;
    },
    backup: (...args) => backupOf(pg, name, store, ...args),
  };
}
