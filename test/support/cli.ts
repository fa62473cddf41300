/**
 * Running the real `pgferry` CLI (bin/pgferry.js, built code) as a child process, the way a user
 * does, plus the client tools the tests use to inspect what it stored.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { measure } from '../../scripts/support/measure';
import { extraPgBinDirs } from '../../scripts/support/postgres-server';
import type { TestPostgres } from './env';

export const REPO = path.resolve(__dirname, '..', '..');
export const BIN = path.join(REPO, 'bin', 'pgferry.js');
const run = promisify(execFile);

/** Client tools fetched by scripts/install-pg-clients.sh (e.g. PostgreSQL 17's pg_dump). */
export { extraPgBinDirs };

/** The environment the CLI runs with in tests: tool directories, no inherited passwords or config file. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' };
  // No config file of the developer's (~/.config/pgferry/config.json) may give a test a store.
  env.XDG_CONFIG_HOME = path.join(REPO, '.cache', 'no-config-home');
  env.PGFERRY_PG_BIN_DIRS = extraPgBinDirs().join(':');
  return { ...env, ...extra };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `pgferry <args>`; never rejects (the exit code is part of the result). */
export function runCli(args: string[], options: RunOptions = {}): Promise<CliResult> {
  return runNodeScript(BIN, args, options);
}

/**
 * Runs `pgferry migrate --source <source> --target <target> --store <store> <args>` (URLs, as
 * {@link sourceUrl} makes them); never rejects.
 */
export function runMigrate(
  source: string,
  target: string,
  store: string,
  args: string[] = [],
  options: RunOptions = {},
): Promise<CliResult> {
  return runCli(['migrate', '--source', source, '--target', target, '--store', store, ...args], options);
}

export interface RunOptions {
  env?: Record<string, string>;
  /** Told the child's pid once it has started (to signal it or inspect it under /proc). */
  onSpawn?: (pid: number) => void;
  /** Told each piece of stderr as it arrives (to wait for a phase in `--verbose` logs). */
  onStderr?: (text: string) => void;
  /**
   * Runs the CLI in a process group of its own, led by it (pgid = its pid), as a shell runs a
   * foreground command: `process.kill(-pid, 'SIGINT')` is then what a terminal's Ctrl-C does.
   */
  processGroup?: boolean;
}

/**
 * The peak RSS, in MiB, of the runner of `pgferry <args>` (VmHWM of the CLI's Node.js child, sampled
 * as the bench samples it: scripts/support/measure.ts). Rejects when the command fails.
 */
export async function runnerPeakMiB(args: string[]): Promise<number> {
  const m = await measure(process.execPath, [BIN, ...args], { env: cliEnv() });
  if (m.childPeakRss === undefined) throw new Error('the runner was never seen');
  return m.childPeakRss / 2 ** 20;
}

/** Runs a Node.js script under the tests' Node with the CLI's test environment; never rejects. */
export function runNodeScript(script: string, args: string[], options: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: cliEnv(options.env),
      cwd: REPO,
      detached: options.processGroup ?? false,
    });
    if (child.pid) options.onSpawn?.(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      options.onStderr?.(d.toString());
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `postgres://postgres:<password>@host:port/<database>`, every part percent-encoded. */
export function sourceUrl(pg: TestPostgres, database: string, password: string = pg.password): string {
  return `postgres://${pg.user}:${encodeURIComponent(password)}@${pg.host}:${pg.port}/${encodeURIComponent(database)}`;
}

/** The closest client tool of at least `major` (Debian's 15, or a fetched newer one). */
export function pgTool(tool: 'pg_restore' | 'pg_dump' | 'psql' | 'pg_recvlogical', major: number): string {
  const dirs = [...extraPgBinDirs(), '/usr/lib/postgresql/15/bin']
    .map((dir) => ({ dir, major: Number(/\/(\d+)\/bin$/.exec(dir)?.[1] ?? 0) }))
    .filter((d) => d.major >= major && existsSync(path.join(d.dir, tool)))
    .sort((a, b) => a.major - b.major);
  if (dirs.length === 0) {
    throw new Error(`no ${tool} >= ${major}: run scripts/install-pg-clients.sh to fetch newer client tools`);
  }
  return path.join(dirs[0].dir, tool);
}

export async function runTool(file: string, args: string[], env: Record<string, string> = {}) {
  return run(file, args, {
    env: { PATH: process.env.PATH, ...env },
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'buffer',
  });
}
