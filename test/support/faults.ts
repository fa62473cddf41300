/**
 * Tools for fault tests: a pg_dump held at a gate mid-output (so a fault lands mid-dump, at a
 * point the test can observe, not after a guessed delay), waiting for conditions, finding
 * processes under /proc, and a replication slot held by a consumer the cleanup may not end.
 */
import { execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { extraPgBinDirs, pgTool } from './cli';
import { type TestPostgres, withClient } from './env';

const PG15_BIN = '/usr/lib/postgresql/15/bin';
const run = promisify(execFile);

export interface GatedPgDump {
  /** PGFERRY_PG_BIN_DIRS for the CLI. */
  binDirs: string;
  /** Lets the rest of the output through. */
  open(): void;
}

/**
 * Client tools whose pg_dump passes its first `passBytes` bytes of output and then holds the
 * rest until `open()`: meanwhile pg_dump blocks on the full pipe, its COPY stays active on the
 * server, and the runner has stored part of the dump. pg_dump's exit status is kept.
 */
export function gatedPgDump(passBytes = 1024 * 1024): GatedPgDump {
  const root = mkdtempSync(path.join(tmpdir(), 'pgferry-gated-pg_dump-'));
  const bin = path.join(root, 'bin');
  const gate = path.join(root, 'open');
  return {
    binDirs: withPgDump(
      bin,
      `#!/bin/bash
[ "$1" = "--version" ] && exec ${PG15_BIN}/pg_dump "$@"
set -o pipefail
${PG15_BIN}/pg_dump "$@" | { head -c ${passBytes}; while [ ! -e '${gate}' ]; do sleep 0.05; done; cat; }
`,
    ),
    open: () => writeFileSync(gate, ''),
  };
}

/**
 * `bin` made a folder of client tools: `pg_dump` the given script, `pg_dumpall` PostgreSQL 15's.
 * Its PGFERRY_PG_BIN_DIRS for the CLI.
 */
function withPgDump(bin: string, pgDump: string): string {
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'pg_dump'), pgDump);
  writeFileSync(path.join(bin, 'pg_dumpall'), `#!/bin/sh\nexec ${PG15_BIN}/pg_dumpall "$@"\n`);
  chmodSync(path.join(bin, 'pg_dump'), 0o755);
  chmodSync(path.join(bin, 'pg_dumpall'), 0o755);
  return [bin, ...extraPgBinDirs()].join(':');
}

export interface HeldSidePgDump {
  /** PGFERRY_PG_BIN_DIRS for the CLI. */
  binDirs: string;
  /** Whether a pg_dump that is not a side job's (the main one) has exited. */
  mainEnded(): boolean;
  /** Lets the side jobs' pg_dumps (and every later one) start. */
  open(): void;
  /** With `holdData`: lets the first side pg_dump's data through. */
  release(): void;
}

/**
 * Client tools (PostgreSQL 15's) whose data-only pg_dumps — a parallel backup's side jobs — wait
 * until `open()` before they start (before they import the snapshot and lock their tables); the
 * main pg_dump runs as it is, and `mainEnded()` tells once it has exited. With `holdData`, the
 * first side pg_dump passes its first 4 KiB (its header and TOC) and holds the rest until
 * `release()`; killed meanwhile, it is left behind, its output to nobody, until then.
 */
export function heldSidePgDump(holdData = false): HeldSidePgDump {
  const root = mkdtempSync(path.join(tmpdir(), 'pgferry-held-side-pg_dump-'));
  const bin = path.join(root, 'bin');
  const gate = path.join(root, 'open');
  const ended = path.join(root, 'main-ended');
  const released = path.join(root, 'released');
  const hold = holdData
    ? `if mkdir '${root}/held' 2>/dev/null; then
      ${PG15_BIN}/pg_dump "$@" 2>/dev/null |
        { head -c 4096; while [ ! -e '${released}' ]; do sleep 0.05; done; cat; } 2>/dev/null
      exit
    fi`
    : '';
  return {
    binDirs: withPgDump(
      bin,
      `#!/bin/bash
[ "$1" = "--version" ] && exec ${PG15_BIN}/pg_dump "$@"
for a in "$@"; do
  if [ "$a" = "--data-only" ]; then
    while [ ! -e '${gate}' ]; do sleep 0.05; done
    ${hold}
    exec ${PG15_BIN}/pg_dump "$@"
  fi
done
${PG15_BIN}/pg_dump "$@"
status=$?
touch '${ended}'
exit $status
`,
    ),
    mainEnded: () => existsSync(ended),
    open: () => writeFileSync(gate, ''),
    release: () => writeFileSync(released, ''),
  };
}

