/**
 * The pg-tools runner, locally: the child process that runs a workflow's Fargate task
 * (containers/pg-tools/src/main.ts), and the one started ahead of its task.
 *
 * A runner takes ~0.4 s to load its modules. So that no task waits for that, a command that will
 * run a local workflow starts one as soon as it is known (bin/pgferry.js, before the CLI's own
 * modules load: {@link startRunnerAhead}); it loads beside the CLI's loading and the workflow's
 * first steps, and waits for its task's environment on stdin (TASK_ENV.envOnStdin). The
 * workflow's first task takes it ({@link takeRunnerAhead}, see withRunnerAhead in
 * ./local-executor.ts); a command that ends without giving it a task — its help, a bad option, a
 * refused input — ends it ({@link endRunnerAhead}, when main() returns), and a runner whose CLI
 * died sees its stdin end and exits, having done nothing.
 *
 * This module loads nothing but Node's own modules and two small ones: bin/pgferry.js loads it
 * before anything else.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as path from 'node:path';
import { TASK_ENV } from '../core/workflows';
import { REPO_ROOT } from '../lib/paths';

/**
 * Node's flags for the runner, as in the container's entrypoint: a 1 MiB young generation. The
 * runner streams many short-lived chunks; V8's default (up to 16 MiB semi-spaces) held about
 * 20 MiB more resident memory during an S3 upload, at no measurable gain in speed.
 */
export const RUNNER_NODE_FLAGS = ['--max-semi-space-size=1'];

/**
 * glibc's allocator settings for the runner (`GLIBC_TUNABLES`): the memory it frees is kept for
 * its next buffers — no trimming of the heap, no separate mapping for a buffer under 64 MiB —
 * instead of being given back to the kernel and faulted in afresh at its next use. Where a fresh
 * page is dear (the development VM: ~6.5 µs of system time each), a wide restore's runner took
 * 30k page faults instead of 46k, and 2.1–2.6 CPU s instead of 3.5. Its peak RSS is what it was
 * (the bench's memory group). The task image sets the same (containers/pg-tools/Dockerfile).
 */
export const RUNNER_MALLOC_TUNABLES =
  'glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=67108864';

/** Environment variables of this process that the task may inherit (AWS's and PostgreSQL's settings). */
const INHERITED_ENV =
  /^(PATH|HOME|LANG|LC_ALL|TMPDIR|TZ|AWS_[A-Z0-9_]+|PGFERRY_PG_BIN_DIRS|PGFERRY_SERVER_OS_USER|PGFERRY_WORK_DIR|PGFERRY_S3_FORCE_PATH_STYLE|PGFERRY_S3_TIMEOUT_SECONDS|PGFERRY_STALL_TIMEOUT_SECONDS|PGFERRY_BINDINGS|POWERTOOLS_LOG_LEVEL|NODE_COMPILE_CACHE)$/;

/** What this process's environment gives a task (see INHERITED_ENV). */
export function inheritedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (INHERITED_ENV.test(key)) env[key] = value;
  return env;
}

/** Set on every local task, whatever its override says. */
export const LOCAL_TASK_ENV = {
  POWERTOOLS_LOG_LEVEL: 'INFO',
  GLIBC_TUNABLES: RUNNER_MALLOC_TUNABLES,
  // The task's stdin stays open as long as this process lives: the task stops when it dies.
  [TASK_ENV.stopWithParent]: '1',
};

/** Starts the pg-tools entrypoint with `env`. */
export function spawnRunner(env: NodeJS.ProcessEnv): ChildProcessWithoutNullStreams {
  const entrypoint = path.join(REPO_ROOT, 'dist', 'containers', 'pg-tools', 'src', 'main.js');
  const child = spawn(process.execPath, [...RUNNER_NODE_FLAGS, entrypoint], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined); // the task may exit first
  return child;
}

/** A runner started ahead of its task: it waits for the task's environment on stdin. */
function spawnAhead(): ChildProcessWithoutNullStreams {
  const child = spawnRunner({ ...inheritedEnv(), ...LOCAL_TASK_ENV, [TASK_ENV.envOnStdin]: '1' });
  child.on('error', () => undefined); // a runner that could not start: the task starts its own
  return child;
}

/**
 * The commands that run a workflow locally (unless `--aws`), whose first task takes the runner
 * started ahead (the same as profile.ts's HOOKED_COMMANDS, which this module does not load).
 */
const WORKFLOW_COMMANDS: readonly string[] = ['backup', 'restore', 'verify', 'migrate'];

/** Arguments with which a workflow command runs no workflow (its help), or not here (`--aws`). */
const NO_LOCAL_RUN: readonly string[] = ['--help', '-h', '--aws', '--version', '-V'];

/** The runner started for this command and not yet taken by a task. */
let early: ChildProcessWithoutNullStreams | undefined;

/**
 * Starts a runner now when the command line `args` (without node's and the script's) is a
 * command that runs a local workflow: its first word is one of WORKFLOW_COMMANDS, as
 * commands/index.ts's commandNameOf reads it, and nothing says it runs none (`--help`) or runs on
 * AWS (`--aws`). Anything else — a bad option, an input the command refuses — is found out by the
 * command itself, and the runner is ended when main() returns (endRunnerAhead).
 */
export function startRunnerAhead(args: readonly string[]): void {
  const words = args.filter((arg) => !arg.startsWith('-'));
  if (early !== undefined || !WORKFLOW_COMMANDS.includes(words[0] ?? '')) return;
  if (args.some((arg) => NO_LOCAL_RUN.includes(arg))) return;
  early = spawnAhead();
}

/**
 * A runner waiting for its task: the one started for this command if it still runs (once; it is
 * the caller's from then on), else a new one.
 */
export function takeRunnerAhead(): ChildProcessWithoutNullStreams {
  const taken = early;
  early = undefined;
  if (taken !== undefined && taken.exitCode === null && taken.signalCode === null) return taken;
  taken?.kill('SIGKILL');
  return spawnAhead();
}

/** Ends the runner started for this command if no task took it: it has done nothing. */
export function endRunnerAhead(): void {
  early?.kill('SIGKILL');
  early = undefined;
}
