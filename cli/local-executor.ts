/**
 * Runs the workflows' synthesized ASL on this machine with aws-local-stepfunctions: Lambda
 * states call the very handlers deployed to Lambda, in-process; the ECS state starts the
 * pg-tools entrypoint as a child process with the environment Fargate would give it. AWS's limits
 * on what passes between them are enforced as on AWS (see ./aws-limits).
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
import { type JobRef, MigratePlanSchema } from '../core/contracts';
import { type Credentials, credentialsEnv, credentialsFromEnv } from '../core/credentials';
import { PgferryError } from '../core/errors';
import { loadJob } from '../core/jobs';
import { TLS_REFUSED_ENV, tlsRefusals } from '../core/postgres/connect';
import { openStore } from '../core/store';
import { type TaskProgress, taskProgressOf } from '../core/task-progress';
import { describeAbandonedFolders, removeAbandonedWorkFolders, workRoot } from '../core/work-folders';
import {
  BACKUP_STATES,
  MIGRATE_STATES,
  PG_TOOLS_CONTAINER,
  RESTORE_STATES,
  runnerNodeFlags,
  SERVER_BACKUP_STATES,
  VERIFY_STATES,
  type WorkflowName,
} from '../core/workflows';
import { REPO_ROOT } from '../lib/paths';
import { checkContainerOverrides, checkPayload, MAX_PAYLOAD_BYTES, payloadBytes } from './aws-limits';
import {
  inheritedEnv,
  LOCAL_TASK_ENV,
  nodeFlagsOfCommand,
  type Runner,
  runsWith,
  spawnRunner,
  takeRunnerAhead,
} from './runner';

export { RUNNER_MALLOC_TUNABLES } from './runner';

export interface LocalRunOptions {
  /**
   * The run's passwords, which the steps that connect are given: the handlers as an argument, the
   * pg-tools task in its environment. The command builds them (from the URL, PGPASSWORD, …).
   * @default this process's own `PGFERRY_SOURCE_PASSWORD` and `PGFERRY_TARGET_PASSWORD`, as a
   * Lambda function or the task would read them
   */
  credentials?: Credentials;
  /** The bytes the pg-tools task's long steps have done (its `progress` log lines). */
  onProgress?: (progress: TaskProgress) => void;
  /** Phases the pg-tools task enters (download, pgRestore, …). */
  onPhase?: (phase: string) => void;
  /** Every log line of the pg-tools task (verbose mode). */
  onTaskLog?: (line: string) => void;
  /**
   * The execution's event history, as Step Functions would record it: the interpreter's events,
   * and a `TaskScheduled` event with the parameters each task state is given (ECS's overrides
   * included), as in Step Functions' own history.
   */
  onEvent?: (event: unknown) => void;
  /**
   * Aborted to interrupt the run (Ctrl-C): the running task is sent the abort reason's signal
   * (its `signal`, else SIGTERM) and cleans up; no task starts after. The workflow's own steps
   * after a failed task (Record, Cleanup) still run.
   */
  signal?: AbortSignal;
  /** What the run did besides its work, in one line (work folders of dead runs it removed). */
  onNotice?: (line: string) => void;
}

/** The ASL the build generated from lib/ (see scripts/generate-asl.ts). */
export function loadDefinition(name: WorkflowName | 'server-backup'): object {
  const file = path.join(REPO_ROOT, 'dist', 'asl', `${name}.asl.json`);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as object;
  } catch {
    throw new Error(`missing ${file}: run \`npm run build\``);
  }
}

type LocalHandler = (input: unknown) => Promise<unknown>;

/** Runs the backup workflow locally; resolves with its output (a `BackupOutcome`, naming the manifest). */
export async function runBackupWorkflow(input: unknown, options: LocalRunOptions = {}): Promise<unknown> {
  return withRunnerAhead(options, 'dump', async (task) => {
    // Loaded here, after the CLI has configured logging, so the handlers see that configuration.
    const [preflight, record, cleanup] = await Promise.all([
      import('../lambdas/backup/preflight/handler'),
      import('../lambdas/backup/record/handler'),
      import('../lambdas/backup/cleanup/handler'),
    ]);
    const credentials = credentialsOf(options);
    return runWorkflow('backup', input, options, {
      [BACKUP_STATES.preflight]: (event) => preflight.handle(event, credentials),
      [BACKUP_STATES.dump]: task,
      [BACKUP_STATES.record]: record.handler,
      [BACKUP_STATES.cleanup]: cleanup.handler,
    });
  });
}

