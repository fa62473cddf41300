/**
 * Faults in the middle of a backup into a local folder: the runner killed, the CLI killed, the
 * source connection terminated, the store filling up. Each must end with a clear failure (or,
 * for a killed CLI, a dead run the next one takes over), no part of the attempt left in the
 * store, nothing listed, the lease released, and the next run succeeding.
 *
 * The faults land mid-dump at an observed point, not after a guessed delay: pg_dump's output is
 * held at a gate after its first MiB (test/support/faults.ts), so its COPY is still running on
 * the server and part of the dump is already in the store when the fault is injected.
 */
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { currentLease } from '../../core/lease';
import { LocalStore } from '../../core/store';
import { databaseSegment } from '../../core/store-keys';
import { runCli, sourceUrl } from '../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';
import {
  gatedPgDump,
  isRunning,
  resizeFileSystem,
  runnerOf,
  smallFileSystem,
  waitFor,
} from '../support/faults';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('faults');

beforeAll(async () => {
  await createDatabase(pg, database);
  // About 20 MB of dump: far more than the gate lets through, and than the small store holds.
  await withClient(pg, database, (c) =>
    c.query(
      'CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS v FROM generate_series(1, 250000) g',
    ),
  );
});
afterAll(() => dropDatabase(pg, database));

function newStore(root = mkdtempSync(path.join(tmpdir(), 'pgferry-faults-'))) {
  return { dir: root, url: `file://${root}`, store: new LocalStore(root) };
}

const backup = (url: string, extra: Record<string, string> = {}, onSpawn?: (pid: number) => void) =>
  runCli(['backup', '--source', sourceUrl(pg, database), '--store', url, '--compress', 'none'], {
    env: extra,
    onSpawn,
  });

/** What is stored for the database: attempt folders (and `.lease` while a lease is held). */
function storedFolders(dir: string): string[] {
  const dbDir = path.join(dir, databaseSegment(database));
  return existsSync(dbDir) ? readdirSync(dbDir).sort() : [];
}

async function listedIds(url: string): Promise<string[]> {
  const listed = await runCli(['list', '--store', url, '--json']);
  return (JSON.parse(listed.stdout) as BackupManifest[]).map((m) => m.id);
}

/** Waits until pg_dump's COPY runs on the server and part of the dump is in the store. */
async function midDump(dir: string): Promise<void> {
  await waitFor('pg_dump to be copying the table', () =>
    withClient(pg, 'postgres', async (c) => {
      const { rows } = await c.query(
        "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY %' AND pid <> pg_backend_pid()",
        [database],
      );
      return rows.length > 0 ? true : undefined;
    }),
  );
  await waitFor('part of the dump to be stored', () =>
    storedFolders(dir).some((id) => {
      const file = path.join(dir, databaseSegment(database), id, 'dump.pgdump');
      return existsSync(file) && statSync(file).size > 0;
    })
      ? true
      : undefined,
  );
}

/** The failure left nothing: no object, no lease, nothing listed; then a backup succeeds. */
async function expectCleanFailureThenSuccess(store: ReturnType<typeof newStore>) {
  expect(storedFolders(store.dir)).toEqual([]);
  expect(await listedIds(store.url)).toEqual([]);
  expect(await currentLease(store.store, database)).toBeUndefined();

  const next = await backup(store.url);
  expect(next).toMatchObject({ code: 0, stderr: '' });
  expect(await listedIds(store.url)).toEqual([next.stdout.trim()]);
}

test('the runner killed mid-dump (SIGKILL): a clean failure, nothing left, the next run succeeds', async () => {
  const store = newStore();
  const gate = gatedPgDump();
  let cli = 0;
  const running = backup(store.url, { PGFERRY_PG_BIN_DIRS: gate.binDirs }, (pid) => {
    cli = pid;
  });
  try {
    await midDump(store.dir);
    process.kill(await runnerOf(cli), 'SIGKILL');
  } finally {
    gate.open();
  }
  const failed = await running;
  expect(failed.code).toBe(1);
  expect(failed.stderr).toMatch(/^pgferry: the pg-tools task stopped \(SIGKILL\)/);
  expect(failed.stderr.trimEnd().split('\n')).toHaveLength(1);
  await expectCleanFailureThenSuccess(store);
});

test('the CLI killed mid-dump (SIGKILL): its runner stops too; the next run takes over and removes the half-written attempt', async () => {
  const store = newStore();
  const gate = gatedPgDump();
  let cli = 0;
  const running = backup(store.url, { PGFERRY_PG_BIN_DIRS: gate.binDirs }, (pid) => {
    cli = pid;
  });
  let halfWritten: string[];
  try {
    await midDump(store.dir);
    const runner = await runnerOf(cli);
    process.kill(cli, 'SIGKILL');
    expect(await running).toMatchObject({ code: null });
    // pg_dump is still held at the gate: the runner stops because its CLI is gone, not because
    // the dump ended.
    await waitFor('the orphaned runner to stop', () => (isRunning(runner) ? undefined : true), 20_000);
    halfWritten = storedFolders(store.dir).filter((f) => f !== '.lease');
  } finally {
    gate.open();
  }
  expect(halfWritten).toHaveLength(1);
  expect(await currentLease(store.store, database)).toMatchObject({
    backupId: halfWritten[0],
    owner: { pid: cli },
  });
  expect(await listedIds(store.url)).toEqual([]);

  const next = await backup(store.url);
  expect(next).toMatchObject({ code: 0, stderr: '' });
  const id = next.stdout.trim();
  expect(await listedIds(store.url)).toEqual([id]);
  expect(storedFolders(store.dir)).toEqual([id]); // the dead run's attempt is gone, and the lease
});

test('the source connection terminated mid-dump (pg_terminate_backend): a clean failure, nothing left, the next run succeeds', async () => {
  const store = newStore();
  const gate = gatedPgDump();
  const running = backup(store.url, { PGFERRY_PG_BIN_DIRS: gate.binDirs });
  try {
    await midDump(store.dir);
    const terminated = await withClient(pg, 'postgres', (c) =>
      c.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY %' AND pid <> pg_backend_pid()",
        [database],
      ),
    );
    expect(terminated.rowCount).toBe(1);
  } finally {
    gate.open();
  }
  const failed = await running;
  expect(failed.code).toBe(1);
  expect(failed.stderr).toMatch(
    // The server's reason arrives unless the connection closes first.
    /^pgferry: pg_dump failed \(1\): pg_dump: error: Dumping the contents of table "t" failed: .*(terminating connection due to administrator command|server closed the connection unexpectedly)/,
  );
  expect(failed.stderr.trimEnd().split('\n')).toHaveLength(1);
  await expectCleanFailureThenSuccess(store);
});

describe('a store on a file system that fills up mid-dump', () => {
  let fs: { dir: string; unmount(): Promise<void> };
  beforeAll(async () => {
    fs = await smallFileSystem('4m');
  });
  afterAll(() => fs.unmount());

  test('fails clearly and frees what it wrote; once there is room, the next run succeeds', async () => {
    const store = newStore(fs.dir);
    const failed = await backup(store.url);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^pgferry: store file:\/\/\S+ is full \(ENOSPC\)/);
    expect(failed.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(storedFolders(store.dir)).toEqual([]);
    expect(await listedIds(store.url)).toEqual([]);
    expect(await currentLease(store.store, database)).toBeUndefined();

    await resizeFileSystem(fs.dir, '64m');
    await expectCleanFailureThenSuccess(store);
  });
});
