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
  /**
   * What the cleanup of a stopped run did and left, when that cleanup ran apart from the run: on
   * AWS the announcer's, after an execution stopped (cancelled) or timed out, which skipped its
   * workflow's own cleanup (lib/run-events.ts). Absent for every other run: a run that cleaned up
   * itself — any run of `pgferry serve`, a failed run on AWS — says so in its error (`summary`).
   */
  cleanup?: RunCleanup;
}

/**
 * What a cleanup that ran apart from its run did (`notes`), what it could not remove (`left`), and
 * its own failure (`error`): bounded ({@link boundedCleanup}), so that the event stays far below
 * EventBridge's 256 KB.
 */
export interface RunCleanup {
  /** What it did, one line each: `the database shop_drill_restoring, … was dropped`. */
  notes: string[];
  /** What it found and could not remove, each line naming it and how to remove it. */
  left: string[];
  /** It failed before its end: what it did not get to is not in `notes` or `left`. */
  error?: { error: string; cause: string };
}

/** At most this many lines of `notes`, and of `left`; past them, the last line says how many more. */
export const CLEANUP_MAX_LINES = 20;
/** At most this many characters of a line, and of the error's name and cause. */
export const CLEANUP_MAX_LINE_CHARS = 1000;
/** At most this many bytes of a cleanup as JSON: fewer lines are kept until it fits. */
export const CLEANUP_MAX_BYTES = 64 * 1024;

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

/**
 * The event for a run that has ended, with what a cleanup that ran apart from it did (`cleanup`);
 * throws for one still running (it has no event yet).
 */
export function runFinishedEvent(run: Run, cleanup?: RunCleanup): RunFinishedEvent {
  if (run.status === 'running') throw new Error(`run ${run.id} is still running: it has no finished event`);
  const status = run.status;
  return {
    source: EVENT_SOURCE,
    detailType: `${KIND_NAMES[run.kind]} ${STATUS_NAMES[status]}`,
    detail: {
      id: run.id,
      kind: run.kind,
      database: run.database ?? null,
      status,
      summary: summaryOf(run),
      ...(cleanup ? { cleanup: boundedCleanup(cleanup) } : {}),
    },
  };
}

/**
 * `cleanup` cut to size: each line, and the error's name and cause, to
 * {@link CLEANUP_MAX_LINE_CHARS} characters (the cut ending `…`); each list to its first
 * {@link CLEANUP_MAX_LINES} lines, the last of them saying how many more there were — fewer while
 * the whole, as JSON, is over {@link CLEANUP_MAX_BYTES} bytes.
 */
export function boundedCleanup(cleanup: RunCleanup): RunCleanup {
  const error = cleanup.error && {
    error: boundedLine(cleanup.error.error),
    cause: boundedLine(cleanup.error.cause),
  };
  for (let lines = CLEANUP_MAX_LINES; ; lines--) {
    const bounded: RunCleanup = {
      notes: boundedLines(cleanup.notes, lines),
      left: boundedLines(cleanup.left, lines),
      ...(error ? { error } : {}),
    };
    if (lines === 1 || Buffer.byteLength(JSON.stringify(bounded)) <= CLEANUP_MAX_BYTES) return bounded;
  }
}

function boundedLines(lines: readonly string[], max: number): string[] {
  if (lines.length <= max) return lines.map(boundedLine);
  const kept = lines.slice(0, max - 1).map(boundedLine);
  return [...kept, `… and ${lines.length - kept.length} more`];
}

function boundedLine(line: string): string {
  return line.length <= CLEANUP_MAX_LINE_CHARS ? line : `${line.slice(0, CLEANUP_MAX_LINE_CHARS - 1)}…`;
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
