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
 *   PGFERRY_WORK_DIR        where restores, drills and migrations work (default: the system's temp dir)
 *   PGFERRY_STOP_WITH_PARENT `1` locally: stop when stdin ends (the CLI that started the task died)
 *   PGFERRY_TASK_ENV_ON_STDIN `1` locally, for a runner started ahead of its task: the task's whole
 *                           environment comes as one JSON line on stdin (see taskEnvironment)
 *   PGFERRY_TLS_REFUSED     locally: the servers (`host:port`, space separated) that refused the CLI
 *                           TLS; `sslmode=prefer` goes to them in plain text at once (core/postgres/connect.ts)
 *   PGFERRY_BINDINGS        on AWS (the task definition's): the deployment's bindings, which the
 *                           job is checked against before anything connects (core/deployment.ts)
 *   PGFERRY_STALL_TIMEOUT_SECONDS  stop a run that makes no progress for this long (default 600;
 *                           the task definition's on AWS): see ./watchdog.ts
 *   AWS_*                   the standard SDK settings (region, credentials, AWS_ENDPOINT_URL_S3)
 *
 * Output: JSON log lines on stdout (`phase` and `progress` — see core/task-progress.ts — then
 * `succeeded` or `failed`); exit status 0 on success, 1 on failure. The result itself goes to the
 * store (`dump-result.json`).
 *
 * Interrupted — SIGTERM (ECS stopping the task), SIGINT (Ctrl-C), SIGHUP, or locally the CLI's death —
 * a restore, verify or migration stops its tools (SIGTERM, then SIGKILL after 5 s), cleans up
 * (the database it created is dropped, its work folder removed, verify's server stopped), stores
 * its failed report and exits 1, within {@link STOP_SECONDS}; then it exits whatever is left. A
 * dump has nothing of its own to clean up: it kills pg_dump and exits at once, and the backup
 * workflow's Cleanup (or, when the CLI died, the next backup's lease takeover) removes what it
 * stored.
 */
import type { ChildProcess } from 'node:child_process';
import { type ConnectionRole, resolvePassword } from '../../../core/connection';
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
import { type PgTool, prefetchPgTools } from '../../../core/postgres/binaries';
import { connectPg, nameSessions, sessionName } from '../../../core/postgres/connect';
import { dumpSizeAsRead } from '../../../core/postgres/inspect';
import { runSessionName } from '../../../core/postgres/run-sessions';
import { openStore } from '../../../core/store';
import type { JobKind } from '../../../core/store-keys';
import type { TaskProgress } from '../../../core/task-progress';
import { workRoot } from '../../../core/work-folders';
import { TASK_ENV } from '../../../core/workflows';
import { runDump } from './dump';
import { runMigrate, runSchemaTest } from './migrate';
import { runRestore } from './restore';
import type { PhasedDeps } from './run';
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

/**
 * The tools whose versions an action asks first, before it knows the server's major (a restore
 * asks pg_restore's at once, beside its download: see restore-backup.ts). A migration uses the
 * four of one installation, asked one after the other before: where several majors are
 * installed, the others' are asked too (a process each).
 */
const PREFETCHED_TOOLS: Record<string, readonly PgTool[] | undefined> = {
  dump: ['pg_dump'],
  'migrate-schema-test': ['pg_dump', 'pg_restore', 'pg_dumpall', 'psql'],
  migrate: ['pg_dump', 'pg_restore', 'pg_dumpall', 'psql'],
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

/** The tools (pg_dump, pg_restore, …) the run started and that still run. */
const children = new Set<ChildProcess>();
const interrupted = new AbortController();

/** Set when the watchdog stops the run: the process ends once the run's sessions are ended. */
let stalled: Promise<void> | undefined;

function stopTools(signal: NodeJS.Signals): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}

/**
 * Arms the progress watchdog for run `runId` (see ./watchdog.ts): its sessions are named after
 * it, so that the probe of `servers` finds them; a stall freezes the tools, ends the run's
 * sessions on `servers`, kills the tools and interrupts the run with the stall as its error.
 */
function watchRun(
  runId: string,
  action: string,
  servers: ReturnType<typeof probeTarget>[],
  extra?: () => Promise<number>,
): ProgressWatchdog {
  nameSessions(runSessionName(runId));
  const seconds = stallTimeoutSeconds(process.env);
  logger.info('watchdog', { stallTimeoutSeconds: seconds, sessions: sessionName() });
  return new ProgressWatchdog({
    stallMs: seconds * 1000,
    setBy: `${STALL_TIMEOUT_ENV}=${seconds}`,
    onStall: (error) => {
      // The tools are frozen first (so that nothing reconnects, and no failure of theirs is
      // recorded as the run's), then their sessions ended, which would outlive them; then the run
      // is interrupted as by a signal, with the stall as its error.
      stopTools('SIGSTOP');
      stalled = endRunSessions(servers, sessionName()).then((failures) => {
        if (failures.length) logger.warn('sessions not ended', { failures });
        stopTools('SIGKILL');
        interrupt(error, action);
      });
    },
    bytesMoved: processTreeBytes(process.pid, extra),
    probe: servers.length ? probeServers(servers, sessionName()) : undefined,
  });
}

/**
 * Starts the stop: the runners see `interrupted.signal` aborted (its reason `error`) and clean
 * up; the tools are told to stop; after STOP_SECONDS the process exits whatever is left. A second
 * call changes nothing.
 */
function interrupt(error: PgferryError, action: string): void {
  if (interrupted.signal.aborted) return;
  interrupted.abort(error);
  if (action === 'dump') {
    stopTools('SIGKILL');
    logger.error('failed', { errorName: error.name, errorMessage: error.message });
    process.exit(1);
  }
  logger.warn('interrupted', { reason: error.message });
  stopTools('SIGTERM');
  setTimeout(() => stopTools('SIGKILL'), TOOL_STOP_SECONDS * 1000).unref();
  setTimeout(() => {
    stopTools('SIGKILL');
    logger.error('failed', {
      errorName: error.name,
      errorMessage: `${error.message}; the cleanup did not finish within ${STOP_SECONDS}s: the next run names what is left`,
    });
    process.exit(1);
  }, STOP_SECONDS * 1000).unref();
}

const interruptedBy = (why: string) => new PgferryError('Interrupted', why);

async function main(): Promise<void> {
  const action = process.env[TASK_ENV.action] ?? '';
  // ECS stops a task with SIGTERM; a terminal's Ctrl-C sends SIGINT, and closing it SIGHUP, to the
  // whole process group.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => interrupt(interruptedBy(`interrupted by ${signal}`), action));
  }
  // Locally the CLI holds our stdin open; its end means the CLI died (even by SIGKILL), and a run
  // nobody waits for must not keep writing into the store.
  if (process.env[TASK_ENV.stopWithParent] === '1') {
    const gone = () =>
      interrupt(interruptedBy('interrupted: the pgferry command that started the task is gone'), action);
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
  // The versions of the tools the run chooses once it knows the server's major, asked now,
  // beside the plan's loading and the first connections (see prefetchPgTools).
  const tools = PREFETCHED_TOOLS[action];
  if (tools) prefetchPgTools(tools, process.env);
  // On AWS every job is checked against the deployment's bindings before anything connects or
  // is written; invalid bindings, or an invalid stall timeout, fail here.
  const deployment = currentDeployment();
  stallTimeoutSeconds(process.env);
  const job = jobRefFromEnv(process.env);
  const onChild = (child: ChildProcess) => {
    children.add(child);
    child.on('close', () => children.delete(child));
  };
  /** A phased runner's deps: each phase is progress for the watchdog, and logged. */
  const phasedDeps = (store: string, watchdog: ProgressWatchdog): PhasedDeps => ({
    store: openStore(store),
    env: process.env,
    onPhase: (phase: string) => {
      watchdog.progress();
      logger.info('phase', { phase });
    },
    onProgress: (progress) => logger.info('progress', { ...progress }),
    onChild,
    signal,
  });
  switch (action) {
    case 'dump': {
      const plan = await loadJob(openStore, job, kind, BackupPlanSchema);
      checkRunnerJob(deployment, { kind: 'backup', plan });
      signal.throwIfAborted();
      logger.appendKeys({ backupId: plan.backupId });
      const watchdog = watchRun(plan.backupId, action, [probeTarget(plan.source, 'source')]);
      const estimate = dumpSizeAsRead(plan.source, await resolvePassword(plan.source, 'source', process.env));
      const result = await runDump(plan, {
        store: openStore(plan.store),
        env: process.env,
        onProgress: (p) => {
          watchdog.progress();
          // Past the estimate (or before it has arrived), the dump's size is unknown.
          const total = estimate();
          logger.info('progress', {
            step: 'dump',
            doneBytes: p.dumpedBytes,
            ...(total !== undefined && p.dumpedBytes <= total ? { totalBytes: total, estimated: true } : {}),
            storedBytes: p.storedBytes,
          } satisfies TaskProgress);
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
      const watchdog = watchRun(plan.restoreId, action, [probeTarget(plan.request.target, 'target')]);
      const report = await runRestore(plan, phasedDeps(plan.request.store, watchdog)).finally(() =>
        watchdog.stop(),
      );
      logger.info('succeeded', { timings: report.timings });
      return;
    }
    case 'verify': {
      const plan = await loadJob(openStore, job, kind, VerifyPlanSchema);
      checkRunnerJob(deployment, { kind: 'verify' });
      logger.appendKeys({ verifyId: plan.verifyId, backupId: plan.manifest.id });
      // The throwaway server is no child of the runner: its writes to the work folder count.
      const workDir = workRoot(process.env);
      const watchdog = watchRun(plan.verifyId, action, [], usedSpace(workDir));
      const report = await runVerify(plan, phasedDeps(plan.request.store, watchdog)).finally(() =>
        watchdog.stop(),
      );
      logger.info('succeeded', { restoreSeconds: report.restoreSeconds });
      return;
    }
    case 'migrate-schema-test':
    case 'migrate': {
      const plan = await loadJob(openStore, job, kind, MigratePlanSchema);
      checkRunnerJob(deployment, { kind: 'migrate', plan });
      logger.appendKeys({ migrateId: plan.migrateId });
      const watchdog = watchRun(plan.migrateId, action, [
        probeTarget(plan.request.source, 'source'),
        probeTarget(plan.request.target, 'target'),
      ]);
      const deps = phasedDeps(plan.request.store, watchdog);
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

/**
 * Locally, a runner may start before its task is known (the CLI starts it ahead, so that its
 * modules load while the workflow's first steps run: TASK_ENV.envOnStdin): the environment the
 * task runs with then comes as one JSON line on stdin, and replaces the one it started with.
 * Stdin ending first means the workflow ended without this task: the runner exits, having done
 * nothing.
 */
function taskEnvironment(): Promise<void> {
  if (process.env[TASK_ENV.envOnStdin] !== '1') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let text = '';
    const noTask = () => process.exit(0);
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n');
      if (end < 0) return;
      process.stdin.off('data', onData).off('end', noTask).off('error', noTask);
      try {
        const env = JSON.parse(text.slice(0, end)) as Record<string, string>;
        for (const key of Object.keys(process.env)) if (!Object.hasOwn(env, key)) delete process.env[key];
        Object.assign(process.env, env);
        resolve();
      } catch (err) {
        reject(err);
      }
    };
    process.stdin.on('data', onData).on('end', noTask).on('error', noTask);
  });
}

taskEnvironment()
  .then(main)
  .then(
    () => (stalled ? stalled.then(() => fail(interrupted.signal.reason)) : process.exit(0)),
    async (caught: unknown) => {
      if (stalled) await stalled;
      // Interrupted, a runner that knows no better fails with what its stopped tools said.
      const err =
        interrupted.signal.aborted && !(caught instanceof PgferryError && caught.code === 'Interrupted')
          ? interrupted.signal.reason
          : caught;
      fail(err);
    },
  );

function fail(err: unknown): never {
  logger.error('failed', { errorName: (err as Error).name ?? 'Error', errorMessage: errorMessage(err) });
  process.exit(1);
}
