/**
 * The source password never appears in what a backup produces: the CLI's output, the store's
 * objects, the workflow's input, output and history, or any process's command line.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { runCli, sourceUrl } from '../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('secrets');
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
  await createDatabase(pg, database);
  await withClient(pg, database, (c) =>
    c.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g'),
  );
});
afterAll(() => dropDatabase(pg, database));

test('the password is in no output, stored object or command line of a verbose backup', async () => {
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-secrets-'));
  const watcher = watchCommandLines();
  const result = await runCli([
    'backup',
    '--source',
    sourceUrl(pg, database),
    '--store',
    store,
    '--verbose',
    '--json',
  ]);
  const commandLines = await watcher.stop();
  expect(result.code).toBe(0);
  // The watcher saw the backup's own processes: pg_dump, and the runner.
  expect(commandLines.some((c) => /pg_dump --format=custom/.test(c))).toBe(true);
  expect(commandLines.some((c) => /containers\/pg-tools\/src\/main\.js/.test(c))).toBe(true);
  // The CLI's own argv holds the URL the user typed (as with psql); every other process is checked.
  for (const line of commandLines.filter((c) => !c.includes('bin/pgferry.js')))
    expectNoSecret(line, `argv: ${line}`);
  expectNoSecret(result.stdout, 'stdout');
  expectNoSecret(result.stderr, 'stderr');
  const files = filesUnder(store);
  expect(files.length).toBeGreaterThanOrEqual(3);
  for (const file of files) {
    const bytes = readFileSync(file);
    expectNoSecret((file.endsWith('.zst') ? zstdDecompressSync(bytes) : bytes).toString('latin1'), file);
  }
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
