/**
 * Runs a command and measures it: wall time; the CPU seconds of the command and every process it
 * started (user + system, as the kernel accounted them when each was reaped: exact, not sampled);
 * optionally the CPU seconds something else spent meanwhile (`otherCpu`: the database server's);
 * and the peak resident set (VmHWM) of the Node.js processes in its process tree — pgferry's own
 * processes (the CLI and the pg-tools runner it starts), not pg_dump, pg_restore, compressors or
 * the servers. The tree is sampled from /proc every 50 ms; VmHWM is itself a high-water mark, so a
 * sample taken any time before a process exits sees its peak up to then.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface Measured {
  seconds: number;
  stdout: string;
  stderr: string;
  /** Peak VmHWM of the root process, when it is Node.js (the CLI), in bytes. */
  rootPeakRss?: number;
  /** Peak VmHWM of any other Node.js process of the tree (the runner), in bytes. */
  childPeakRss?: number;
  /** How long a non-root Node.js process of the tree was seen running (the runner), in seconds. */
  childSeconds?: number;
  /** CPU seconds (user + system) of the command and all its descendants. */
  cpuSeconds?: number;
  /** What `otherCpu` grew by while the command ran (the server's CPU seconds). */
  otherCpuSeconds?: number;
}

/**
 * The command runs as a child of this shell, which prints, once it has reaped it, the CPU time of
 * its reaped children (`times`' second line) on a descriptor of its own; a child reaps its
 * descendants, so the figure holds the whole tree's.
 */
const TIMED = '"$@" 3>&-; status=$?; times >&3; exit $status';

/** Seconds of `times`' `0m1.234s` notation. */
function timesSeconds(word: string): number {
  const m = /^(\d+)m([\d.]+)s$/.exec(word);
  return m ? Number(m[1]) * 60 + Number(m[2]) : Number.NaN;
}

/** The children's user + system seconds of `times`' output (its second line). */
export function childrenCpuSeconds(timesOutput: string): number | undefined {
  const line = timesOutput.trim().split('\n')[1];
  if (!line) return undefined;
  const [user, system] = line.trim().split(/\s+/).map(timesSeconds);
  return Number.isFinite(user + system) ? user + system : undefined;
}

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Every process's parent, from /proc/<pid>/stat (the comm field may hold spaces and parentheses). */
export function processTable(): Map<number, { ppid: number; comm: string }> {
  const out = new Map<number, { ppid: number; comm: string }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProc(Number(name), 'stat');
    if (!stat) continue;
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    out.set(Number(name), { ppid, comm });
  }
  return out;
}

/** `root` and its descendants in `procs` (each process's parent). */
export function treeOf(root: number, procs: ReadonlyMap<number, { ppid: number }>): Set<number> {
  const tree = new Set([root]);
  // Parents have lower pids almost always, but not after wrap-around: iterate to a fixed point.
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, { ppid }] of procs) {
      if (!tree.has(pid) && tree.has(ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  return tree;
}

function vmHwm(pid: number): number | undefined {
  const m = /VmHWM:\s+(\d+) kB/.exec(readProc(pid, 'status') ?? '');
  return m ? Number(m[1]) * 1024 : undefined;
}

/** Runs `command args`; rejects (with its stderr's tail) when it exits non-zero. */
export function measure(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; otherCpu?: () => number } = {},
): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const otherBefore = options.otherCpu?.();
    const started = process.hrtime.bigint();
    const child = spawn('bash', ['-c', TIMED, 'bash', command, ...args], {
      env: options.env,
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    // A command that exits without reading all its input fails the write (EPIPE): its exit status,
    // not the write, says how it went.
    child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') reject(err);
    });
    child.stdin?.end(options.input ?? '');
    let times = '';
    child.stdio[3]?.on('data', (d: Buffer) => {
      times += d.toString();
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-200_000);
    });
    // The command is the shell's child: the root of what is measured (the CLI, for pgferry).
    const shellPid = child.pid ?? -1;
    let rootPeak: number | undefined;
    let childPeak: number | undefined;
    const childSeen = new Map<number, { first: bigint; last: bigint }>();
    const sample = () => {
      const now = process.hrtime.bigint();
      const procs = processTable();
      for (const pid of treeOf(shellPid, procs)) {
        if (procs.get(pid)?.comm !== 'node') continue;
        const hwm = vmHwm(pid);
        if (hwm === undefined) continue;
        if (procs.get(pid)?.ppid === shellPid) rootPeak = Math.max(rootPeak ?? 0, hwm);
        else {
          childPeak = Math.max(childPeak ?? 0, hwm);
          const seen = childSeen.get(pid);
          if (seen) seen.last = now;
          else childSeen.set(pid, { first: now, last: now });
        }
      }
    };
    const timer = setInterval(sample, 50);
    sample();
    child.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) {
        const tail = stderr.trim().split('\n').slice(-5).join('\n');
        reject(new Error(`${command} ${args.slice(0, 2).join(' ')} failed (${code ?? signal}): ${tail}`));
        return;
      }
      let childNs = 0n;
      for (const { first, last } of childSeen.values()) childNs += last - first;
      const finish = (otherAfter?: number) =>
        resolve({
          seconds,
          stdout,
          stderr,
          rootPeakRss: rootPeak,
          childPeakRss: childPeak,
          childSeconds: childSeen.size ? Number(childNs) / 1e9 : undefined,
          cpuSeconds: childrenCpuSeconds(times),
          otherCpuSeconds:
            otherBefore === undefined || otherAfter === undefined ? undefined : otherAfter - otherBefore,
        });
      // The server's backends end as their clients go: its CPU is read once they have been reaped.
      if (otherBefore === undefined) finish();
      else setTimeout(() => finish(options.otherCpu?.()), 300);
    });
  });
}

/** Runs a shell pipeline under bash with `pipefail`; the script must quote what it interpolates. */
export function measureShell(
  script: string,
  env?: NodeJS.ProcessEnv,
  otherCpu?: () => number,
): Promise<Measured> {
  return measure('bash', ['-c', `set -euo pipefail; ${script}`], { env, otherCpu });
}

/** Single-quotes a word for bash. */
export function shq(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
