/**
 * The sessions of one pgferry run on a server, found by their `application_name` (see
 * `nameSessions`): what they are doing, for the progress watchdog, and ending them when it stops
 * the run.
 */
import type { Client } from 'pg';

/** What the sessions of run `runId` are called (`application_name`; see `nameSessions`). */
export function runSessionName(runId: string): string {
  return `pgferry ${runId}`;
}

/** A session of a run, as `pg_stat_activity` shows it. */
export interface RunSession {
  pid: number;
  state: string | null;
  waitEventType: string | null;
  waitEvent: string | null;
  /** Who holds what it waits for (`pg_blocking_pids`), described. */
  blockedBy: string[];
}

/** The sessions named `applicationName` on the server, other than this one. */
export async function runSessions(client: Client, applicationName: string): Promise<RunSession[]> {
  const { rows } = await client.query<RunSession>(
    `SELECT a.pid, a.state, a.wait_event_type AS "waitEventType", a.wait_event AS "waitEvent",
            ARRAY(SELECT format('pid %s (%s, %s, %s since %s)', b.pid, coalesce(b.usename, '?'),
                                coalesce(nullif(b.application_name, ''), 'no application name'),
                                coalesce(b.state, '?'), coalesce(b.xact_start::text, b.backend_start::text))
                  FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))) AS "blockedBy"
     FROM pg_stat_activity a
     WHERE a.application_name = $1 AND a.pid <> pg_backend_pid()`,
    [applicationName],
  );
  return rows;
}

/**
 * Ends the sessions named `applicationName` on the server, other than this one
 * (`pg_terminate_backend`, which a role may do to its own sessions).
 */
export async function terminateRunSessions(client: Client, applicationName: string): Promise<void> {
  await client.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE application_name = $1 AND pid <> pg_backend_pid()`,
    [applicationName],
  );
}

/**
 * Waits up to `timeoutMs` for the sessions named `applicationName` (other than this one) to be
 * gone, looking every 100 ms; returns how many are left.
 */
export async function waitForRunSessions(
  client: Client,
  applicationName: string,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = (await runSessions(client, applicationName)).length;
    if (left === 0 || Date.now() >= deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * {@link terminateRunSessions}, then waits up to `timeoutMs` for them to be gone (a backend ends
 * at its next check for interrupts: a statement's, a lock wait's); returns how many are left.
 */
export async function endRunSessions(
  client: Client,
  applicationName: string,
  timeoutMs: number,
): Promise<number> {
  await terminateRunSessions(client, applicationName);
  return waitForRunSessions(client, applicationName, timeoutMs);
}
