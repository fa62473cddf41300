/**
 * The source password never appears in what a backup produces: the CLI's output, the store's
 * objects, the workflow's input, output and history, or any process's command line.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { type CliResult, runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('secrets');
const target = uniqueName('secrets_target');
const restored = uniqueName('secrets_restored');
const needles = [pg.password, encodeURIComponent(pg.password)];

function expectNoSecret(text: string, where: string): void {
  for (const needle of needles) {
    if (text.includes(needle)) throw new Error(`the password appears in ${where}`);
  }
}

/** Every process's command line, read until `stop()` (the backup runs meanwhile). */
function watchCommandLines(): { stop(): Promise<string[]> } {
  const seen = new Set<string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          seen.add(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
        } catch {
          // the process ended
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return [...seen];
    },
  };
}

function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).isFile());
}

beforeAll(async () => {
  await createSeededDatabase(pg, target, 'CREATE TABLE old AS SELECT 1 AS id');
  await createSeededDatabase(
    pg,
    database,
    'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g',
  );
});
afterAll(async () => {
  await dropDatabase(pg, database);
  await dropDatabase(pg, target);
  await dropDatabase(pg, restored);
});

/**
 * Runs the CLI while watching every process's command line, then checks that the password is in
 * none of them (but the CLI's own, which holds the URL the user typed, as with psql), nor in
 * its stdout and stderr — which, with `--verbose`, carry the in-process handlers' Powertools logs
 * and the pg-tools task's logs — nor in any file of the store (manifests, reports, dumps).
 */
async function expectNoSecretInRun(
  args: string[],
  store: string,
): Promise<CliResult & { commandLines: string[] }> {
  const watcher = watchCommandLines();
  const result = await runCli([...args, '--verbose']);
  const commandLines = await watcher.stop();
  for (const line of commandLines.filter((c) => !c.includes('bin/pgferry.js')))
    expectNoSecret(line, `argv: ${line}`);
  expectNoSecret(result.stdout, 'stdout');
  expectNoSecret(result.stderr, 'stderr');
  for (const file of filesUnder(store)) {
    const bytes = readFileSync(file);
    expectNoSecret((file.endsWith('.zst') ? zstdDecompressSync(bytes) : bytes).toString('latin1'), file);
  }
  return { ...result, commandLines };
}

/** Which services' JSON log lines a run printed (proof that the logs were part of the scan). */
function loggingServices(output: string): string[] {
  const services = new Set<string>();
  for (const line of output.split('\n')) {
    try {
      const service = (JSON.parse(line) as { service?: unknown }).service;
      if (typeof service === 'string') services.add(service);
    } catch {
      // not a log line
    }
  }
  return [...services].sort();
}

test('the password is in no output, log, stored object or command line of a backup', async () => {
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-secrets-'));
  const result = await expectNoSecretInRun(
    ['backup', '--source', sourceUrl(pg, database), '--store', store, '--json'],
    store,
  );
  expect(result.code).toBe(0);
  // The watcher saw the backup's own processes: pg_dump, and the runner.
  expect(result.commandLines.some((c) => /pg_dump --format=custom/.test(c))).toBe(true);
  expect(result.commandLines.some((c) => /containers\/pg-tools\/src\/main\.js/.test(c))).toBe(true);
  expect(loggingServices(result.stdout + result.stderr)).toEqual(
    expect.arrayContaining(['pgferry-preflight', 'pgferry-record', 'pgferry-pg-tools']),
  );
  expect(filesUnder(store).length).toBeGreaterThanOrEqual(3);
});

test('the password is in no output, log, report or command line of a restore over a database', async () => {
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-secrets-'));
  const backup = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', store]);
  expect(backup.code).toBe(0);
  // --mode clean: the target is backed up first (a nested backup workflow with its password).
  const result = await expectNoSecretInRun(
    ['restore', '--store', store, '--backup', backup.stdout.trim(), '--target', sourceUrl(pg, target)].concat(
      ['--mode', 'clean', '--force', '--json'],
    ),
    store,
  );
  expect(result.code).toBe(0);
  expect(result.commandLines.some((c) => /pg_restore /.test(c))).toBe(true);
  expect(result.stderr).toMatch(/safety backup of the target before it was replaced: \S+/);
  expect(filesUnder(store).filter((f) => /restore-report-.*\.json$/.test(f))).toHaveLength(1);
  expect(loggingServices(result.stdout + result.stderr)).toEqual(
    expect.arrayContaining(['pgferry-restore-preflight', 'pgferry-preflight', 'pgferry-pg-tools']),
  );
});

test('the password is in no output, log, report or command line of a verification', async () => {
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-secrets-'));
  const backup = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', store]);
  expect(backup.code).toBe(0);
  const result = await expectNoSecretInRun(
    ['verify', '--store', store, '--backup', backup.stdout.trim(), '--json'],
    store,
  );
  expect(result.code).toBe(0);
  expect(filesUnder(store).filter((f) => /verify-report-.*\.json$/.test(f))).toHaveLength(1);
});

test("the workflow's input, output and event history carry no password", async () => {
  const { runBackupWorkflow } = await import('../../cli/local-executor');
  const { parseConnectionUrl } = await import('../../core/connection');
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-secrets-'));
  const { connection, password } = parseConnectionUrl(sourceUrl(pg, database));
  const events: unknown[] = [];
  process.env.PGFERRY_SOURCE_PASSWORD = password;
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
  process.env.PGFERRY_PG_BIN_DIRS = '/usr/lib/postgresql/15/bin';
  try {
    const input = { source: connection, store: `file://${store}` };
    const output = await runBackupWorkflow(input, { onEvent: (e) => events.push(e) });
    expectNoSecret(JSON.stringify(input), 'the execution input');
    expectNoSecret(JSON.stringify(output), 'the execution output');
    expect(events.length).toBeGreaterThan(5);
    expectNoSecret(JSON.stringify(events), 'the execution history');
  } finally {
    delete process.env.PGFERRY_SOURCE_PASSWORD;
  }
});

test("the restore workflow's input, output and event history carry no password", async () => {
  const { runRestoreWorkflow } = await import('../../cli/local-executor');
  const { parseConnectionUrl } = await import('../../core/connection');
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-secrets-'));
  const backup = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', store]);
  expect(backup.code).toBe(0);
  const { connection, password } = parseConnectionUrl(sourceUrl(pg, restored));
  const events: unknown[] = [];
  process.env.PGFERRY_TARGET_PASSWORD = password;
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
  process.env.PGFERRY_PG_BIN_DIRS = '/usr/lib/postgresql/15/bin';
  try {
    const input = { store: `file://${store}`, backup: backup.stdout.trim(), target: connection };
    const output = await runRestoreWorkflow(input, { onEvent: (e) => events.push(e) });
    expectNoSecret(JSON.stringify(input), 'the execution input');
    expectNoSecret(JSON.stringify(output), 'the execution output');
    expect(events.length).toBeGreaterThan(5);
    expectNoSecret(JSON.stringify(events), 'the execution history');
  } finally {
    delete process.env.PGFERRY_TARGET_PASSWORD;
  }
});
