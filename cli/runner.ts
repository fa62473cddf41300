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
import { RUNNER_CONTAINER_ENTRY, RUNNER_NODE_FLAGS, runnerNodeFlags, TASK_ENV } from '../core/workflows';
import { REPO_ROOT } from '../lib/paths';

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

/**
 * The Node flags a container command gives its runner (ECS's `ContainerOverride.command`, which
 * replaces the image's CMD: Node's flags, then the runner's entry); none: the image's default.
 */
export function nodeFlagsOfCommand(command: readonly string[] | undefined): readonly string[] {
  if (command === undefined) return RUNNER_NODE_FLAGS;
  if (command[command.length - 1] !== RUNNER_CONTAINER_ENTRY)
    throw new Error(
      `the pg-tools container command must end with ${RUNNER_CONTAINER_ENTRY} (got ${JSON.stringify(command)})`,
    );
  return command.slice(0, -1);
}

/** A runner process, and the Node flags it was started with. */
export type Runner = ChildProcessWithoutNullStreams & { readonly nodeFlags: readonly string[] };

/** Starts the pg-tools entrypoint (dist's, for the image's) with Node's `nodeFlags` and `env`. */
export function spawnRunner(nodeFlags: readonly string[], env: NodeJS.ProcessEnv): Runner {
  const entrypoint = path.join(REPO_ROOT, 'dist', 'containers', 'pg-tools', 'src', 'main.js');
  const child = spawn(process.execPath, [...nodeFlags, entrypoint], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined); // the task may exit first
  return Object.assign(child, { nodeFlags });
}

/** A runner started ahead of its task, with `nodeFlags`: it waits for the task's environment on stdin. */
function spawnAhead(nodeFlags: readonly string[]): Runner {
  const child = spawnRunner(nodeFlags, { ...inheritedEnv(), ...LOCAL_TASK_ENV, [TASK_ENV.envOnStdin]: '1' });
  child.on('error', () => undefined); // a runner that could not start: the task starts its own
  return child;
}

/**
 * The commands that run a workflow locally (unless `--aws`), whose first task takes the runner
 * started ahead (the same as profile.ts's HOOKED_COMMANDS, which this module does not load), and
 * that task's action (TASK_ENV.action), whose Node flags the runner is started with. (A clean
 * restore's safety backup is a nested backup, with its own runner: the restore task is still the
 * one that takes the restore command's.)
 */
const FIRST_ACTION_OF_COMMAND: Readonly<Record<string, string>> = {
  backup: 'dump',
  restore: 'restore',
  verify: 'verify',
  migrate: 'migrate',
};

/** Arguments with which a workflow command runs no workflow (its help), or not here (`--aws`). */
const NO_LOCAL_RUN: readonly string[] = ['--help', '-h', '--aws', '--version', '-V'];

/**
 * The action of the first task the command line `args` (without node's and the script's) runs
 * locally, when it runs one: its first word is one of FIRST_ACTION_OF_COMMAND's commands, as
 * commands/index.ts's commandNameOf reads it, and nothing says it runs none (`--help`) or runs on
 * AWS (`--aws`). Anything else — a bad option, an input the command refuses — is found out by the
 * command itself.
 */
export function firstLocalActionOf(args: readonly string[]): string | undefined {
  const command = args.find((arg) => !arg.startsWith('-')) ?? '';
  if (!Object.hasOwn(FIRST_ACTION_OF_COMMAND, command)) return undefined;
  if (args.some((arg) => NO_LOCAL_RUN.includes(arg))) return undefined;
  return FIRST_ACTION_OF_COMMAND[command];
}

/** Whether `runner` was started with `nodeFlags`, and so may run a task that asks for them. */
export function runsWith(runner: Pick<Runner, 'nodeFlags'>, nodeFlags: readonly string[]): boolean {
  return runner.nodeFlags.join(' ') === nodeFlags.join(' ');
}

/** The runner started for this command and not yet taken by a task. */
let early: Runner | undefined;

/**
 * Starts a runner now, with the Node flags of its first task's action, when the command line
 * `args` runs a local workflow (firstLocalActionOf); a command that then runs none ends it when
 * main() returns (endRunnerAhead).
 */
export function startRunnerAhead(args: readonly string[]): void {
  const action = firstLocalActionOf(args);
  if (early === undefined && action !== undefined) early = spawnAhead(runnerNodeFlags(action));
}

/**
 * A runner with `nodeFlags` waiting for its task: the one started for this command if it still
 * runs with them (once; it is the caller's from then on), else a new one.
 */
export function takeRunnerAhead(nodeFlags: readonly string[]): Runner {
  const taken = early;
  early = undefined;
  if (
    taken !== undefined &&
    taken.exitCode === null &&
    taken.signalCode === null &&
    runsWith(taken, nodeFlags)
  )
    return taken;
  taken?.kill('SIGKILL');
  return spawnAhead(nodeFlags);
}

/** Ends the runner started for this command if no task took it: it has done nothing. */
export function endRunnerAhead(): void {
  early?.kill('SIGKILL');
  early = undefined;
}