/** Runs the restore workflow locally; resolves with its output (a `RestoreOutcome`, naming the report). */
export async function runRestoreWorkflow(input: unknown, options: LocalRunOptions = {}): Promise<unknown> {
  return withRunnerAhead(options, 'restore', async (task) => {
    const [preflight, record, cleanup] = await Promise.all([
      import('../lambdas/restore/preflight/handler'),
      import('../lambdas/restore/record/handler'),
      import('../lambdas/restore/cleanup/handler'),
    ]);
    const credentials = credentialsOf(options);
    return runWorkflow('restore', input, options, {
      [RESTORE_STATES.preflight]: (event) => preflight.handle(event, credentials),
      [RESTORE_STATES.safetyBackup]: (params) => runNestedBackup(params, options),
      [RESTORE_STATES.restore]: task,
      [RESTORE_STATES.cleanup]: (event) => cleanup.handle(event, credentials),
      [RESTORE_STATES.record]: record.handler,
    });
  });
}

/** Runs the verify workflow locally; resolves with its output (a `VerifyOutcome`, naming the report). */
export async function runVerifyWorkflow(input: unknown, options: LocalRunOptions = {}): Promise<unknown> {
  return withRunnerAhead(options, 'verify', async (task) => {
    const [preflight, record] = await Promise.all([
      import('../lambdas/verify/preflight/handler'),
      import('../lambdas/verify/record/handler'),
    ]);
    return runWorkflow('verify', input, options, {
      [VERIFY_STATES.preflight]: preflight.handler,
      [VERIFY_STATES.verify]: task,
      [VERIFY_STATES.record]: record.handler,
    });
  });
}

export interface ServerBackupRunOptions extends LocalRunOptions {
  /** Told each member as its nested backup ends: its outcome, or its error. */
  onMember?: (result: { database: string; outcome?: unknown; error?: Error }) => void;
}

/**
 * Runs the server-backup workflow locally: its listing and record steps in-process, each Map
 * iteration's `startExecution.sync:2` as a nested local run of the backup workflow. Resolves
 * with the record step's output (a `ServerBackupOutcome`) also when the set failed — the
 * execution then ends in its Fail state, which the caller tells from the outcome's status.
 */
export async function runServerBackupWorkflow(
  input: unknown,
  options: ServerBackupRunOptions = {},
): Promise<unknown> {
  const [list, record] = await Promise.all([
    import('../lambdas/server-backup/list/handler'),
    import('../lambdas/server-backup/record/handler'),
  ]);
  const credentials = credentialsOf(options);
  let recorded: unknown;
  const run = runWorkflow('server-backup', input, options, {
    [SERVER_BACKUP_STATES.list]: (event) => list.handle(event, credentials),
    [SERVER_BACKUP_STATES.member]: async (params) => {
      const { Input } = params as { Input?: { source?: { database?: string } } };
      const database = Input?.source?.database ?? '';
      try {
        const output = await runBackupWorkflow(Input, {
          ...options,
          credentials: { source: credentials.source },
          // Several dumps at once would tear one progress line: members are reported as they end.
          onProgress: undefined,
          onPhase: undefined,
        });
        options.onMember?.({ database, outcome: output });
        return { Status: 'SUCCEEDED', Output: output };
      } catch (err) {
        options.onMember?.({ database, error: err as Error });
        throw err;
      }
    },
    [SERVER_BACKUP_STATES.record]: async (event) => {
      // An interrupted run records no set: its complete members stay listed as the backups they are.
      options.signal?.throwIfAborted();
      recorded = await record.handler(event);
      return recorded;
    },
  });
  try {
    return await run;
  } catch (err) {
    if (recorded !== undefined && (err as Error).name === 'BackupSetFailed') return recorded;
    throw err;
  }
}

export interface MigrateRunOptions extends LocalRunOptions {
  /** Told the plan as soon as preflight has made it (before any data moves). */
  onPlan?: (plan: unknown) => void;
  /** Runs the cutover command (`--on-cutover`) for the plan. */
  runCutoverCommand?: (plan: unknown) => Promise<void>;
}

