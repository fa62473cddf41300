/**
 * The progress watchdog: a run that stops making progress for the stall timeout is stopped, so
 * that a task stuck on a lock or a network stall does not hold production locks until the
 * workflow's 12-hour timeout. When it fires it calls `onStall` once: the runner stops its tools,
 * ends the run's sessions on its servers (`endRunSessions`: a killed pg_dump's session would
 * otherwise keep its locks while it waits for another) and exits non-zero: on AWS the task stops,
 * `runTask.sync` fails into the workflow's Catch (Cleanup, Record), as for any failed task;
 * locally the same, through the local executor.
 *
 * Progress is any of:
 * - a phase change or a progress report of the runner (`progress()`);
 * - bytes read or written by the runner or any of its child processes (Linux `/proc/<pid>/io`,
 *   whose counters include network traffic): a download or upload, pg_dump's or pg_restore's
 *   traffic with the server — and, for a verification, the throwaway server's writes to the
 *   work folder (its free space changing) — at least `MIN_PROGRESS_BYTES` of them: the runner's
 *   own idle activity (its log lines, the watchdog's reads of `/proc`, whose cost the kernel
 *   counts beyond the bytes returned) moves a few hundred bytes a look, which is no progress;
 * - when nothing of that moved for the stall timeout: a session of this run (found by its
 *   `application_name`, see `nameSessions`) that the server reports working — running, not waiting
 *   for a lock or for its client. A long `CREATE INDEX` is progress; a lock wait, a session idle in
 *   its transaction, a server that does not answer within 20 s, are not.
 *
 * Why not Step Functions heartbeats (`.waitForTaskToken` with `HeartbeatSeconds`): a heartbeat
 * says the process is alive, not that the run advances — a runner blocked on a lock still beats
 * from its event loop — so it would need this very progress test inside the runner anyway; a
 * missed heartbeat fails the state but does not stop the ECS task, which keeps holding its locks
 * until something calls `ecs:StopTask` with an ARN the state no longer has; and the task would
 * need `states:SendTaskHeartbeat` and a route to Step Functions. Stopping from inside ends the
 * locks at once, through the failure path the workflows already have, locally as on AWS.
 */
import { readdir, readFile, statfs } from 'node:fs/promises';
import type { Client } from 'pg';
import { errorMessage, PgferryError } from '../../../core/errors';
import { endQuietly } from '../../../core/postgres/connect';
import { type RunSession, runSessions, terminateRunSessions } from '../../../core/postgres/run-sessions';
import { TASK_ENV } from '../../../core/workflows';

/** The environment variable that sets the stall timeout, in seconds (the task definition's). */
export const STALL_TIMEOUT_ENV = TASK_ENV.stallTimeout;
/** The stall timeout when none is set: longer than pg_dump's 5-minute lock wait timeout. */
export const DEFAULT_STALL_TIMEOUT_SECONDS = 600;
/**
 * The fewest bytes moved that count as progress: far more than the runner moves while it only
 * waits (a few KiB per stall timeout), far less than any transfer moves in a second.
 */
export const MIN_PROGRESS_BYTES = 64 * 1024;
/** How long a probe of a server may take before the server counts as not answering. */
const PROBE_TIMEOUT_MS = 20_000;

/** The stall timeout the environment sets (seconds, a whole number of at least 1). */
export function stallTimeoutSeconds(env: NodeJS.ProcessEnv): number {
  const text = env[STALL_TIMEOUT_ENV];
  if (text === undefined || text === '') return DEFAULT_STALL_TIMEOUT_SECONDS;
  const seconds = Number(text);
  if (!Number.isInteger(seconds) || seconds < 1) {
    throw new PgferryError(
      'InvalidInput',
      `${STALL_TIMEOUT_ENV} must be a whole number of seconds, at least 1 (got ${JSON.stringify(text)})`,
    );
  }
  return seconds;
}

/** What the run's servers say about its sessions. */
export type ServerActivity = { working: true; what: string } | { working: false; why: string };

