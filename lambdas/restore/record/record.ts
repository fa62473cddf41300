import {
  type Connection,
  type RestoreOutcome,
  type RestorePlan,
  RestorePlanSchema,
  type RestoreReport,
  RestoreReportSchema,
  type RestoreState,
} from '../../../core/contracts';
import { errorMessage, PgferryError, readableCause } from '../../../core/errors';
import { loadJob } from '../../../core/jobs';
import { restoreOutcome } from '../../../core/outcomes';
import type { BackupStore } from '../../../core/store';
import { restoreReportKey } from '../../../core/store-keys';
import { reportOrFailure } from '../../../core/task-report';

/**
 * The restore workflow's record step: the restore's report, which the runner stored beside the
 * backup, and the execution's output (`RestoreOutcome`, naming the report) — or the failure the
 * report (or the caught error) names. With a safety backup, its id goes into the stored report
 * whatever the outcome, and a failed restore's error names it and the command that puts the
 * target back as it was.
 */
export async function recordRestore(
  state: RestoreState,
  deps: { openStore: (url: string) => BackupStore },
): Promise<{ report: RestoreReport; outcome: RestoreOutcome }> {
  const store = deps.openStore(state.job.store);
  const key = restoreReportKey(state.database, state.backupId, state.restoreId);
  const safetyBackupId = state.safetyBackup?.backupId;
  // The runner could not know the safety backup's id: record it in the stored report too.
  const recorded = safetyBackupId ? await recordSafetyBackup(store, key, safetyBackupId) : undefined;
  let report: RestoreReport;
  try {
    report = await reportOrFailure(store, key, RestoreReportSchema, 'restore', state.error);
  } catch (err) {
    const failure = withCleanup(err, state);
    if (!safetyBackupId) throw failure;
    const plan = await loadJob(deps.openStore, state.job, 'restore', RestorePlanSchema).catch(
      () => undefined,
    );
    throw new PgferryError(
      failure instanceof PgferryError ? failure.code : 'RestoreFailed',
      `${errorMessage(failure)}; ${safetyBackupAdvice(safetyBackupId, plan, recorded)}`,
      { cause: err },
    );
  }
  return { report, outcome: restoreOutcome(report, { store: store.url, key }) };
}

/**
 * The failure `err`, its message followed by what RestoreCleanup did after the failed task and
 * what it left (or its own error): the same error when there is nothing to add.
 */
function withCleanup(err: unknown, state: RestoreState): unknown {
  const notes = [...(state.cleanup?.notes ?? []), ...(state.cleanup?.left ?? [])];
  if (state.cleanupError) {
    notes.push(
      `the cleanup after the run failed (${readableCause(state.cleanupError.Cause) ?? state.cleanupError.Error}): the next restore names what is left`,
    );
  }
  if (!notes.length || !(err instanceof Error)) return err;
  const message = `${err.message} (${notes.join('; ')})`;
  const failure =
    err instanceof PgferryError ? new PgferryError(err.code, message, { cause: err }) : new Error(message);
  failure.name = err.name;
  return failure;
}

/** Puts the safety backup's id into the stored report (passed or failed); the report, if any. */
async function recordSafetyBackup(
  store: BackupStore,
  key: string,
  safetyBackupId: string,
): Promise<RestoreReport | undefined> {
  const parsed = RestoreReportSchema.safeParse(await store.getJson(key));
  if (!parsed.success) return undefined;
  const report = { ...parsed.data, safetyBackupId };
  await store.putJson(key, report);
  return report;
}

/**
 * What a failed clean restore's user needs: which safety backup holds the target's previous
 * state and, when the target may have been changed, the command that restores it — not the
 * command that just failed, which would fail the same way (and back up the damaged target again).
 */
function safetyBackupAdvice(
  safetyBackupId: string,
  plan: RestorePlan | undefined,
  report: RestoreReport | undefined,
): string {
  if (report && report.timings.pgRestore === undefined) {
    return `the target was not changed (its safety backup ${safetyBackupId} was taken before)`;
  }
  const command = plan
    ? `: ${restoreCommand(plan.request.store, plan.safetyBackup?.name ?? plan.request.target.database, plan.request.target, safetyBackupId)}`
    : ' (pgferry restore --backup <that id> --mode clean --force --no-safety-backup)';
  return (
    `the target's previous state is in the safety backup ${safetyBackupId}, taken before the restore began; ` +
    `put it back with${command}`
  );
}

/**
 * `pgferry restore` of `backupId`, filed under `name`, over `target` (no password: that comes from
 * PGPASSWORD or ~/.pgpass).
 */
export function restoreCommand(store: string, name: string, target: Connection, backupId: string): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const query = target.sslmode === 'prefer' ? '' : `?sslmode=${target.sslmode}`;
  const url = `postgres://${encodeURIComponent(target.user)}@${host}:${target.port}/${encodeURIComponent(target.database)}${query}`;
  return [
    'pgferry restore',
    `--store ${shellWord(store)}`,
    `--database ${shellWord(name)}`,
    `--backup ${backupId}`,
    `--target ${shellWord(url)}`,
    '--mode clean --force --no-safety-backup',
  ].join(' ');
}

function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}