/** AWS-only states of the migrate workflow (Secrets Manager, ECS): refused locally. */
async function awsOnly(): Promise<never> {
  throw new PgferryError(
    'InvalidInput',
    'cutover secrets and ECS services are updated only on AWS (pgferry migrate --aws)',
  );
}

/** Runs the migrate workflow locally; resolves with its output (a `MigrateOutcome`, naming the report). */
export async function runMigrateWorkflow(input: unknown, options: MigrateRunOptions = {}): Promise<unknown> {
  // The first of its tasks (the schema test, else the migration) takes the runner started ahead.
  return withRunnerAhead(options, 'migrate', async (task) => {
    const [preflight, steps] = await Promise.all([
      import('../lambdas/migrate/preflight/handler'),
      import('../lambdas/migrate/steps/handler'),
    ]);
    const credentials = credentialsOf(options);
    const step: LocalHandler = (event) => steps.handle(event, credentials);
    return runWorkflow('migrate', input, options, {
      [MIGRATE_STATES.preflight]: async (event) => {
        const state = await preflight.handle(event, credentials);
        if (options.onPlan) options.onPlan(await migratePlanOf(state.job));
        return state;
      },
      [MIGRATE_STATES.schemaTest]: task,
      [MIGRATE_STATES.freeze]: step,
      [MIGRATE_STATES.migrate]: task,
      [MIGRATE_STATES.record]: step,
      [MIGRATE_STATES.cutoverCommand]: async (event) => {
        const { state } = event as { state: { job: JobRef } };
        if (!options.runCutoverCommand) throw new PgferryError('InvalidInput', 'no cutover command to run');
        await options.runCutoverCommand(await migratePlanOf(state.job));
        return {};
      },
      [MIGRATE_STATES.finish]: step,
      [MIGRATE_STATES.failed]: step,
      [MIGRATE_STATES.updateSecret]: awsOnly,
      [MIGRATE_STATES.scaleDown]: awsOnly,
      [MIGRATE_STATES.scaleUp]: awsOnly,
      RestartService: awsOnly,
    });
  });
}

function migratePlanOf(job: JobRef) {
  return loadJob(openStore, job, 'migrate', MigratePlanSchema);
}

/** The run's passwords: those the command gave, else this process's own (see `LocalRunOptions`). */
function credentialsOf(options: LocalRunOptions): Credentials {
  return options.credentials ?? credentialsFromEnv(process.env);
}

/**
 * The `states:startExecution.sync` of the backup workflow, locally: a nested run of it. Its
 * source is the restore's target, so the target's password serves as the source's.
 */
async function runNestedBackup(params: unknown, options: LocalRunOptions): Promise<unknown> {
  const { Input } = params as { Input?: unknown };
  const credentials: Credentials = { source: credentialsOf(options).target };
  const output = await runBackupWorkflow(Input, { ...options, credentials });
  return { Status: 'SUCCEEDED', Output: output };
}

async function runWorkflow(
  name: WorkflowName | 'server-backup',
  input: unknown,
  options: LocalRunOptions,
  handlers: Record<string, LocalHandler>,
): Promise<unknown> {
  options.signal?.throwIfAborted();
  // Work folders are the runner's, on this host: those of runs that died (SIGKILL) go now. On
  // AWS each task has a disk of its own, gone with it.
  if (name !== 'backup' && name !== 'server-backup') {
    const removed = await removeAbandonedWorkFolders(workRoot(process.env));
    if (removed.length) options.onNotice?.(describeAbandonedFolders(removed));
  }
  // The interpreter cannot apply a state's paths to a null input (`States.Runtime`); every other
  // value reaches the first state, which refuses what is not a request.
  if (input === null)
    throw new PgferryError('InvalidInput', `invalid ${name} request: null, not a JSON object`);
  // StartExecution refuses a larger input: the same words as the first state's own check.
  const inputBytes = payloadBytes(input);
  if (inputBytes > MAX_PAYLOAD_BYTES) {
    throw new PgferryError(
      'InvalidInput',
      `invalid ${name} request: ${inputBytes} bytes of JSON, more than the ${MAX_PAYLOAD_BYTES} Step Functions accepts`,
    );
  }
  // Validated when the build generated it (scripts/generate-asl.ts): validating again here cost
  // about 0.7 s of CPU per run.
  const machine = new StateMachine(loadDefinition(name) as never, {
    validationOptions: { noValidate: true },
  });
  return runDefinition(machine, name, input, options, handlers);
}