export interface WatchdogOptions {
  /** How long without progress is a stall. */
  stallMs: number;
  /** Called once, on a stall, with the error to fail with. */
  onStall: (error: PgferryError) => void;
  /** Bytes moved so far, by any measure that only grows when the run moves data. */
  bytesMoved: () => Promise<number>;
  /** Asked when nothing moved for `stallMs`: whether the run's servers are working for it. */
  probe?: () => Promise<ServerActivity>;
  /** What set the timeout, for the message (e.g. `PGFERRY_STALL_TIMEOUT_SECONDS=600`). */
  setBy?: string;
  /**
   * How often to look.
   * @default a tenth of the stall timeout, between 1 and 30 seconds
   */
  checkEveryMs?: number;
  now?: () => number;
}

/** Watches a run; see the module's comment. Stop it when the run ends. */
export class ProgressWatchdog {
  private lastProgress: number;
  /** The bytes moved when they last counted as progress (or when the runner last reported). */
  private bytesAtProgress: number | undefined;
  private readonly timer: NodeJS.Timeout;
  private checking = false;
  private stopped = false;

  constructor(private readonly options: WatchdogOptions) {
    this.lastProgress = this.now();
    const every = options.checkEveryMs ?? Math.min(30_000, Math.max(1000, options.stallMs / 10));
    this.timer = setInterval(() => void this.check(), every);
    this.timer.unref();
  }

  /** The run moved on (a phase, bytes it reported). */
  progress(): void {
    this.lastProgress = this.now();
    this.bytesAtProgress = undefined; // measured afresh at the next look
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private async check(): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    try {
      const bytes = await this.options.bytesMoved().catch(() => undefined);
      if (bytes !== undefined) {
        // Either way: a verification's used space shrinks too, and a child that exits takes its
        // counters with it.
        if (
          this.bytesAtProgress !== undefined &&
          Math.abs(bytes - this.bytesAtProgress) >= MIN_PROGRESS_BYTES
        ) {
          this.progress();
        }
        this.bytesAtProgress ??= bytes;
      }
      if (this.now() - this.lastProgress < this.options.stallMs) return;
      const activity: ServerActivity = this.options.probe
        ? await this.options.probe()
        : { working: false, why: 'no bytes moved and no phase changed' };
      if (this.stopped) return;
      if (activity.working) {
        this.progress();
        return;
      }
      this.stop();
      const seconds = Math.round(this.options.stallMs / 1000);
      const setBy = this.options.setBy ? ` (${this.options.setBy})` : '';
      this.options.onStall(
        new PgferryError(
          'Stalled',
          `stopped: no progress for ${seconds}s${setBy}: ${activity.why}; the run was stopped and its tools with it, so it holds no lock any more`,
        ),
      );
    } finally {
      this.checking = false;
    }
  }
}

/**
 * A counter of the bytes moved by process `pid` and its descendants (read and written, files and
 * sockets: `rchar` + `wchar` of `/proc/<pid>/io`), minus what reading those files itself counts.
 * `extra` adds other measures (a folder's used space). Linux only; elsewhere it counts nothing,
 * and only the runner's own reports and the server probe say the run moves.
 */
export function processTreeBytes(
  pid: number = process.pid,
  extra?: () => Promise<number>,
): () => Promise<number> {
  let ownReads = 0;
  const read = async (file: string): Promise<string | undefined> => {
    try {
      const text = await readFile(file, 'utf8');
      ownReads += Buffer.byteLength(text);
      return text;
    } catch {
      return undefined;
    }
  };
  const childrenOf = async (p: number): Promise<number[]> => {
    const tasks = await readdir(`/proc/${p}/task`).catch(() => [] as string[]);
    const lists = await Promise.all(tasks.map((t) => read(`/proc/${p}/task/${t}/children`)));
    return lists.flatMap((text) => (text ?? '').split(/\s+/).filter(Boolean).map(Number));
  };
  return async () => {
    let total = 0;
    const seen = new Set<number>();
    const queue = [pid];
    while (queue.length > 0) {
      const p = queue.shift() as number;
      if (seen.has(p)) continue;
      seen.add(p);
      const io = await read(`/proc/${p}/io`);
      for (const [, value] of (io ?? '').matchAll(/^(?:rchar|wchar): (\d+)$/gm)) total += Number(value);
      queue.push(...(await childrenOf(p)));
    }
    return total - ownReads + ((await extra?.()) ?? 0);
  };
}

/**
 * The bytes each process of `pid`'s tree has read so far (`rchar` of `/proc/<p>/io`: files,
 * pipes and sockets), by pid; empty where there is no `/proc` or the process is gone. A restore
 * measures pg_restore's reading of the archive with it.
 */
