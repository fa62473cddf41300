/**
 * The runner's work folders (`pgferry-restore-*`, `pgferry-verify-*`, `pgferry-migrate-*` in
 * `PGFERRY_WORK_DIR` or the system's temp dir): the downloaded and decompressed dump, verify's
 * throwaway server. A run removes its own folder however it ends — unless it is killed too hard
 * to (SIGKILL). Each folder holds an owner file (the run's pid, its process's start time, the
 * host and its boot), so that the next run on the host can tell a folder whose run died — which it
 * removes, stopping the server inside — from one of a run still going, which it never touches.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { PgferryError } from './errors';

export type WorkFolderKind = 'restore' | 'verify' | 'migrate';

const OWNER_FILE = 'owner.json';
const FOLDER_PATTERN = /^pgferry-(restore|verify|migrate)-/;

/** Who made a work folder: enough to tell, on the same host, whether that process still runs. */
interface FolderOwner {
  kind: WorkFolderKind;
  pid: number;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat): a reused pid differs. */
  processStart?: number;
  host: string;
  /** The kernel's boot id: after a reboot no process of before runs. */
  bootId?: string;
  startedAt: string;
}

/**
 * Where a run's work folders go: `PGFERRY_WORK_DIR` (unset or empty: the system's temp dir).
 * Refuses, in one line naming the variable, a folder that does not exist, is not a folder or
 * cannot be written. A missing one is not created: it is most often a typo or a disk not mounted,
 * and a run that created it would fill the disk below instead.
 */
export function workRoot(env: NodeJS.ProcessEnv): string {
  const root = env.PGFERRY_WORK_DIR || tmpdir();
  const problem = folderProblem(root);
  if (problem === undefined) return root;
  const what = env.PGFERRY_WORK_DIR
    ? `PGFERRY_WORK_DIR is ${root}`
    : `PGFERRY_WORK_DIR is not set, and the system's temporary folder is ${root}`;
  throw new PgferryError(
    'InvalidInput',
    `${what}, which ${problem.what}: ${problem.remedy ? `${problem.remedy}, or ` : ''}set PGFERRY_WORK_DIR to a folder this user can write to`,
  );
}

/** Why `folder` cannot hold work folders, and what to do; `undefined` when it can. */
function folderProblem(folder: string): { what: string; remedy?: string } | undefined {
  try {
    if (!statSync(folder).isDirectory()) return { what: 'is not a folder' };
    accessSync(folder, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR'
      ? { what: 'does not exist', remedy: 'create it (or mount the disk it is on)' }
      : { what: `cannot be written to (${code})`, remedy: 'let this user write to it' };
  }
}

/** A new work folder (`pgferry-<kind>-…`, mode 0700) in `root`, with this process as its owner. */
export async function createWorkFolder(kind: WorkFolderKind, root: string): Promise<string> {
  const folder = await mkdtemp(path.join(root, `pgferry-${kind}-`));
  const owner: FolderOwner = {
    kind,
    pid: process.pid,
    processStart: processStart(process.pid),
    host: hostname(),
    bootId: bootId(),
    startedAt: new Date().toISOString(),
  };
  await writeFile(path.join(folder, OWNER_FILE), `${JSON.stringify(owner)}\n`);
  return folder;
}

/** A folder removed because its run had died. */
export interface AbandonedFolder {
  folder: string;
  kind: WorkFolderKind;
  pid: number;
  /** The pids of the PostgreSQL servers (verify's) that were still running in it and were stopped. */
  stoppedServers: number[];
}

/**
 * Removes the work folders in `root` whose run died (on this host), stopping any PostgreSQL
 * server still running in them first. Folders of live runs, of other hosts, and folders without
 * an owner file are left alone. Never throws: what cannot be removed is left for the next run.
 */
export async function removeAbandonedWorkFolders(root: string): Promise<AbandonedFolder[]> {
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => FOLDER_PATTERN.test(n));
  } catch {
    return [];
  }
  const removed: AbandonedFolder[] = [];
  for (const name of names) {
    const folder = path.join(root, name);
    try {
      const owner = JSON.parse(await readFile(path.join(folder, OWNER_FILE), 'utf8')) as FolderOwner;
      if (ownerAlive(owner) !== false) continue;
      const stoppedServers = await stopServersIn(folder);
      await rm(folder, { recursive: true, force: true });
      removed.push({ folder, kind: owner.kind, pid: owner.pid, stoppedServers });
    } catch {
      // No owner file (yet), unreadable, or not removable: leave it.
    }
  }
  return removed;
}

