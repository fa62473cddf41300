/**
 * Names shared by the CDK definitions (lib/) and the local executor (cli/): state names are how
 * the local executor binds its in-process handlers to the synthesized ASL, so they are defined
 * once, here.
 */
export const BACKUP_STATES = {
  preflight: 'Preflight',
  dump: 'Dump',
  record: 'Record',
  cleanup: 'Cleanup',
  failed: 'BackupFailed',
} as const;

/** The server-backup workflow's states (lib/server-backup-workflow.ts). */
export const SERVER_BACKUP_STATES = {
  list: 'ListDatabases',
  map: 'BackupDatabases',
  member: 'BackupDatabase',
  memberFailed: 'DatabaseFailed',
  record: 'RecordSet',
  complete: 'SetComplete',
  failed: 'BackupSetFailed',
} as const;

export const RESTORE_STATES = {
  preflight: 'RestorePreflight',
  safetyBackup: 'SafetyBackup',
  restore: 'Restore',
  cleanup: 'RestoreCleanup',
  record: 'RestoreRecord',
  failed: 'RestoreFailed',
} as const;

export const VERIFY_STATES = {
  preflight: 'VerifyPreflight',
  verify: 'Verify',
  record: 'VerifyRecord',
} as const;

export const MIGRATE_STATES = {
  preflight: 'MigratePreflight',
  schemaTest: 'SchemaTest',
  scaleDown: 'ScaleDownService',
  freeze: 'Freeze',
  migrate: 'Migrate',
  record: 'MigrateRecord',
  updateSecret: 'UpdateTargetSecret',
  cutoverCommand: 'RunCutoverCommand',
  scaleUp: 'ScaleUpService',
  finish: 'MigrateFinish',
  failed: 'MigrateCleanup',
  failState: 'MigrateFailed',
} as const;

/**
 * The errors the announcer (lib/run-events.ts) fails with, after a stopped run, when the cleanup it
 * ran says it left something behind (`left`; the cause is that list as JSON): not the cleanup's
 * own failure, which it fails with as it came.
 */
export const LEFT_BEHIND_ERRORS = {
  Migration: 'pgferry.MigrationLeftBehind',
  Restore: 'pgferry.RestoreLeftBehind',
} as const;

/**
 * The execution statuses that skip a workflow's Catch steps (a stopped or timed-out execution):
 * on AWS the announcer runs its cleanup instead (lib/run-events.ts), and records what it did.
 */
export const STOPPED_STATUSES = ['ABORTED', 'TIMED_OUT'] as const;

/** Whether an execution of this status skipped its workflow's cleanup, which the announcer ran. */
export function wasStopped(status: string | undefined): boolean {
  return (STOPPED_STATUSES as readonly (string | undefined)[]).includes(status);
}

export type WorkflowName = 'backup' | 'restore' | 'verify' | 'migrate';
export const WORKFLOW_NAMES: readonly WorkflowName[] = ['backup', 'restore', 'verify', 'migrate'];

/** The pg-tools container's name in its task definition, and its environment contract. */
export const PG_TOOLS_CONTAINER = 'pg-tools';
export const TASK_ENV = {
  action: 'PGFERRY_ACTION',
  /** The job to run, by reference (see core/jobs.ts): the store it is in, and its key there. */
  jobStore: 'PGFERRY_JOB_STORE',
  jobKey: 'PGFERRY_JOB_KEY',
  binDirs: 'PGFERRY_PG_BIN_DIRS',
  /**
   * Set (to `1`) only by the local executor, which holds the task's stdin open: when it ends, the
   * CLI that started the task is gone, and the task stops rather than run on orphaned.
   */
  stopWithParent: 'PGFERRY_STOP_WITH_PARENT',
  /**
   * Set (to `1`) only by the local executor, which starts the runner ahead of its task: the rest
   * of the task's environment (its override, the passwords) comes as one line of JSON on stdin,
   * the whole environment the task is to run with. Stdin ending first: no task came, the runner
   * exits (0) having done nothing.
   */
  envOnStdin: 'PGFERRY_TASK_ENV_ON_STDIN',
  /**
   * Seconds without progress after which the runner stops (its progress watchdog): set by the
   * task definition on AWS (`tasks.stallTimeoutMinutes`), inherited from the CLI's environment
   * locally.
   */
  stallTimeout: 'PGFERRY_STALL_TIMEOUT_SECONDS',
} as const;

/** The runner's entry in the pg-tools image: the last word of the container's command. */
export const RUNNER_CONTAINER_ENTRY = '/app/main.js';

/**
 * Node's flags for the pg-tools runner by default (the image's CMD, and the local runner's): a
 * 1 MiB young generation. The runner streams many short-lived chunks; V8's default (up to 16 MiB
 * semi-spaces) held about 20 MiB more resident memory during an S3 upload, at no gain in speed.
 */
export const RUNNER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/**
 * Node's flags for a runner that restores (`restore`, and `verify`, whose drill restores the same
 * way): a fixed 6 MiB young generation. A streamed restore allocates many short-lived 1 MiB
 * buffers (zstd's output, the backup's reads: ~1.8 GB for the 987 MiB bench database); with 1 MiB
 * semi-spaces they are promoted and drive ~50–70 full mark-compacts of a 12 MB heap. That
 * restore's runner took 4.3–5.0 CPU s, with these flags 3.2 (one mark-compact), for ~12 MiB more
 * peak RSS (141–145 MiB). 4 MiB was not enough; `--max-semi-space-size` alone lets V8 grow the space only
 * sometimes. The other actions keep the default: a backup to S3 would pass 150 MiB with these,
 * for no gain (docs/benchmark.md, "The restore runner's young generation").
 */
const RESTORING_NODE_FLAGS: readonly string[] = ['--min-semi-space-size=6', '--max-semi-space-size=6'];

/** Node's flags for the runner of the task `action` (TASK_ENV.action). */
export function runnerNodeFlags(action: string): readonly string[] {
  return action === 'restore' || action === 'verify' ? RESTORING_NODE_FLAGS : RUNNER_NODE_FLAGS;
}

/**
 * The container command (ECS's `ContainerOverride.command`, replacing the image's CMD) that runs
 * `action`'s runner with its Node flags; `undefined` when they are the image's default.
 */
export function runnerCommandOverride(action: string): string[] | undefined {
  const flags = runnerNodeFlags(action);
  return flags === RUNNER_NODE_FLAGS ? undefined : [...flags, RUNNER_CONTAINER_ENTRY];
}