export async function treeReads(pid: number): Promise<Map<number, number>> {
  const reads = new Map<number, number>();
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    if (reads.has(p)) continue;
    const io = await readFile(`/proc/${p}/io`, 'utf8').catch(() => '');
    const rchar = /^rchar: (\d+)$/m.exec(io);
    if (!rchar) continue;
    reads.set(p, Number(rchar[1]));
    const tasks = await readdir(`/proc/${p}/task`).catch(() => [] as string[]);
    for (const task of tasks) {
      const children = await readFile(`/proc/${p}/task/${task}/children`, 'utf8').catch(() => '');
      queue.push(...children.split(/\s+/).filter(Boolean).map(Number));
    }
  }
  return reads;
}

/** The bytes in use on the file system of `dir` (its free space shrinking or growing). */
export function usedSpace(dir: string): () => Promise<number> {
  return async () => {
    const stats = await statfs(dir);
    return (stats.blocks - stats.bfree) * stats.bsize;
  };
}

/** Wait event types in which a session is not working: waiting on others, or on its client. */
const NOT_WORKING = new Set(['Lock', 'BufferPin', 'Client']);

/** What `sessions` of `server` say: working when one runs without waiting on others or its client. */
export function activityOf(server: string, sessions: readonly RunSession[]): ServerActivity {
  const working = sessions.find((s) => s.state === 'active' && !NOT_WORKING.has(s.waitEventType ?? ''));
  if (working) return { working: true, what: `${server}: pid ${working.pid} is working` };
  const blocked = sessions.find((s) => s.waitEventType === 'Lock' || s.blockedBy.length > 0);
  if (blocked) {
    const holders = blocked.blockedBy.length ? `, held by ${blocked.blockedBy.join('; ')}` : '';
    return {
      working: false,
      why: `on ${server} its session (pid ${blocked.pid}) waits for a lock${holders}`,
    };
  }
  if (sessions.length === 0) return { working: false, why: `${server} shows no session of this run` };
  const states = sessions.map(
    (s) => `pid ${s.pid} ${s.state ?? '?'}${s.waitEvent ? ` (${s.waitEvent})` : ''}`,
  );
  return { working: false, why: `on ${server} no session of this run is working: ${states.join(', ')}` };
}

/**
 * A probe of the run's servers: each is asked (by a fresh connection, within 20 s) what the run's
 * sessions are doing; the run is working when any server says so.
 */
export function probeServers(
  servers: readonly { describe: string; connect: () => Promise<Client> }[],
  applicationName: string,
): () => Promise<ServerActivity> {
  return async () => {
    const reasons: string[] = [];
    for (const server of servers) {
      const activity = await withTimeout(
        (async (): Promise<ServerActivity> => {
          const client = await server.connect();
          try {
            return activityOf(server.describe, await runSessions(client, applicationName));
          } finally {
            await endQuietly(client);
          }
        })(),
        PROBE_TIMEOUT_MS,
      ).catch(
        (err: unknown): ServerActivity => ({
          working: false,
          why: `${server.describe} did not answer the watchdog (${errorMessage(err)})`,
        }),
      );
      if (activity.working) return activity;
      reasons.push(activity.why);
    }
    return { working: false, why: reasons.join('; ') || 'no bytes moved and no phase changed' };
  };
}

/**
 * Ends the run's sessions on `servers` (`pg_terminate_backend`, which a role may do to its own
 * sessions): killing pg_dump or pg_restore does not end its server session while that waits for a
 * lock — the server notices its client is gone only when it next writes to it — and a session
 * waiting for one lock keeps holding the others it was granted. Best effort, each server within
 * 20 s; returns what it could not do.
 */
export async function endRunSessions(
  servers: readonly { describe: string; connect: () => Promise<Client> }[],
  applicationName: string,
): Promise<string[]> {
  const failures = await Promise.all(
    servers.map((server) =>
      withTimeout(
        (async () => {
          const client = await server.connect();
          try {
            await terminateRunSessions(client, applicationName);
          } finally {
            await endQuietly(client);
          }
        })(),
        PROBE_TIMEOUT_MS,
      ).then(
        () => undefined,
        (err: unknown) => `${server.describe}: ${errorMessage(err)}`,
      ),
    ),
  );
  return failures.filter((f): f is string => f !== undefined);
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000}s`)), ms);
  });
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
