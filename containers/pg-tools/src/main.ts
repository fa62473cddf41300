/**
 * Entrypoint of the pg-tools container (Fargate on AWS, a child process locally).
 *
 * Environment contract — the same on both:
 *   PGFERRY_ACTION          what to do: `dump`, `restore`, `verify`, `migrate-schema-test` or `migrate`
 *   PGFERRY_JOB_STORE       the store holding the job (the plan its workflow's preflight stored,
 *   PGFERRY_JOB_KEY         never containing secrets) and its key there: see core/jobs.ts
 *   PGFERRY_PG_BIN_DIRS     extra directories holding PostgreSQL client tools (colon-separated)
 *   PGFERRY_SOURCE_PASSWORD the source's password, when the job names no Secrets Manager secret
 *   PGFERRY_TARGET_PASSWORD the restore target's password, likewise
 *   PGFERRY_WORK_DIR        where a restore downloads the backup (default: the system's temp dir)
 *   PGFERRY_STOP_WITH_PARENT `1` locally: stop when stdin ends (the CLI that started the task died)
 *   PGFERRY_BINDINGS        on AWS (the task definition's): the deployment's bindings, which the
 *                           job is checked against before anything connects (core/deployment.ts)
 *   PGFERRY_STALL_TIMEOUT_SECONDS  stop a run that makes no progress for this long (default 600;
 *                           the task definition's on AWS): see ./watchdog.ts
 *   AWS_*                   the standard SDK settings (region, credentials, AWS_ENDPOINT_URL_S3)
 *
 * Output: JSON log lines on stdout (`progress`, then `succeeded` or `failed`); exit status 0
 * on success, 1 on failure. The result itself goes to the store (`dump-result.json`).
 */
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { type ConnectionRole, nameSessions, resolvePassword, sessionName } from '../../../core/connection';
import {
  BackupPlanSchema,
  type Connection,
  MigratePlanSchema,
  RestorePlanSchema,
  VerifyPlanSchema,
} from '../../../core/contracts';
import { currentDeployment } from '../../../core/deployment';
import { errorMessage, PgferryError } from '../../../core/errors';
import { jobRefFromEnv, loadJob } from '../../../core/jobs';
import { createLogger } from '../../../core/logging';
import { checkRunnerJob } from '../../../core/login-policy';
import { connectPg } from '../../../core/postgres';
import { openStore } from '../../../core/store';
import type { JobKind } from '../../../core/store-keys';
import { TASK_ENV } from '../../../core/workflows';
import { runDump } from './dump';
import { runMigrate, runSchemaTest } from './migrate';
import { runRestore } from './restore';
import { runVerify } from './verify';
import {
  endRunSessions,
  ProgressWatchdog,
  probeServers,
  processTreeBytes,
  STALL_TIMEOUT_ENV,
  stallTimeoutSeconds,
  usedSpace,
} from './watchdog';

const logger = createLogger('pgferry-pg-tools');

/** The kind of job each action runs. */
const JOB_KIND_OF_ACTION: Record<string, JobKind> = {
  dump: 'backup',
  restore: 'restore',
  verify: 'verify',
  'migrate-schema-test': 'migrate',
  migrate: 'migrate',
};

/** A server the run works on, as the watchdog's probe reaches it. */
function probeTarget(connection: Connection, role: ConnectionRole) {
  let password: Promise<string | undefined> | undefined;
  return {
    describe: `${connection.host}:${connection.port}`,
    connect: async () => {
      password ??= resolvePassword(connection, role, process.env);
      const secret = await password;
      // pg_stat_activity is the whole server's: any database will do, the target's may not exist.
      return connectPg(connection, secret).catch(() => connectPg(connection, secret, 'postgres'));
    },
  };
}

/**
 * Arms the progress watchdog for run `runId` (see ./watchdog.ts): its sessions are named after
 * it, so that the probe of `servers` finds them; a stall stops the tools, ends the run's sessions
 * on `servers` and calls `abort`.
 */
function watchRun(
  runId: string,
  servers: ReturnType<typeof probeTarget>[],
  abort: (error: PgferryError) => void,
  extra?: () => Promise<number>,
): ProgressWatchdog {
  nameSessions(`pgferry ${runId}`);
  const seconds = stallTimeoutSeconds(process.env);
  logger.info('watchdog', { stallTimeoutSeconds: seconds, sessions: sessionName() });
  return new ProgressWatchdog({
    stallMs: seconds * 1000,
    setBy: `${STALL_TIMEOUT_ENV}=${seconds}`,
    onStall: (error) => {
      // The tools are frozen first (so that nothing reconnects, and no failure of theirs is
      // recorded as the run's), then their sessions ended, which would outlive them; `abort`
      // kills them. `stalled` keeps anything else from ending the process meanwhile.
      stopTools('SIGSTOP');
      stalled = endRunSessions(servers, sessionName()).then((failures) => {
        if (failures.length) logger.warn('sessions not ended', { failures });
        abort(error);
      });
    },
    bytesMoved: processTreeBytes(process.pid, extra),
    probe: servers.length ? probeServers(servers, sessionName()) : undefined,
  });
}

/** The tools (pg_dump, pg_restore, …) the run started and that still run. */
const children = new Set<ChildProcess>();

/** Set when the watchdog stops the run: it ends the process once the run's sessions are ended. */
let stalled: Promise<void> | undefined;

function stopTools(signal: 'SIGKILL' | 'SIGSTOP' = 'SIGKILL'): void {
  for (const child of children) child.kill(signal);
}

