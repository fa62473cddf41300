/**
 * The restore runner: downloads a backup's objects while verifying their SHA-256 against the
 * manifest — nothing of it reaches the target before they match; a new database is created
 * meanwhile, empty and marked incomplete — then (or cleans the target, once verified)
 * optionally creates the roles, runs pg_restore with parallel jobs and fast session settings,
 * ANALYZEs, compares every table's row count with the manifest, and stores a report
 * (restore-backup.ts does the work).
 */
import { resolvePassword } from '../../../core/connection';
import { type RestorePlan, type RestoreReport, SCHEMA_VERSION } from '../../../core/contracts';
import { errorMessage } from '../../../core/errors';
import { catalogNameOf, restoreReportKey } from '../../../core/store-keys';
import { type RestoreDeps, type RestoreTarget, restoreBackup } from './restore-backup';
import { RestoreProgress } from './run';

/** The restore task: restores, checks, and stores a report whatever the outcome. */
export async function runRestore(plan: RestorePlan, deps: RestoreDeps): Promise<RestoreReport> {
  const started = Date.now();
  const progress = new RestoreProgress(deps.onPhase);
  const { manifest } = plan;
  const reportKey = restoreReportKey(catalogNameOf(manifest), manifest.id, plan.restoreId);
  try {
    const password = await resolvePassword(plan.request.target, 'target', deps.env);
    await restoreBackup(plan.manifest, restoreTargetOf(plan, password), progress, deps);
    const report = buildReport(plan, 'passed', started, progress);
    await deps.store.putJson(reportKey, report);
    return report;
  } catch (err) {
    const report = { ...buildReport(plan, 'failed', started, progress), error: errorMessage(err) };
    await deps.store.putJson(reportKey, report).catch(() => undefined);
    throw err;
  }
}

/** Where and how the plan restores its backup. */
export function restoreTargetOf(plan: RestorePlan, password: string | undefined): RestoreTarget {
  const { request } = plan;
  return {
    runId: plan.restoreId,
    target: request.target,
    password,
    mode: request.mode,
    withGlobals: request.withGlobals,
    noOwner: request.noOwner,
    noAcl: request.noAcl,
    role: request.role,
    schemas: request.schemas,
    tables: request.tables,
    terminateConnections: request.terminateConnections,
    jobs: plan.jobs,
    toastCompression: plan.toastCompression,
    warnings: plan.warnings,
  };
}

function buildReport(
  plan: RestorePlan,
  status: 'passed' | 'failed',
  started: number,
  { timings, checks }: RestoreProgress,
): RestoreReport {
  return {
    schemaVersion: SCHEMA_VERSION,
    kind: 'restore',
    restoreId: plan.restoreId,
    backupId: plan.manifest.id,
    database: catalogNameOf(plan.manifest),
    target: {
      host: plan.request.target.host,
      port: plan.request.target.port,
      database: plan.request.target.database,
      serverVersion: plan.targetServer.version,
    },
    status,
    mode: plan.request.mode,
    jobs: plan.jobs,
    toastCompression: plan.toastCompression,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date().toISOString(),
    timings: { ...timings, total: (Date.now() - started) / 1000 },
    checks,
    ...(plan.warnings?.length ? { warnings: plan.warnings } : {}),
    ...(plan.manifest.scope ? { backupScope: plan.manifest.scope } : {}),
  };
}
