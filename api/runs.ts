/**
 * The run host port: where the API's runs execute. The application (./app.ts) is written against
 * this interface only, so the same routes serve `pgferry serve` (cli/local-runs.ts, over the local
 * executor) and the API's Lambda (over Step Functions). A run is one execution of a workflow: a
 * backup, a restore, a verification or a migration.
 */
import type { RunCleanup } from './events';

/** The workflows the API starts, as `kind` names them (the same names as `WorkflowName`). */
export const RUN_KINDS = ['backup', 'restore', 'verify', 'migrate'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

/** The statuses a run goes through: `running`, then one of the three final ones. */
export const RUN_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** One run as the API shows it (`GET /v1/runs/{id}`). */
export interface Run {
  id: string;
  kind: RunKind;
  status: RunStatus;
  /**
   * The catalog name the run is about, when the request names one (see `runDatabase`); a
   * migration of a whole server has none.
   */
  database?: string;
  /** ISO 8601. */
  startedAt: string;
  /** ISO 8601; present once the run has ended. */
  finishedAt?: string;
  /** The workflow state it is in (while running) or ended in. */
  state?: string;
  /** The long step's progress while running (bytes done, rate, …: a `TaskProgress` locally). */
  progress?: unknown;
  /** A succeeded run's result: the manifest (backup) or the stored report (restore, verify, migrate). */
  result?: unknown;
  /** A failed or cancelled run's error, as Step Functions reports one: its name and message. */
  error?: { error: string; cause: string };
  /**
   * What the cleanup of a stopped run did and left, when that cleanup ran apart from the run (on
   * AWS the announcer's, after an execution stopped or timed out: the same `cleanup` as its
   * run-finished event, bounded by `boundedCleanup`). Absent until that cleanup has ended, and for
   * every run that cleaned up itself (its error says what its cleanup did).
   */
  cleanup?: RunCleanup;
}

/** `GET /v1/runs`'s query: every field narrows the list. */
export interface RunFilter {
  kind?: RunKind;
  status?: RunStatus;
  /** ISO 8601: only runs started at or after it. */
  since?: string;
  /** At most this many runs ({@link DEFAULT_RUN_LIMIT} when absent, {@link MAX_RUN_LIMIT} at most). */
  limit?: number;
  /** The page after the one whose `next` this is (an opaque token, see {@link RunCursor}). */
  next?: string;
}

/** How many runs a page of `GET /v1/runs` holds unless `limit` says otherwise, and at most. */
export const DEFAULT_RUN_LIMIT = 100;
export const MAX_RUN_LIMIT = 1000;

/**
 * A page of runs, newest first (startedAt, then id, descending): an array, with the token of the
 * next page when there are more.
 */
export type RunList = Run[] & { next?: string };

/**
 * Where a page ended: the last run it held. The next page holds the runs after it in the list's
 * order, so runs started meanwhile neither shift nor repeat it. Both hosts use it; on the wire it
 * is an opaque token (base64url JSON).
 */
export interface RunCursor {
  startedAt: string;
  id: string;
}

export function encodeRunCursor(run: Pick<Run, 'startedAt' | 'id'>): string {
  return Buffer.from(JSON.stringify({ t: run.startedAt, id: run.id })).toString('base64url');
}

/** The cursor of a `next` token; undefined for a string no page gave. */
export function decodeRunCursor(token: string): RunCursor | undefined {
  try {
    const { t, id } = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as {
      t?: unknown;
      id?: unknown;
    };
    if (typeof t !== 'string' || Number.isNaN(Date.parse(t)) || typeof id !== 'string' || id === '')
      return undefined;
    return { startedAt: t, id };
  } catch {
    return undefined;
  }
}

/** The list's order: newest first, then by id, descending. */
export function compareRuns(a: Pick<Run, 'startedAt' | 'id'>, b: Pick<Run, 'startedAt' | 'id'>): number {
  return b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id);
}

/**
 * The page of `sorted` (every matching run, in the list's order) that `filter` asks for: after
 * its cursor, at most its limit, with the next page's token when more are left.
 */
export function pageOf(sorted: readonly Run[], filter: Pick<RunFilter, 'limit' | 'next'>): RunList {
  const cursor = filter.next === undefined ? undefined : decodeRunCursor(filter.next);
  const limit = Math.min(filter.limit ?? DEFAULT_RUN_LIMIT, MAX_RUN_LIMIT);
  const after = cursor ? sorted.filter((run) => compareRuns(cursor, run) < 0) : sorted;
  const page: RunList = after.slice(0, limit);
  if (after.length > limit) page.next = encodeRunCursor(page[page.length - 1]);
  return page;
}

/** What `POST /v1/{backups,restores,verifications,migrations}` asks a host to start. */
export interface StartRun {
  kind: RunKind;
  /** the validated API body (the workflow request less the store) */
  request: unknown;
  /** The caller's `Idempotency-Key` (already checked against `IDEMPOTENCY_KEY_PATTERN`). */
  idempotencyKey?: string;
}

/** Where runs execute: the local executor (`pgferry serve`) or Step Functions (the API's Lambda). */
export interface RunHost {
  /**
   * Starts a run, or with an idempotency key already used for the same body, returns that key's
   * run (`created: false`). Throws `IdempotencyConflict` when the key was used with another body.
   */
  start(run: StartRun): Promise<{ run: Run; created: boolean }>;
  get(id: string): Promise<Run | undefined>;
  /** Recent runs, newest first: a page of them (`filter.limit`, `filter.next`). */
  list(filter: RunFilter): Promise<RunList>;
  /**
   * Asks a running run to stop; its workflow's cleanup runs as on any failure. Returns the run as
   * it is after asking (still `running` until the cleanup ends); `undefined` when there is none.
   */
  cancel(id: string): Promise<Run | undefined>;
}

/** An idempotency key reused with another request (409). */
export class IdempotencyConflict extends Error {
  constructor(readonly key: string) {
    super(`the Idempotency-Key ${key} was used for another request: use a new key for a new request`);
    this.name = 'IdempotencyConflict';
  }
}

/**
 * What an `Idempotency-Key` may be: on AWS it becomes the Step Functions execution name, which
 * allows 1 to 80 characters; these are the ones safe everywhere (no spaces, wildcards or controls).
 */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;

/**
 * The catalog name a run's request is about: a backup's or migration's `name`, else its source
 * database; a restore's or verification's `name` (or `database`). Undefined when the request
 * names none (a restore of a backup by id alone, a migration of every database).
 */
export function runDatabase(kind: RunKind, request: unknown): string | undefined {
  const r = (request ?? {}) as {
    name?: string;
    database?: string;
    source?: { database?: string };
    allDatabases?: boolean;
  };
  switch (kind) {
    case 'backup':
      return r.name ?? r.source?.database;
    case 'migrate':
      return r.allDatabases ? undefined : (r.name ?? r.source?.database);
    default:
      return r.name ?? r.database;
  }
}