export interface GatedPgRestore {
  /** PGFERRY_PG_BIN_DIRS for the CLI. */
  binDirs: string;
  /** Whether a pg_restore of the gated section has started (and waits at the gate). */
  reached(): boolean;
  /** Lets it (and every later one) run. */
  open(): void;
}

/**
 * Client tools (PostgreSQL 15's) whose pg_restore waits until `open()` before it starts when asked
 * (not to `--list`) for `post-data` (`--section=post-data`: what ran before it, a restore's or
 * migration's data, is loaded and no index built yet) or for `data` (`--section=data`, or a
 * `--use-list` listing TABLE DATA: the tables exist and none is loaded yet).
 */
export function gatedPgRestore(gated: 'post-data' | 'data'): GatedPgRestore {
  const root = mkdtempSync(path.join(tmpdir(), 'pgferry-gated-pg_restore-'));
  const bin = path.join(root, 'bin');
  const gate = path.join(root, 'open');
  const reached = path.join(root, 'reached');
  const listed = gated === 'data' ? `grep -q ' TABLE DATA ' "\${a#--use-list=}" && gated=1` : ':';
  // Waits at the gate before pg_restore runs.
  const wait = `touch '${reached}'\n  while [ ! -e '${gate}' ]; do sleep 0.05; done`;
  const run = `if [ -n "$gated" ]; then\n  ${wait}\nfi\nexec ${PG15_BIN}/pg_restore "$@"`;
  mkdirSync(bin);
  writeFileSync(
    path.join(bin, 'pg_restore'),
    `#!/bin/bash
gated=
for a in "$@"; do
  case "$a" in
    --list) exec ${PG15_BIN}/pg_restore "$@" ;;
    --section=${gated}) gated=1 ;;
    --use-list=*) ${listed} ;;
  esac
done
${run}
`,
  );
  for (const tool of ['pg_dump', 'pg_dumpall', 'psql']) {
    writeFileSync(path.join(bin, tool), `#!/bin/sh\nexec ${PG15_BIN}/${tool} "$@"\n`);
  }
  for (const tool of ['pg_restore', 'pg_dump', 'pg_dumpall', 'psql']) chmodSync(path.join(bin, tool), 0o755);
  return {
    binDirs: [bin, ...extraPgBinDirs()].join(':'),
    reached: () => existsSync(reached),
    open: () => writeFileSync(gate, ''),
  };
}

/** Polls `probe` every 50 ms until it returns a value other than `undefined`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The pid of the WAL sender streaming from `slot` on `server`; undefined when none is. */
export function slotConsumerPid(server: TestPostgres, slot: string): Promise<number | undefined> {
  return withClient(server, 'postgres', async (c) => {
    const { rows } = await c.query<{ pid: number }>(
      'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1 AND active',
      [slot],
    );
    return rows[0]?.pid;
  });
}

/**
 * What an online migration's runner leaves on its source when killed hard: its publication and its
 * logical slot (pgoutput), both named `name`, made by `login` in `database`.
 */
export async function leftReplication(
  server: TestPostgres,
  database: string,
  name: string,
  login: { user: string; password: string },
): Promise<void> {
  const client = new Client({ ...server.clientConfig(database), ...login });
  await client.connect();
  try {
    await client.query(`CREATE PUBLICATION ${name}`);
    await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
  } finally {
    await client.end();
  }
}