async function main(): Promise<void> {
  const stop = (why: string, errorName = 'Pgferry.Interrupted') => {
    stopTools();
    logger.error('failed', { errorName, errorMessage: why });
    process.exit(1);
  };
  // The watchdog's abort: the same as a signal's (one call, so that it follows the signals' own
  // cleanup wherever that goes).
  const abort = (error: PgferryError) => stop(error.message, error.name);
  // ECS stops a task with SIGTERM: stop pg_dump too, so nothing keeps writing.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => stop(`stopped by ${signal}`));
  // Locally the CLI holds our stdin open; its end means the CLI died (even by SIGKILL), and a run
  // nobody waits for must not keep writing into the store.
  if (process.env[TASK_ENV.stopWithParent] === '1') {
    process.stdin.on('end', () => stop('the process that started the task is gone'));
    process.stdin.on('error', () => stop('the process that started the task is gone'));
    process.stdin.resume();
  }
  const action = process.env[TASK_ENV.action] ?? '';
  const kind = Object.hasOwn(JOB_KIND_OF_ACTION, action) ? JOB_KIND_OF_ACTION[action] : undefined;
  if (!kind) {
    throw new PgferryError(
      'InvalidInput',
      `${TASK_ENV.action} must be "dump", "restore", "verify", "migrate-schema-test" or "migrate" (got ${action || 'nothing'})`,
    );
  }
  // On AWS every job is checked against the deployment's bindings before anything connects or
  // is written; invalid bindings, or an invalid stall timeout, fail here.
  const deployment = currentDeployment();
  stallTimeoutSeconds(process.env);
  const job = jobRefFromEnv(process.env);
  const onChild = (child: ChildProcess) => {
    children.add(child);
    child.on('close', () => children.delete(child));
  };
  switch (action) {
    case 'dump': {
      const plan = await loadJob(openStore, job, kind, BackupPlanSchema);
      checkRunnerJob(deployment, { kind: 'backup', plan });
      logger.appendKeys({ backupId: plan.backupId });
      const watchdog = watchRun(plan.backupId, [probeTarget(plan.source, 'source')], abort);
      const result = await runDump(plan, {
        store: openStore(plan.store),
        env: process.env,
        onProgress: (p) => {
          watchdog.progress();
          logger.info('progress', { ...p });
        },
        onChild,
        onRetry: (reason, attempt) => logger.warn('retrying', { reason, attempt }),
      }).finally(() => watchdog.stop());
      logger.info('succeeded', {
        objects: result.objects.length,
        uncompressedBytes: result.uncompressedBytes,
      });
      return;
    }
    case 'restore': {
      const plan = await loadJob(openStore, job, kind, RestorePlanSchema);
      checkRunnerJob(deployment, { kind: 'restore', plan });
      logger.appendKeys({ restoreId: plan.restoreId, backupId: plan.manifest.id });
      const watchdog = watchRun(plan.restoreId, [probeTarget(plan.request.target, 'target')], abort);
      const report = await runRestore(plan, {
        store: openStore(plan.request.store),
        env: process.env,
        onPhase: (phase) => {
          watchdog.progress();
          logger.info('phase', { phase });
        },
        onChild,
      }).finally(() => watchdog.stop());
      logger.info('succeeded', { timings: report.timings });
      return;
    }
    case 'verify': {
      const plan = await loadJob(openStore, job, kind, VerifyPlanSchema);
      checkRunnerJob(deployment, { kind: 'verify' });
      logger.appendKeys({ verifyId: plan.verifyId, backupId: plan.manifest.id });
      // The throwaway server is no child of the runner: its writes to the work folder count.
      const workDir = process.env.PGFERRY_WORK_DIR ?? tmpdir();
      const watchdog = watchRun(plan.verifyId, [], abort, usedSpace(workDir));
      const report = await runVerify(plan, {
        store: openStore(plan.request.store),
        env: process.env,
        onPhase: (phase) => {
          watchdog.progress();
          logger.info('phase', { phase });
        },
        onChild,
      }).finally(() => watchdog.stop());
      logger.info('succeeded', { restoreSeconds: report.restoreSeconds });
      return;
    }
    case 'migrate-schema-test':
    case 'migrate': {
      const plan = await loadJob(openStore, job, kind, MigratePlanSchema);
      checkRunnerJob(deployment, { kind: 'migrate', plan });
      logger.appendKeys({ migrateId: plan.migrateId });
      const watchdog = watchRun(
        plan.migrateId,
        [probeTarget(plan.request.source, 'source'), probeTarget(plan.request.target, 'target')],
        abort,
      );
      const deps = {
        store: openStore(plan.request.store),
        env: process.env,
        onPhase: (phase: string) => {
          watchdog.progress();
          logger.info('phase', { phase });
        },
        onChild,
      };
      try {
        if (action === 'migrate') {
          const results = await runMigrate(plan, deps);
          logger.info('succeeded', { databases: results.map((r) => r.database) });
        } else {
          const result = await runSchemaTest(plan, deps);
          logger.info('succeeded', { seconds: result.seconds });
        }
      } finally {
        watchdog.stop();
      }
      return;
    }
  }
}

main().then(
  () => (stalled ? undefined : process.exit(0)),
  (err: unknown) => {
    if (stalled) return;
    logger.error('failed', { errorName: (err as Error).name ?? 'Error', errorMessage: errorMessage(err) });
    process.exit(1);
  },
);
