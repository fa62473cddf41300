/**
 * The progress line on a real terminal (a pseudo-terminal, see test/support/terminal.ts): backup
 * and restore say what they do in words, with bytes, rate and time left; a narrow terminal gets
 * lines that fit; pipes get none of it. And the durations a backup and a restore print are the
 * ones `list`, `show` and the stored report hold.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { runCli, sourceUrl } from '../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';
import { gatedPgDump } from '../support/faults';
import { drawnLines, runCliOnTerminal } from '../support/terminal';

const env = testEnv();
const pg = env.server(15);
const source = uniqueName('progress');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-progress-'));
const store = `file://${dir}`;
const targets: string[] = [];
const ROWS = 100_000;
const SIZE = String.raw`\d+(\.\d)? [kMG]?B`;
const CLOCK = String.raw`\d+:\d\d`;

let backupOutput: string[];
let backupCode: number | null;
let manifest: BackupManifest;

beforeAll(async () => {
  await createDatabase(pg, source);
  await withClient(pg, source, async (c) => {
    // Loading it takes seconds however fast the machine (its check sleeps 1 ms every 50 rows), so
    // that a restore's progress is reported several times, a second apart; and an index to build.
    await c.query(
      // PL/pgSQL, not SQL: the planner folds a SQL function's `pg_sleep(…) … OR true` to `true`.
      `CREATE FUNCTION paced(id int) RETURNS boolean LANGUAGE plpgsql
         AS $$ BEGIN IF id % 50 = 0 THEN PERFORM pg_sleep(0.001); END IF; RETURN true; END $$;
       CREATE TABLE item (id int CHECK (paced(id)), payload text);
       INSERT INTO item SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)
         FROM generate_series(1, ${ROWS}) g;
       CREATE INDEX item_payload ON item (payload)`,
    );
  });
  // The dump is held after its first MiB until the progress line shows it, and a second more: its
  // next report comes a second after the first, with a rate.
  const dump = gatedPgDump();
  let shown = false;
  // Without a progress line (its test then fails) the dump goes on after a while all the same.
  const fallback = setTimeout(() => dump.open(), 20_000);
  const run = await runCliOnTerminal(['backup', '--source', sourceUrl(pg, source), '--store', store], {
    columns: 120,
    env: { PGFERRY_PG_BIN_DIRS: dump.binDirs },
    onOutput: (output) => {
      if (shown || !output.includes('backup: dumping')) return;
      shown = true;
      setTimeout(() => dump.open(), 1500).unref();
    },
  });
  clearTimeout(fallback);
  backupCode = run.code;
  backupOutput = drawnLines(run.output);
  const id = backupOutput.find((line) => /^\d{8}T\d{6}Z-[0-9a-f]{6}$/.test(line));
  const show = await runCli(['show', '--store', store, '--backup', id ?? '?', '--json']);
  manifest = (JSON.parse(show.stdout) as { manifest: BackupManifest }).manifest;
}, 240_000);

/** The restore reports stored beside the backup. */
function restoreReports(): RestoreReport[] {
  const folder = path.join(dir, databaseSegment(source), manifest.id);
  return readdirSync(folder)
    .filter((name) => name.startsWith('restore-report-'))
    .map((name) => JSON.parse(readFileSync(path.join(folder, name), 'utf8')) as RestoreReport);
}

afterAll(async () => {
  await dropDatabase(pg, source);
  for (const t of targets) await dropDatabase(pg, t);
  rmSync(dir, { recursive: true, force: true });
});

test('a backup on a terminal shows what it does: bytes dumped of the estimate, rate, time left, bytes stored', () => {
  expect(backupCode).toBe(0);
  const progress = backupOutput.filter((line) => line.startsWith('backup: dumping'));
  expect(progress.length).toBeGreaterThan(0);
  expect(progress).toContainEqual(
    expect.stringMatching(
      new RegExp(`^backup: dumping  ${SIZE} of ~${SIZE}  ${SIZE}/s  ETA ~${CLOCK}  ${SIZE} stored$`),
    ),
  );
  // No line is wider than the terminal (less one column, so that none wraps).
  for (const line of backupOutput) expect(line.length).toBeLessThan(120);
});

