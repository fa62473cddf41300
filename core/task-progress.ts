/**
 * What the pg-tools task reports while it works: one `progress` log line at most every
 * {@link PROGRESS_INTERVAL_MS} per step (and one as each step begins and ends), on stdout among its
 * other JSON log lines — locally the CLI reads them from the child (cli/local-executor.ts) and
 * draws them on a terminal; on AWS they stay in the task's logs.
 */

/** The steps that report bytes; the phase names the task also logs say what is done in between. */
export type ProgressStep =
  /** pg_dump's archive streamed into the store (a backup). */
  | 'dump'
  /** A backup's objects downloaded and their checksums checked (a restore, a verification). */
  | 'download'
  /** pg_restore reading the archive: tables created and loaded. */
  | 'restore'
  /** pg_restore has read the whole archive: what is left is building indexes and constraints. */
  | 'postData'
  /** A migration's dump streamed into the target (and into the store). */
  | 'copy'
  /** An online migration's target applying the source's changes: `lagBytes`, `lagSeconds` behind. */
  | 'catchUp';

export interface TaskProgress {
  step: ProgressStep;
  /** Bytes of the step done so far. */
  doneBytes: number;
  /** The step's whole size, when it is known or estimated. */
  totalBytes?: number;
  /**
   * `totalBytes` is an estimate, not a size: a dump's, from its tables' size on disk
   * (`tableDataSize` in core/postgres/inspect.ts).
   */
  estimated?: boolean;
  /** A dump's bytes stored so far (compressed). */
  storedBytes?: number;
  /** The database a migration's step is on. */
  database?: string;
  /** Online catch-up: WAL bytes the target has yet to apply. */
  lagBytes?: number;
  /** Online catch-up: how old the newest change the target has applied is, in seconds. */
  lagSeconds?: number;
}

/** A `progress` log line's report (see core/task-progress.ts); nothing from a line without one. */
export function taskProgressOf(entry: Record<string, unknown>): TaskProgress | undefined {
  const { step, doneBytes, totalBytes, estimated, storedBytes, database, lagBytes, lagSeconds } = entry;
  const bytes = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (typeof step !== 'string' || !bytes(doneBytes)) return undefined;
  return {
    step: step as TaskProgress['step'],
    doneBytes,
    ...(bytes(totalBytes) ? { totalBytes } : {}),
    ...(estimated === true ? { estimated } : {}),
    ...(bytes(storedBytes) ? { storedBytes } : {}),
    ...(typeof database === 'string' ? { database } : {}),
    ...(bytes(lagBytes) ? { lagBytes } : {}),
    ...(bytes(lagSeconds) ? { lagSeconds } : {}),
  };
}

/** How often, at most, a step reports while it runs. */
export const PROGRESS_INTERVAL_MS = 1000;

/**
 * A step's reports, at most one per `intervalMs` while it runs; `force` (a step's first and last
 * report) always passes. `now` is for tests.
 */
export function throttled(
  report: ((progress: TaskProgress) => void) | undefined,
  intervalMs = PROGRESS_INTERVAL_MS,
  now: () => number = Date.now,
): (progress: TaskProgress, force?: boolean) => void {
  let last = Number.NEGATIVE_INFINITY;
  return (progress, force = false) => {
    if (!report) return;
    const t = now();
    if (!force && t - last < intervalMs) return;
    last = t;
    report(progress);
  };
}
