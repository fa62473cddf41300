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

/** The kind of job each action runs. */
const JOB_KIND_OF_ACTION: Record<string, JobKind> = {
  dump: 'backup',
  restore: 'restore',
  verify: 'verify',
  'migrate-schema-test': 'migrate',
  migrate: 'migrate',
};

async function main(): Promise<void> {
  const children = new Set<ChildProcess>();
  const stop = (why: string) => {
    for (const child of children) child.kill('SIGKILL');
    logger.error('failed', { errorName: 'Pgferry.Interrupted', errorMessage: why });
    process.exit(1);
  };
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
  const job = jobRefFromEnv(process.env);
  const onChild = (child: ChildProcess) => {
    children.add(child);
    child.on('close', () => children.delete(child));
  };
  switch (action) {
    case 'dump': {
      const plan = await loadJob(openStore, job, kind, BackupPlanSchema);
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
  (err: unknown) => {
    logger.error('failed', { errorName: (err as Error).name ?? 'Error', errorMessage: errorMessage(err) });
    process.exit(1);
  },
);
