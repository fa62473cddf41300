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
 *   AWS_*                   the standard SDK settings (region, credentials, AWS_ENDPOINT_URL_S3)
 *
 * Output: JSON log lines on stdout (`progress`, then `succeeded` or `failed`); exit status 0
 * on success, 1 on failure. The result itself goes to the store (`dump-result.json`).
 *
 * Interrupted — SIGTERM (ECS stopping the task), SIGINT (Ctrl-C), or locally the CLI's death —
 * a restore, verify or migration stops its tools (SIGTERM, then SIGKILL after 5 s), cleans up
 * (the database it created is dropped, its work folder removed, verify's server stopped), stores
 * its failed report and exits 1, within {@link STOP_SECONDS}; then it exits whatever is left. A
 * dump has nothing of its own to clean up: it kills pg_dump and exits at once, and the backup
 * workflow's Cleanup (or, when the CLI died, the next backup's lease takeover) removes what it
 * stored.
 */
import type { ChildProcess } from 'node:child_process';
import {
  BackupPlanSchema,
  MigratePlanSchema,
  RestorePlanSchema,
  VerifyPlanSchema,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { jobRefFromEnv, loadJob } from '../../../core/jobs';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import type { JobKind } from '../../../core/store-keys';
import { TASK_ENV } from '../../../core/workflows';
import { runDump } from './dump';
import { runMigrate, runSchemaTest } from './migrate';
import { runRestore } from './restore';
import { runVerify } from './verify';

const logger = createLogger('pgferry-pg-tools');

/**
 * How long an interrupted run has to clean up before it exits anyway. ECS sends SIGKILL 30 s
 * after SIGTERM by default (the task definition's `stopTimeout`), and the CLI waits 30 s for an
 * interrupted run: 20 s leave room for the report and the workflow's own cleanup steps.
 */
const STOP_SECONDS = 20;
/** How long a tool has to exit after SIGTERM before it is killed. */
const TOOL_STOP_SECONDS = 5;

/** The kind of job each action runs. */
const JOB_KIND_OF_ACTION: Record<string, JobKind> = {
  dump: 'backup',
  restore: 'restore',
  verify: 'verify',
  'migrate-schema-test': 'migrate',
  migrate: 'migrate',
};

const children = new Set<ChildProcess>();
const interrupted = new AbortController();

/**
 * Starts the stop: the runners see `interrupted.signal` aborted and clean up; the tools are told
 * to stop; after STOP_SECONDS the process exits whatever is left. A second signal changes nothing.
 */
function interrupt(why: string, action: string): void {
  if (interrupted.signal.aborted) return;
  interrupted.abort(new PgferryError('Interrupted', why));
  const stopTools = (signal: NodeJS.Signals) => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  if (action === 'dump') {
    stopTools('SIGKILL');
    logger.error('failed', { errorName: 'Pgferry.Interrupted', errorMessage: why });
    process.exit(1);
  }
  logger.warn('interrupted', { reason: why });
  stopTools('SIGTERM');
  setTimeout(() => stopTools('SIGKILL'), TOOL_STOP_SECONDS * 1000).unref();
  setTimeout(() => {
    stopTools('SIGKILL');
    logger.error('failed', {
      errorName: 'Pgferry.Interrupted',
      errorMessage: `${why}; the cleanup did not finish within ${STOP_SECONDS}s: the next run names what is left`,
    });
    process.exit(1);
  }, STOP_SECONDS * 1000).unref();
}

async function main(): Promise<void> {
  const action = process.env[TASK_ENV.action] ?? '';
  // ECS stops a task with SIGTERM, a terminal's Ctrl-C sends SIGINT to the whole process group.
  process.on('SIGTERM', () => interrupt('interrupted by SIGTERM', action));
  process.on('SIGINT', () => interrupt('interrupted by SIGINT', action));
  // Locally the CLI holds our stdin open; its end means the CLI died (even by SIGKILL), and a run
  // nobody waits for must not keep writing into the store.
  if (process.env[TASK_ENV.stopWithParent] === '1') {
    const gone = () => interrupt('interrupted: the pgferry command that started the task is gone', action);
    process.stdin.on('end', gone);
    process.stdin.on('error', gone);
    process.stdin.resume();
  }
  const { signal } = interrupted;
  const kind = Object.hasOwn(JOB_KIND_OF_ACTION, action) ? JOB_KIND_OF_ACTION[action] : undefined;
  if (!kind) {
    throw new PgferryError(
      'InvalidInput',
      `${TASK_ENV.action} must be "dump", "restore", "verify", "migrate-schema-test" or "migrate" (got ${action || 'nothing'})`,
    );
  }
  const job = jobRefFromEnv(process.env);
  const onChild = (child: ChildProcess) => {
    children.add(child);
    child.on('close', () => children.delete(child));
  };
  switch (action) {
    case 'dump': {
      const plan = await loadJob(openStore, job, kind, BackupPlanSchema);
      signal.throwIfAborted();
      logger.appendKeys({ backupId: plan.backupId });
      const result = await runDump(plan, {
        store: openStore(plan.store),
        env: process.env,
        onProgress: (p) => logger.info('progress', { ...p }),
        onChild,
        onRetry: (reason, attempt) => logger.warn('retrying', { reason, attempt }),
      });
      logger.info('succeeded', {
        objects: result.objects.length,
        uncompressedBytes: result.uncompressedBytes,
      });
      return;
    }
    case 'restore': {
      const plan = await loadJob(openStore, job, kind, RestorePlanSchema);
      logger.appendKeys({ restoreId: plan.restoreId, backupId: plan.manifest.id });
      const report = await runRestore(plan, {
        store: openStore(plan.request.store),
        env: process.env,
        onPhase: (phase) => logger.info('phase', { phase }),
        onChild,
        signal,
      });
      logger.info('succeeded', { timings: report.timings });
      return;
    }
    case 'verify': {
      const plan = await loadJob(openStore, job, kind, VerifyPlanSchema);
      logger.appendKeys({ verifyId: plan.verifyId, backupId: plan.manifest.id });
      const report = await runVerify(plan, {
        store: openStore(plan.request.store),
        env: process.env,
        onPhase: (phase) => logger.info('phase', { phase }),
        onChild,
        signal,
      });
      logger.info('succeeded', { restoreSeconds: report.restoreSeconds });
      return;
    }
    case 'migrate-schema-test':
    case 'migrate': {
      const plan = await loadJob(openStore, job, kind, MigratePlanSchema);
      logger.appendKeys({ migrateId: plan.migrateId });
      const deps = {
        store: openStore(plan.request.store),
        env: process.env,
        onPhase: (phase: string) => logger.info('phase', { phase }),
        onChild,
        signal,
      };
      if (action === 'migrate') {
        const results = await runMigrate(plan, deps);
        logger.info('succeeded', { databases: results.map((r) => r.database) });
      } else {
        const result = await runSchemaTest(plan, deps);
        logger.info('succeeded', { seconds: result.seconds });
      }
      return;
    }
  }
}

main().then(
  () => process.exit(0),
  (caught: unknown) => {
    // Interrupted, a runner that knows no better fails with what its stopped tools said.
    const err =
      interrupted.signal.aborted && !(caught instanceof PgferryError && caught.code === 'Interrupted')
        ? interrupted.signal.reason
        : caught;
    logger.error('failed', { errorName: (err as Error).name ?? 'Error', errorMessage: errorMessage(err) });
    process.exit(1);
  },
);
