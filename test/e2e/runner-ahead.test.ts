/**
 * The runner started as the CLI starts (cli/runner.ts): a command that runs a local workflow
 * starts its pg-tools runner before it has loaded its own modules, with the Node flags of its
 * first task's action, and the workflow's first task is run by that very process; a command that
 * runs none — its help, a bad option, an input it refuses, `--aws` — leaves no runner behind. Processes are watched under /proc (their parent,
 * their command line, and a marker in their environment: PGFERRY_WORK_DIR, which a runner
 * inherits). The CLI is held at a known point by its config file, a FIFO it reads before the
 * command's action (applyProfile).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type CliResult, runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';
import { commandLine, processIds, runnersOf } from '../support/faults';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('runner_ahead');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-runner-ahead-'));
const store = `file://${path.join(dir, 'store')}`;

beforeAll(async () => {
  await createSeededDatabase(
    pg,
    database,
    'CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g',
  );
});
afterAll(async () => {
  await dropDatabase(pg, database);
});

/** A target nothing listens on. */
const TARGET = 'postgres://u@127.0.0.1:1/d';

/** The processes (runners) whose environment holds `PGFERRY_WORK_DIR=<workDir>`. */
function processesWith(workDir: string): number[] {
  const marker = `PGFERRY_WORK_DIR=${workDir}`;
  return processIds().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(marker);
    } catch {
      return false; // it ended
    }
  });
}

/** Waits until no process holds `workDir`'s marker (a runner just killed may still be exiting). */
async function expectNoRunnerLeft(workDir: string): Promise<void> {
  for (let i = 0; i < 100 && processesWith(workDir).length > 0; i++)
    await new Promise((r) => setTimeout(r, 50));
  expect(processesWith(workDir)).toEqual([]);
}

/** The Node flags runner `pid` was started with: its command line's words between node and its entry. */
function nodeFlagsOf(pid: number): string[] {
  const words = commandLine(pid).trim().split(' ');
  return words.slice(
    1,
    words.findIndex((word) => word.endsWith('pg-tools/src/main.js')),
  );
}

function fifo(name: string): string {
  const file = path.join(dir, name);
  execFileSync('mkfifo', [file]);
  return file;
}

/**
 * Runs `pgferry <args>` with its config file a FIFO: once the CLI opens it (it is then blocked
 * reading it, its command's modules loaded, its action not begun), `whileHeld(cliPid)` is called,
 * then `config` is written.
 */
async function runHeld(
  args: string[],
  config: string,
  workDir: string,
  whileHeld: (cli: number) => void,
  watch?: (cli: number) => void,
): Promise<CliResult> {
  const file = fifo(`config-${path.basename(workDir)}`);
  let cli = 0;
  let done = false;
  const run = runCli(args, {
    env: { PGFERRY_CONFIG: file, PGFERRY_WORK_DIR: workDir },
    onSpawn: (pid) => {
      cli = pid;
    },
  });
  // Every 10 ms until the CLI exits, `watch` looks at its processes.
  const watching = (async () => {
    while (!done) {
      if (cli && watch) watch(cli);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const held = await open(file, 'w'); // returns once the CLI has opened it to read
  try {
    whileHeld(cli);
    await held.writeFile(config);
  } finally {
    await held.close();
  }
  const result = await run;
  done = true;
  await watching;
  return result;
}

/**
 * Runs `pgferry <args>` held (runHeld) and watches its runners: those it had while held (started
 * ahead of its command), the Node flags of the first of them, and every runner it ever had.
 */
async function runWatchingRunners(
  args: string[],
  workDir: string,
): Promise<{ result: CliResult; startedAhead: number[]; flags: string[]; seen: number[] }> {
  const seen = new Set<number>();
  let startedAhead: number[] = [];
  let flags: string[] = [];
  const result = await runHeld(
    args,
    '{}',
    workDir,
    (cli) => {
      startedAhead = runnersOf(cli);
      flags = nodeFlagsOf(startedAhead[0]);
    },
    (cli) => {
      for (const pid of runnersOf(cli)) seen.add(pid);
    },
  );
  return { result, startedAhead, flags, seen: [...seen] };
}

test('a local workflow is run by the runner its command started before loading its own modules', async () => {
  const workDir = path.join(dir, 'used');
  const { result, startedAhead, flags, seen } = await runWatchingRunners(
    ['backup', '--source', sourceUrl(pg, database), '--store', store],
    workDir,
  );
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  // Started while the CLI had not yet begun its command, and the only runner it ever had.
  expect(startedAhead).toHaveLength(1);
  expect(seen).toEqual(startedAhead);
  expect(flags).toEqual(['--max-semi-space-size=1']);
  await expectNoRunnerLeft(workDir);
});

test("a restore is run by the runner its command started, with the restore's Node flags", async () => {
  const restoreStore = `file://${path.join(dir, 'restore-store')}`;
  const backup = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', restoreStore]);
  expect(backup.code).toBe(0);
  const target = uniqueName('runner_ahead_restored');
  const workDir = path.join(dir, 'restore');
  mkdirSync(workDir); // a restore's runner works in it
  try {
    const { result, startedAhead, flags, seen } = await runWatchingRunners(
      ['restore', '--store', restoreStore, '--backup', 'latest', '--target', sourceUrl(pg, target)],
      workDir,
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(startedAhead).toHaveLength(1);
    expect(seen).toEqual(startedAhead);
    expect(flags).toEqual(['--min-semi-space-size=6', '--max-semi-space-size=6']);
  } finally {
    await dropDatabase(pg, target);
  }
  await expectNoRunnerLeft(workDir);
});

test('a runner started for a command that then refuses its input is ended', async () => {
  const workDir = path.join(dir, 'refused');
  let startedAhead: number[] = [];
  const result = await runHeld(
    ['backup', '--source', sourceUrl(pg, database), '--store', store],
    'not json',
    workDir,
    (cli) => {
      startedAhead = runnersOf(cli);
    },
  );
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/^pgferry: .*config/);
  expect(startedAhead).toHaveLength(1);
  await expectNoRunnerLeft(workDir);
});

test.each([
  ['its help', ['restore', '--help'], /^$/],
  [
    'a bad option',
    ['restore', '--stroe', store, '--backup', 'latest', '--target', TARGET],
    /unknown option '--stroe'/,
  ],
  ['a missing option', ['migrate', '--store', store, '--target', TARGET], /no source given/],
  [
    'an input it refuses',
    ['restore', '--store', store, '--backup', 'latest', '--target', TARGET, '--jobs', '0'],
    /--jobs/,
  ],
  [
    '--aws',
    ['verify', '--aws', '--store', 's3://pgferry-runner-ahead-none/x', '--backup', 'latest'],
    /ECONNREFUSED/,
  ],
])('a workflow command with %s leaves no runner behind', async (_what, args, stderr) => {
  const workDir = path.join(dir, `none-${args.join('-').replace(/[^a-z0-9-]/gi, '')}`.slice(0, 80));
  const result = await runCli(args, {
    env: {
      PGFERRY_WORK_DIR: workDir,
      // `--aws` fails at once: no credentials, an endpoint nothing listens on.
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'none',
      AWS_SECRET_ACCESS_KEY: 'none',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:1',
      AWS_MAX_ATTEMPTS: '1',
    },
  });
  expect(result.stderr).toMatch(stderr);
  expect(result.code).toBe(args.includes('--help') ? 0 : 1);
  await expectNoRunnerLeft(workDir);
});