test('the duration a backup prints is the one list and show give', async () => {
  const summary = backupOutput.find((line) => line.startsWith('backed up '));
  const seconds = manifest.durationSeconds.toFixed(1);
  expect(summary).toMatch(
    new RegExp(
      `^backed up ${source} in ${seconds.replace('.', '\\.')}s: ${SIZE} stored \\(${SIZE} dumped\\)$`,
    ),
  );
  const list = await runCli(['list', '--store', store]);
  expect(list.stdout.split('\n').find((line) => line.startsWith(manifest.id))).toContain(`  ${seconds}s  `);
  const show = await runCli(['show', '--store', store, '--backup', manifest.id]);
  expect(show.stdout).toContain(`(${seconds}s)`);
});

test('a restore on a terminal shows each step in words, and the tables it loads with the bytes they arrive in', async () => {
  const target = uniqueName('progress_restored');
  targets.push(target);
  const run = await runCliOnTerminal(
    ['restore', '--store', store, '--backup', manifest.id, '--target', sourceUrl(pg, target), '--jobs', '2'],
    { columns: 120 },
  );
  const lines = drawnLines(run.output);
  expect(run.code).toBe(0);
  expect(lines).toContain('restore: creating the database  0:00');
  // Streamed: the tables load as the backup's bytes arrive, and those bytes are the load's
  // progress (a verification's too, below).
  expect(lines).toContainEqual(
    expect.stringMatching(new RegExp(`^restore: downloading and loading the tables  ${CLOCK}$`)),
  );
  expect(lines).toContainEqual(
    expect.stringMatching(new RegExp(`^restore: restoring tables  ${SIZE} of ${SIZE} \\(\\d+%\\)`)),
  );
  expect(lines).toContainEqual(
    expect.stringMatching(new RegExp(`^restore: building indexes and constraints  ${CLOCK}$`)),
  );
  expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^restore: analyzing tables  ${CLOCK}$`)));
  // No phase shows under its internal name.
  expect(lines.join('\n')).not.toMatch(/pgRestore|rowCounts|createDatabase|postData|\bload\b/);

  // The duration it prints is its stored report's.
  const done = lines.find((line) => line.startsWith('restored '));
  const report = restoreReports().find((r) => r.target.database === target);
  expect(done).toContain(` in ${report?.timings.total?.toFixed(1)}s: `);
}, 240_000);

test('a verification on a terminal says it starts its server and creates the roles, then loads the tables with the bytes they arrive in', async () => {
  const run = await runCliOnTerminal(['verify', '--store', store, '--backup', manifest.id], { columns: 120 });
  const lines = drawnLines(run.output);
  expect(run.code).toBe(0);
  expect(lines).toContainEqual(
    expect.stringMatching(new RegExp(`^verify: starting a throwaway server  ${CLOCK}$`)),
  );
  expect(lines).toContainEqual(
    expect.stringMatching(new RegExp(`^verify: creating missing roles  ${CLOCK}$`)),
  );
  // Streamed, as a create restore (above).
  expect(lines).toContainEqual(
    expect.stringMatching(new RegExp(`^verify: downloading and loading the tables  ${CLOCK}$`)),
  );
  expect(lines).toContainEqual(
    expect.stringMatching(new RegExp(`^verify: restoring tables  ${SIZE} of ${SIZE} \\(\\d+%\\)`)),
  );
  expect(lines).toContainEqual(expect.stringMatching(/^verified /));
}, 240_000);

test('on a terminal narrower than the line, every line is cut to fit', async () => {
  const target = uniqueName('progress_narrow');
  targets.push(target);
  const run = await runCliOnTerminal(
    ['restore', '--store', store, '--backup', manifest.id, '--target', sourceUrl(pg, target)],
    { columns: 40 },
  );
  expect(run.code).toBe(0);
  // The progress lines, not the result printed after them.
  const drawn = drawnLines(run.output).filter((line) => line.startsWith('restore: '));
  expect(drawn).toContain('restore: restoring tables');
  for (const line of drawn) expect(line.length).toBeLessThanOrEqual(39);
}, 240_000);

test('through pipes, backup and restore print their results and no progress', async () => {
  const backup = await runCli(['backup', '--source', sourceUrl(pg, source), '--store', store]);
  expect(backup.code).toBe(0);
  expect(backup.stderr).toBe('');
  expect(backup.stdout).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}\n$/);
  const target = uniqueName('progress_piped');
  targets.push(target);
  const restore = await runCli([
    'restore',
    '--store',
    store,
    '--backup',
    manifest.id,
    '--target',
    sourceUrl(pg, target),
  ]);
  expect(restore.code).toBe(0);
  expect(restore.stderr).toBe('');
  for (const drawing of ['\r', '\x1b', '/s', 'ETA']) expect(restore.stdout).not.toContain(drawing);
}, 240_000);