/** Drops the slot `name` that {@link leftReplication} created, once nothing streams from it. */
export async function dropLeftSlot(server: TestPostgres, name: string): Promise<void> {
  await withClient(server, 'postgres', (c) =>
    c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [
      name,
    ]),
  );
}

export interface SlotConsumer {
  /** Its WAL sender's pid. */
  pid: number;
  /** What it printed on stderr so far. */
  stderr(): string;
  /** Ends it (SIGTERM) and waits for it. */
  stop(): Promise<void>;
}

/**
 * Another consumer of the logical slot `slot` (pgoutput, publishing `slot`) on `database`:
 * `pg_recvlogical --start` as the superuser, streaming once this returns — a session a login that
 * is not a superuser may not end, so the slot cannot be dropped. It does not reconnect.
 */
export async function superuserSlotConsumer(
  server: TestPostgres,
  database: string,
  slot: string,
): Promise<SlotConsumer> {
  const args = ['-d', database, '--slot', slot, '--start', '--no-loop', '-f', '-'];
  args.push('-o', 'proto_version=1', '-o', `publication_names=${slot}`);
  const child = spawn(pgTool('pg_recvlogical', 15), args, {
    env: { PATH: process.env.PATH, ...server.env(database) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
    await exited;
  };
  try {
    const pid = await waitFor(
      'pg_recvlogical streaming from the slot',
      () => slotConsumerPid(server, slot),
      20_000,
    );
    return { pid, stderr: () => stderr, stop };
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}: ${stderr}`);
  }
}

/** Every process's id (from /proc). */
export function processIds(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/** Every process below `pid` (from /proc). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const id of processIds()) {
    const ppid = parentOf(id);
    if (ppid !== undefined) children.set(ppid, [...(children.get(ppid) ?? []), id]); // else exited meanwhile
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const child of children.get(p) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return ''; // exited meanwhile
  }
}

/** Whether `pid` is a live process (a zombie counts as gone). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The pg-tools runners below process `pid` (the CLI's, for a local workflow). */
export function runnersOf(pid: number): number[] {
  const runners = descendants(pid).filter((p) => commandLine(p).includes('pg-tools/src/main.js'));
  // A runner's child between its fork and its exec (a pg_dump starting) still shows the runner's
  // command line: it is not a runner (a 10 ms watch caught three such once).
  return runners.filter((p) => {
    const parent = parentOf(p);
    return parent !== undefined && !runners.includes(parent);
  });
}

/** `pid`'s parent, or undefined once it has exited. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** The pg-tools runner started by the CLI `cliPid`, once it runs. */
export function runnerOf(cliPid: number): Promise<number> {
  return waitFor('the pg-tools runner to start', () => runnersOf(cliPid)[0]);
}

/** A tmpfs of `size` (e.g. `4m`) mounted on a new folder: a file system that really fills up. */
export async function smallFileSystem(size: string): Promise<{ dir: string; unmount(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-small-fs-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0777`, 'tmpfs', dir]);
  } catch (err) {
    throw new Error(
      `mounting a ${size} tmpfs on ${dir} failed (the fault tests need root and CAP_SYS_ADMIN to fill a real file system): ${(err as Error).message}`,
    );
  }
  return {
    dir,
    unmount: async () => {
      if (existsSync(dir)) await run('umount', ['-l', dir]).catch(() => undefined);
    },
  };
}

/** Grows (or shrinks) a tmpfs mounted by {@link smallFileSystem}. */
export async function resizeFileSystem(dir: string, size: string): Promise<void> {
  await run('mount', ['-o', `remount,size=${size}`, dir]);
}

/**
 * `run`'s result; or, when it has not settled after `afterMs`, a failure that says what `pg` and
 * the processes were doing then: each session's state and what it waits for (and on whom), the
 * locks not granted, and the running pgferry, runner and PostgreSQL tool processes. For steps that
 * once hung in CI past jest's timeout, which tells nothing of why.
 */
