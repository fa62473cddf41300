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
