/**
 * The event a finished run announces: on AWS an EventBridge event on the default bus (`source:
 * "pgferry"`), locally the body `pgferry serve --webhook` posts. Both are built here so that a
 * pipeline waiting on one reads the same fields as one waiting on the other.
 */
import type { Run, RunKind, RunStatus } from './runs';

/** The EventBridge `source` of every pgferry event. */
export const EVENT_SOURCE = 'pgferry';

/** What a run-finished event carries: no request, no connection, nothing secret. */
export interface RunFinishedDetail {
  id: string;
  kind: RunKind;
  /** The catalog name the run was about; null when it named none (a whole-server migration). */
  database: string | null;
  status: Exclude<RunStatus, 'running'>;
  /** One line: what the run did, or why it failed. */
  summary: string;
}

/** A run-finished event: EventBridge's `detail-type` and `detail`. */
export interface RunFinishedEvent {
  source: typeof EVENT_SOURCE;
  /** `Backup Succeeded`, `Restore Failed`, `Verification Cancelled`, `Migration Succeeded`, … */
  detailType: string;
  detail: RunFinishedDetail;
}

const KIND_NAMES: Record<RunKind, string> = {
  backup: 'Backup',
  restore: 'Restore',
  verify: 'Verification',
  migrate: 'Migration',
};

const STATUS_NAMES: Record<Exclude<RunStatus, 'running'>, string> = {
  succeeded: 'Succeeded',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

/** The event for a run that has ended; throws for one still running (it has no event yet). */
export function runFinishedEvent(run: Run): RunFinishedEvent {
  if (run.status === 'running') throw new Error(`run ${run.id} is still running: it has no finished event`);
  const status = run.status;
  return {
    source: EVENT_SOURCE,
    detailType: `${KIND_NAMES[run.kind]} ${STATUS_NAMES[status]}`,
    detail: { id: run.id, kind: run.kind, database: run.database ?? null, status, summary: summaryOf(run) },
  };
}

/** One line about a finished run, from its result (a manifest or report) or its error. */
export function summaryOf(run: Run): string {
  if (run.status === 'cancelled') return `cancelled${run.error ? `: ${run.error.cause}` : ''}`;
  if (run.status === 'failed') return run.error ? `${run.error.error}: ${run.error.cause}` : 'failed';
  const r = (run.result ?? {}) as Record<string, unknown>;
  switch (run.kind) {
    case 'backup':
      return `backup ${r.id ?? '?'} of ${r.name ?? r.database ?? '?'} is complete`;
    case 'restore': {
      const target = (r.target ?? {}) as { database?: string };
      return `restored backup ${r.backupId ?? '?'} of ${r.database ?? '?'} into ${target.database ?? '?'}`;
    }
    case 'verify':
      return `verified backup ${r.backupId ?? '?'} of ${r.database ?? '?'}: ${r.status ?? 'passed'}`;
    case 'migrate': {
      const databases = Array.isArray(r.databases) ? r.databases.length : 0;
      return `migrated ${databases} database${databases === 1 ? '' : 's'}`;
    }
  }
}
