/**
 * Load: twenty `pgferry backup` processes of twenty databases started at once into one local
 * store (spread over the test servers' majors) all complete, each with a manifest whose checksums
 * and row counts match; and amid them, two backups of one database never overlap — one runs, the
 * lease refuses the other. The databases are small: this is about concurrency, not volume.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, VerifyReport } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { type CliResult, extraPgBinDirs, runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, type TestPostgres, testEnv, uniqueName } from '../support/env';

const env = testEnv();
const BACKUPS = 20;
const databases = Array.from({ length: BACKUPS }, (_, i) => ({
  pg: env.postgres[i % env.postgres.length],
  name: uniqueName(`load${i}`),
  rows: 10 * (i + 1),
}));
const pg15 = env.server(15);
const contested = uniqueName('load_contested');
const storeDir = mkdtempSync(path.join(tmpdir(), 'pgferry-load-'));

async function createWithRows(pg: TestPostgres, name: string, rows: number): Promise<void> {
  await createSeededDatabase(
    pg,
    name,
    `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, ${rows}) g`,
  );
}

beforeAll(async () => {
  for (const db of databases) await createWithRows(db.pg, db.name, db.rows);
  await createWithRows(pg15, contested, 5);
});
afterAll(async () => {
  for (const db of databases) await dropDatabase(db.pg, db.name);
  await dropDatabase(pg15, contested);
});

/** PostgreSQL 15's client tools, with a pg_dump that first sleeps: the contested runs stay in their dump. */
function slowPgDump(seconds: number): string {
  const real = '/usr/lib/postgresql/15/bin';
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-slow-pg_dump-')), 'bin');
  mkdirSync(dir);
  writeFileSync(
    path.join(dir, 'pg_dump'),
    `#!/bin/sh\n[ "$1" = "--version" ] || sleep ${seconds}\nexec ${real}/pg_dump "$@"\n`,
  );
  writeFileSync(path.join(dir, 'pg_dumpall'), `#!/bin/sh\nexec ${real}/pg_dumpall "$@"\n`);
  chmodSync(path.join(dir, 'pg_dump'), 0o755);
  chmodSync(path.join(dir, 'pg_dumpall'), 0o755);
  return [dir, ...extraPgBinDirs()].join(':');
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

let results: CliResult[];
let contestedResults: CliResult[];
let listed: BackupManifest[];

beforeAll(async () => {
  const slow = { PGFERRY_PG_BIN_DIRS: slowPgDump(10) };
  const contestedRuns = [0, 1].map(() =>
    runCli(['backup', '--source', sourceUrl(pg15, contested), '--store', storeDir], { env: slow }),
  );
  const runs = databases.map((db) =>
    runCli(['backup', '--source', sourceUrl(db.pg, db.name), '--store', storeDir, '--json']),
  );
  [results, contestedResults] = await Promise.all([Promise.all(runs), Promise.all(contestedRuns)]);
  listed = JSON.parse((await runCli(['list', '--store', storeDir, '--json'])).stdout) as BackupManifest[];
}, 300_000);

test('twenty backups of twenty databases started at once all complete and are listed', () => {
  expect(results.map((r) => [r.code, r.stderr])).toEqual(results.map(() => [0, '']));
  const manifests = results.map((r) => JSON.parse(r.stdout) as BackupManifest);
  expect(manifests.map((m) => m.database)).toEqual(databases.map((db) => db.name));
  const ids = new Set(manifests.map((m) => m.id));
  for (const db of databases)
    expect(listed.filter((m) => m.database === db.name && ids.has(m.id))).toHaveLength(1);
});

test('each of them has a manifest whose checksums, sizes and row counts match its objects and source', () => {
  for (const [i, db] of databases.entries()) {
    const manifest = listed.find((m) => m.database === db.name) as BackupManifest;
    expect(manifest.server.major).toBe(db.pg.major);
    expect(manifest.tables).toMatchObject([{ schema: 'public', name: 't', rows: db.rows }]);
    for (const object of manifest.objects) {
      const file = path.join(storeDir, databaseSegment(db.name), manifest.id, object.key);
      expect({ i, key: object.key, bytes: readFileSync(file).length, sha256: sha256(file) }).toEqual({
        i,
        key: object.key,
        bytes: object.bytes,
        sha256: object.sha256,
      });
    }
  }
});

test('a sample of them passes a restore drill', async () => {
  // A drill starts a throwaway server per backup: the first and the last (two majors) stand for all.
  const sample = [databases[0], databases[BACKUPS - 1]].map((db) =>
    listed.find((m) => m.database === db.name),
  );
  const drills = await Promise.all(
    sample.map((m) => runCli(['verify', '--store', storeDir, '--backup', m?.id ?? '', '--json'])),
  );
  for (const drill of drills) {
    expect(drill.stderr).toBe('');
    expect((JSON.parse(drill.stdout) as VerifyReport).status).toBe('passed');
  }
});

test('amid them, of two backups of one database one runs and the lease refuses the other', () => {
  const [winner, loser] = [...contestedResults].sort((a, b) => (a.code ?? 9) - (b.code ?? 9));
  expect([winner.code, loser.code]).toEqual([0, 1]);
  const id = winner.stdout.trim();
  expect(loser.stderr.trimEnd().split('\n')).toEqual([
    expect.stringMatching(
      new RegExp(`^pgferry: a backup of ${contested} has been running since \\S+ \\(backup ${id}, pid \\d+`),
    ),
  ]);
  expect(listed.filter((m) => m.database === contested).map((m) => m.id)).toEqual([id]);
});