/** One line saying what {@link removeAbandonedWorkFolders} removed. */
export function describeAbandonedFolders(removed: readonly AbandonedFolder[]): string {
  const servers = removed.reduce((n, r) => n + r.stoppedServers.length, 0);
  const folders = removed.map((r) => `${r.folder} (a ${r.kind} run, pid ${r.pid})`).join(', ');
  const stopped = servers
    ? `, and stopped the PostgreSQL server${servers > 1 ? 's' : ''} still running in ${removed.length > 1 ? 'them' : 'it'}`
    : '';
  return `removed the work folder${removed.length > 1 ? 's' : ''} of runs that died: ${folders}${stopped}`;
}

/** Whether the owner runs: `false` when it is certainly gone, `undefined` when that cannot be told. */
function ownerAlive(owner: FolderOwner): boolean | undefined {
  if (!Number.isInteger(owner.pid) || owner.pid <= 0) return undefined;
  if (owner.host !== hostname()) return undefined;
  const boot = bootId();
  if (owner.bootId && boot && owner.bootId !== boot) return false;
  return processRuns(owner.pid, owner.processStart);
}

/** Whether `pid` runs (a zombie does not) and, when `start` is known, is the process that started then. */
function processRuns(pid: number, start?: number): boolean {
  const stat = procStat(pid);
  if (stat === undefined) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  if (stat === null || stat.state === 'Z') return false;
  return start === undefined || stat.start === start;
}

/**
 * `/proc/<pid>/stat`'s state and start time; `null` when there is no such process, `undefined`
 * where there is no /proc (not Linux).
 */
function procStat(pid: number): { state: string; start: number } | null | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
    try {
      readFileSync('/proc/self/stat');
      return null;
    } catch {
      return undefined;
    }
  }
  // The command name (field 2) may hold spaces and parentheses: fields start after its last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], start: Number(fields[19]) };
}

function processStart(pid: number): number | undefined {
  return procStat(pid)?.start;
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The folder a throwaway server's socket gets of its own, in the system's temporary folder, when
 * the server's folder is too deep for a socket's path (containers/pg-tools/src/throwaway-server.ts).
 */
export const SOCKET_FOLDER_PREFIX = 'pgferry-sock-';

/**
 * Stops the PostgreSQL servers whose data directory is inside `folder` (verify's throwaway
 * servers, in its `pgferry-server-…/data` folders): SIGQUIT, PostgreSQL's immediate shutdown, then
 * SIGKILL if it has not exited within 10 s. Only a process that is that directory's postmaster
 * (its pid file names it, and it runs in that directory) is signalled. A socket folder of its own
 * (its pid file's fifth line) is removed with it.
 */
async function stopServersIn(folder: string): Promise<number[]> {
  const stopped: number[] = [];
  for (const entry of await readdir(folder)) {
    if (!entry.startsWith('pgferry-server-')) continue;
    const dataDir = path.join(folder, entry, 'data');
    let lines: string[];
    try {
      lines = (await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
    } catch {
      continue; // never started, or shut down
    }
    const pid = Number(lines[0]);
    if (!Number.isInteger(pid) || pid <= 0 || !(await isPostmasterOf(pid, dataDir))) continue;
    signal(pid, 'SIGQUIT');
    const deadline = Date.now() + 10_000;
    while (processRuns(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (processRuns(pid)) signal(pid, 'SIGKILL');
    stopped.push(pid);
    const sockets = lines[4] ?? '';
    if (path.isAbsolute(sockets) && path.basename(sockets).startsWith(SOCKET_FOLDER_PREFIX)) {
      await rm(sockets, { recursive: true, force: true });
    }
  }
  return stopped;
}

async function isPostmasterOf(pid: number, dataDir: string): Promise<boolean> {
  if (!processRuns(pid)) return false;
  try {
    const [cwd, real] = await Promise.all([readlink(`/proc/${pid}/cwd`), stat(dataDir)]);
    return cwd === dataDir || (await stat(cwd)).ino === real.ino;
  } catch {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dataDir);
    } catch {
      return false;
    }
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone meanwhile
  }
}