/**
 * Runs `machine` with `handlers` for its task states, enforcing Step Functions' 256 KiB on every
 * state's input and output (from the event log), on what each task is given and returns, and on
 * the execution's output: the first payload over it ends the run with `States.DataLimitExceeded`,
 * which no `Catch` matches, as on AWS. Exported for the tests of that enforcement.
 */
export async function runDefinition(
  machine: StateMachine,
  name: string,
  input: unknown,
  options: LocalRunOptions,
  handlers: Record<string, LocalHandler>,
): Promise<unknown> {
  let exceeded: Error | undefined;
  const check = (what: string, value: unknown) => {
    exceeded ??= checkPayload(what, value);
  };
  const guarded: Record<string, LocalHandler> = {};
  for (const [state, handler] of Object.entries(handlers)) {
    guarded[state] = async (parameters) => {
      // The event log is read asynchronously: let it catch up with the states before this one, so
      // that no task starts after a state that exceeded a limit.
      await new Promise((resolve) => setImmediate(resolve));
      check(`the input of task ${state}`, parameters);
      if (exceeded) throw exceeded;
      options.onEvent?.({ type: 'TaskScheduled', timestamp: Date.now(), state, parameters });
      const result = await handler(parameters);
      check(`the result of task ${state}`, result);
      if (exceeded) throw exceeded;
      return result;
    };
  }
  const id = randomUUID();
  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: guarded as never },
    // The context object's execution id, as Step Functions gives it (`$$.Execution.Id`).
    context: { Execution: { Id: `local:${name}:${id}`, Name: id } },
  });
  const events = (async () => {
    for await (const event of execution.eventLogs) {
      checkEvent(event as LoggedEvent, check);
      options.onEvent?.(event);
    }
  })();
  let output: unknown;
  try {
    output = await execution.result;
  } catch (err) {
    throw unwrapExecutionError(err);
  } finally {
    await events.catch(() => undefined);
  }
  // A state without a task after it, or the execution's output, exceeded the limit.
  if (exceeded) throw exceeded;
  return output;
}

/** The parts of the interpreter's events that carry payloads. */
interface LoggedEvent {
  type: string;
  input?: unknown;
  output?: unknown;
  state?: { name: string; input?: unknown; output?: unknown };
}

function checkEvent(event: LoggedEvent, check: (what: string, value: unknown) => void): void {
  switch (event.type) {
    case 'StateEntered':
      check(`the input of state ${event.state?.name}`, event.state?.input);
      break;
    case 'StateExited':
      check(`the output of state ${event.state?.name}`, event.state?.output);
      break;
    case 'ExecutionSucceeded':
      check("the execution's output", event.output);
      break;
  }
}

/** Turns the interpreter's ExecutionError back into the error the workflow failed with. */
function unwrapExecutionError(err: unknown): Error {
  if (err instanceof ExecutionError && err.cause instanceof Error) {
    const cause = err.cause;
    const failure = new Error(cause.message);
    failure.name = cause.name;
    return failure;
  }
  return err instanceof Error ? err : new Error(String(err));
}

interface EcsRunTaskParameters {
  Overrides?: {
    ContainerOverrides?: {
      Name?: string;
      Command?: string[];
      Environment?: { Name: string; Value: string }[];
    }[];
  };
}

/**
 * Runs a workflow whose task states are `task`, with a pg-tools runner started ahead of the
 * first of them (see ./runner.ts): the one the command started as it began, else one started
 * now. Its start (Node's and its modules' loading, ~0.4 s) runs beside the CLI's own loading and
 * the workflow's first steps (loading the handlers, the preflight) instead of after them. Until
 * its task comes, the runner has only what this process's environment gives every task, and
 * waits for the rest (the task's override, the passwords) on its stdin (TASK_ENV.envOnStdin);
 * then it runs as if started with all of it. The first task takes it, later ones start their
 * own; a workflow that ends before any task ends it unused. It is started with the Node flags of
 * `firstAction`, the action of the workflow's first task (runnerNodeFlags).
 */