export async function failIfStuck<T>(
  pg: TestPostgres,
  what: string,
  run: Promise<T>,
  afterMs = 60_000,
  /** More to say then (what the stuck process itself reports, see {@link nodeReport}). */
  more?: () => Promise<string>,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      Promise.all([stuckReport(pg), more?.().catch((err: unknown) => `(${String(err)})`)])
        .then(([report, extra]) => (extra ? `${report}\n${extra}` : report))
        .then(
          (report) => reject(new Error(`${what} has not finished after ${afterMs / 1000} s.\n${report}`)),
          (err: unknown) =>
            reject(new Error(`${what} has not finished after ${afterMs / 1000} s (${String(err)})`)),
        );
    }, afterMs);
  });
  try {
    return await Promise.race([run, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

async function stuckReport(pg: TestPostgres): Promise<string> {
  const sessions = await withClient(pg, 'postgres', async (c) => {
    await c.query("SET statement_timeout = '10s'");
    const { rows } = await c.query(`
      SELECT a.pid, a.datname, a.application_name AS app, a.backend_type AS type, a.state,
             a.wait_event_type || ':' || a.wait_event AS waits, pg_blocking_pids(a.pid) AS blocked_by,
             round(extract(epoch FROM now() - a.query_start)) AS query_s, left(a.query, 200) AS query,
             (SELECT string_agg(l.locktype || ' ' || coalesce(l.relation::regclass::text, '') || ' ' || l.mode, ', ')
                FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) AS waits_for
        FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
        ORDER BY a.datname, a.pid`);
    return rows.map((r) => JSON.stringify(r)).join('\n');
  }).catch((err: unknown) => `(the server did not answer: ${String(err)})`);
  // What this test process started (the CLI, its runner, their tools), with their states.
  const processes = descendants(process.pid)
    .map((pid) => ({ pid, cmd: commandLine(pid) }))
    .map(({ pid, cmd }) => {
      let state = '?';
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const [status, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        state = `${status} ppid ${ppid}`;
      } catch {
        // exited meanwhile
      }
      // The test servers' throwaway passwords appear in the CLI's --source/--target URLs.
      return `${pid} ${state} ${cmd.replace(/\/\/([^:/@\s]+):[^@\s]*@/g, '//$1:***@').slice(0, 300)}`;
    });
  return `Sessions on the server:\n${sessions}\nProcesses:\n${processes.join('\n')}`;
}

/**
 * The environment that lets {@link nodeReport} ask a Node.js process (the CLI) what it waits on:
 * Node's diagnostic report on SIGUSR2, written into `dir`.
 */
export function nodeReportEnv(dir: string): Record<string, string> {
  return { NODE_OPTIONS: `--report-on-signal --report-signal=SIGUSR2 --report-directory=${dir}` };
}

/**
 * What the Node.js process `pid` (started with {@link nodeReportEnv}`(dir)`) is doing: its
 * JavaScript stack and its libuv handles (timers and when they fire, child processes, pipes and
 * sockets), from the diagnostic report it writes on SIGUSR2.
 */
export async function nodeReport(pid: number, dir: string): Promise<string> {
  process.kill(pid, 'SIGUSR2');
  const file = await waitFor(
    `the diagnostic report of pid ${pid}`,
    () => readdirSync(dir).find((f) => f.startsWith('report.') && f.endsWith('.json')),
    5000,
  );
  await new Promise((resolve) => setTimeout(resolve, 200)); // written in one go, but let it finish
  const report = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as {
    javascriptStack?: { message?: string; stack?: string[] };
    libuv?: Record<string, unknown>[];
  };
  const handles = (report.libuv ?? [])
    .filter((h) => h.is_active || h.is_referenced)
    .map((h) => JSON.stringify(h));
  return `The CLI (pid ${pid}), by its diagnostic report:\nstack: ${(report.javascriptStack?.stack ?? []).slice(0, 8).join(' | ')}\nactive handles:\n${handles.join('\n')}`;
}
