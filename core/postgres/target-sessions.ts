/**
 * The other sessions connected to a database: what a clean restore must not wait on. pg_restore
 * `--clean` drops each object in its own transaction; a session holding a lock on one (a
 * transaction left open, even idle) makes that DROP wait — forever by default — with the objects
 * before it already gone. So a clean restore lists the sessions first, and refuses naming them,
 * or ends them when asked to (`--terminate-connections`).
 */
import type { Client } from 'pg';
import { PgferryError } from '../errors';
import { quoteIdent } from './quote';

/** A client session of another process, as `pg_stat_activity` shows it. */
export interface TargetSession {
  pid: number;
  user: string | null;
  application: string | null;
  /** `active`, `idle`, `idle in transaction`, …; null when the role may not see it. */
  state: string | null;
  /** When it entered that state (ISO), else when it connected. */
  since: string | null;
  /** When its open transaction began (ISO), if it has one. */
  transactionSince: string | null;
}

/**
 * The client sessions connected to `database`, other than the caller's own; with `hidden`, also
 * the sessions whose type the role may not see — pg_stat_activity shows a login without
 * pg_read_all_stats only the pid, user and application of another role's session (a superuser's).
 */
export async function otherSessions(
  client: Client,
  database: string,
  opts: { hidden?: boolean } = {},
): Promise<TargetSession[]> {
  const { rows } = await client.query<{
    pid: number;
    user: string | null;
    application: string | null;
    state: string | null;
    since: Date | null;
    xact: Date | null;
  }>(
    `SELECT pid, usename AS user, application_name AS application, state,
            coalesce(state_change, backend_start) AS since, xact_start AS xact
       FROM pg_stat_activity
      WHERE datname = $1 AND pid <> pg_backend_pid()
        AND (backend_type = 'client backend' OR ($2 AND backend_type IS NULL))
      ORDER BY backend_start, pid`,
    [database, opts.hidden ?? false],
  );
  return rows.map((r) => ({
    pid: r.pid,
    user: r.user,
    application: r.application,
    state: r.state,
    since: r.since?.toISOString() ?? null,
    transactionSince: r.xact?.toISOString() ?? null,
  }));
}

/** `pid 4242 (user app, application "psql", idle in transaction since …)` for each session. */
export function describeSessions(sessions: readonly TargetSession[]): string {
  const shown = sessions.slice(0, 10).map((s) => {
    const parts = [`user ${s.user ?? '?'}`];
    if (s.application) parts.push(`application ${JSON.stringify(s.application)}`);
    const state = s.state ?? 'state hidden from this role';
    parts.push(s.since ? `${state} since ${s.since}` : state);
    if (
      s.transactionSince &&
      s.state !== 'idle in transaction' &&
      s.state !== 'idle in transaction (aborted)'
    ) {
      parts.push(`in a transaction since ${s.transactionSince}`);
    }
    return `pid ${s.pid} (${parts.join(', ')})`;
  });
  const more = sessions.length > shown.length ? `, and ${sessions.length - shown.length} more` : '';
  return `${shown.join('; ')}${more}`;
}

/**
 * Ends the sessions `pids` (`pg_terminate_backend`) and waits up to `timeoutMs` for them to be
 * gone; returns those still there. Throws when the role may not end them (neither a superuser nor
 * a member of `pg_signal_backend` or of the sessions' roles).
 */
export async function terminateSessions(
  client: Client,
  database: string,
  pids: readonly number[],
  timeoutMs: number,
): Promise<TargetSession[]> {
  await client.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = (await otherSessions(client, database)).filter((s) => pids.includes(s.pid));
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Refuses a clean restore of `database` while `sessions` are connected to it; `done` says what
 * was not done (`nothing was dropped`).
 */
export function refuseConnectedSessions(
  database: string,
  sessions: readonly TargetSession[],
  done: string,
): never {
  throw new PgferryError(
    'TargetRefused',
    `other sessions are connected to the target database ${quoteIdent(database)}, and a clean restore would wait on ` +
      `their locks: ${describeSessions(sessions)}; ${done}. End them, or pass --terminate-connections to have the ` +
      'restore end them',
  );
}
