/**
 * What the benchmark needs of the PostgreSQL server beyond starting it: the rows its backends read
 * from the user tables (the statistics views, read once they have settled), and pinning the server
 * and a command to a number of cores (`taskset`) for the 1-versus-2-core cases.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Client } from 'pg';
import { processTable, treeOf } from './measure';

/**
 * Rows read from the user tables of the connected database since the statistics were reset:
 * sequential scans' tuples plus index scans' tuples, what a dump costs the server.
 */
export const ROWS_READ_SQL = `
SELECT (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables)
     + (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes) AS n`;

/**
 * Reads `read()` until two readings `intervalMs` apart agree (a backend's statistics reach the
 * shared ones when it ends, or within a second on PostgreSQL 15), at most `attempts` times;
 * returns the last reading.
 */
export async function settled(
  read: () => Promise<number>,
  { intervalMs = 300, attempts = 20 }: { intervalMs?: number; attempts?: number } = {},
): Promise<number> {
  let last = await read();
  for (let i = 1; i < attempts; i++) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const next = await read();
    if (next === last) return next;
    last = next;
  }
  return last;
}

/**
 * The rows the server has read from the user tables of `client`'s database, once every other
 * session of that database has ended (a backend flushes its statistics before it leaves
 * pg_stat_activity) and the counters have settled.
 */
export async function rowsRead(client: Client): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await client.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
    );
    if (Number(rows[0].n) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return settled(async () => {
    await client.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await client.query<{ n: string }>(ROWS_READ_SQL);
    return Number(rows[0].n);
  });
}

/** `taskset`'s CPU list for the first `cores` CPUs: `0`, `0-1`, … */
export function cpuList(cores: number, available: number): string {
  if (!Number.isInteger(cores) || cores < 1 || cores > available) {
    throw new Error(`cannot pin to ${cores} cores: this machine has ${available}`);
  }
  return cores === 1 ? '0' : `0-${cores - 1}`;
}

/** `command args` run on the first `cores` CPUs; its children inherit the affinity. */
export function pinnedCommand(
  cores: number,
  available: number,
  command: string,
  args: string[],
): [string, string[]] {
  return ['taskset', ['-c', cpuList(cores, available), command, ...args]];
}

/**
 * Pins the running server — its postmaster (whose new backends inherit the affinity) and every
 * process it has started — to the first `cores` CPUs. Processes that end meanwhile are skipped.
 */
export function pinServer(dataDir: string, cores: number, available: number): void {
  const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const list = cpuList(cores, available);
  for (const pid of treeOf(postmaster, processTable())) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' });
    } catch (err) {
      if (pid === postmaster) throw err;
    }
  }
}

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`; 100 on Linux). */
let clockTicks: number | undefined;

/** utime, stime, cutime, cstime of `/proc/<pid>/stat`, in clock ticks; undefined once it is gone. */
function cpuTicks(pid: number): [number, number, number, number] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14–17 of proc(5), counted from the state (field 3) here.
  return [Number(fields[11]), Number(fields[12]), Number(fields[13]), Number(fields[14])];
}

/**
 * The CPU seconds the server behind `dataDir` has used so far: its postmaster's, every running
 * process's it started (backends, parallel and autovacuum workers, the background processes), and
 * those of the ones that ended (the postmaster reaped them). Read before and after a case, the
 * difference is what the server spent during it — the backends a case used, and whatever else the
 * server did meanwhile (autovacuum after an earlier case's load).
 */
export function serverCpuSeconds(dataDir: string): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let ticks = 0;
  for (const pid of treeOf(postmaster, processTable())) {
    const t = cpuTicks(pid);
    if (!t) continue;
    ticks += t[0] + t[1] + (pid === postmaster ? t[2] + t[3] : 0);
  }
  return ticks / clockTicks;
}