async function withRunnerAhead<T>(
  options: LocalRunOptions,
  firstAction: string,
  run: (task: LocalHandler) => Promise<T>,
): Promise<T> {
  options.signal?.throwIfAborted();
  let ahead: Runner | undefined = takeRunnerAhead(runnerNodeFlags(firstAction));
  const task: LocalHandler = (params) => {
    const taken = ahead;
    ahead = undefined;
    // A task that refused before giving it its environment leaves it unused: it ends.
    return runPgToolsTask(params, options, taken).finally(() => {
      if (taken && taken.exitCode === null && taken.signalCode === null) taken.kill('SIGKILL');
    });
  };
  try {
    return await run(task);
  } finally {
    // Never given a task: it has done nothing, and ends at once.
    ahead?.kill('SIGKILL');
  }
}

/**
 * The ECS `runTask.sync` state, locally: the container's entrypoint as a child process. Its
 * environment is the container override from the state's parameters plus what the task
 * definition and the task role would provide (tool paths, AWS settings), and the run's
 * passwords (on AWS these come from Secrets Manager or IAM instead).
 */
export async function runPgToolsTask(
  params: unknown,
  options: LocalRunOptions = {},
  ahead?: Runner,
): Promise<unknown> {
  const overrides = (params as EcsRunTaskParameters).Overrides?.ContainerOverrides;
  const override = overrides?.find((o) => o.Name === PG_TOOLS_CONTAINER);
  if (!override?.Environment)
    throw new PgferryError('InvalidInput', 'the ECS task has no pg-tools container override');
  const tooLarge = checkContainerOverrides(overrides);
  if (tooLarge) throw tooLarge;
  // The command replaces the image's CMD, as on ECS: Node's flags for the runner, then its entry.
  let nodeFlags: readonly string[];
  try {
    nodeFlags = nodeFlagsOfCommand(override.Command);
  } catch (err) {
    throw new PgferryError('InvalidInput', (err as Error).message);
  }
  const { signal } = options;
  // Interrupted before it started: nothing to stop, nothing to clean up.
  signal?.throwIfAborted();
  const env: NodeJS.ProcessEnv = inheritedEnv();
  Object.assign(env, credentialsEnv(credentialsOf(options)));
  for (const { Name, Value } of override.Environment) env[Name] = Value;
  Object.assign(env, LOCAL_TASK_ENV);
  const refusals = tlsRefusals();
  if (refusals) env[TLS_REFUSED_ENV] = refusals;

  let child: ChildProcessWithoutNullStreams;
  if (
    ahead?.pid !== undefined &&
    runsWith(ahead, nodeFlags) &&
    ahead.exitCode === null &&
    ahead.signalCode === null &&
    ahead.stdin.writable
  ) {
    // Started ahead with the task's Node flags and the environment this process gives every
    // task: given the rest now. (Started with other flags, it is ended: a new one is started.)
    child = ahead;
    child.stdin.write(`${JSON.stringify(env)}\n`);
  } else {
    ahead?.kill('SIGKILL');
    child = spawnRunner(nodeFlags, env);
  }
  let failure: { name: string; message: string } | undefined;
  const stderrTail: string[] = [];
  const onLine = (line: string) => {
    options.onTaskLog?.(line);
    let entry: { message?: string; errorName?: string; errorMessage?: string; phase?: string };
    try {
      entry = JSON.parse(line);
    } catch {
      stderrTail.push(line);
      if (stderrTail.length > 5) stderrTail.shift();
      return;
    }
    if (entry.message === 'progress') {
      const progress = taskProgressOf(entry);
      if (progress) options.onProgress?.(progress);
    } else if (entry.message === 'phase') {
      options.onPhase?.(entry.phase ?? '');
    } else if (entry.message === 'failed') {
      failure = { name: entry.errorName ?? 'Error', message: entry.errorMessage ?? 'the task failed' };
    }
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  // The task cleans up and stops by itself, within its own limit (see its main.ts).
  const stop = () =>
    child.kill((signal?.reason as { signal?: NodeJS.Signals } | undefined)?.signal ?? 'SIGTERM');
  signal?.addEventListener('abort', stop, { once: true });
  const [code, killedBy] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve([c, s]));
  }).finally(() => signal?.removeEventListener('abort', stop));
  child.stdin.destroy();
  if (code === 0) return { LastStatus: 'STOPPED', Containers: [{ Name: PG_TOOLS_CONTAINER, ExitCode: 0 }] };
  const error = new Error(
    failure?.message ??
      `the pg-tools task stopped (${code ?? killedBy}): ${stderrTail.join(' | ') || 'no output'}`,
  );
  error.name = failure?.name ?? 'States.TaskFailed';
  throw error;
}
