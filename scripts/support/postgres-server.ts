/**
 * Throwaway PostgreSQL servers for the integration tests and the benchmark.
 *
 * Each server lives in its own directory (owned by the `postgres` system user when we run as root, since
 * initdb/postgres refuse to run as root), listens on 127.0.0.1 only on a free TCP port, keeps its unix
 * socket inside that directory, uses real password authentication (scram-sha-256) over TCP and trades
 * durability for speed (fsync off etc.).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { Client } from 'pg';
import { REPO_ROOT } from '../../lib/paths';

export const DEFAULT_MAJORS: readonly number[] = [14, 15, 17];
export const POSTGRES_SUPERUSER = 'postgres';
/** The OS user that owns data directories and runs the servers when the tests run as root. */
export const POSTGRES_OS_USER = 'postgres';

export interface PostgresServerInfo {
  major: number;
  /** `SHOW server_version`, e.g. `15.14 (Debian 15.14-0+deb12u1)`. */
  version: string;
  /** `server_version_num`, e.g. 150014. */
  versionNum: number;
  host: string;
  port: number;
  user: string;
  password: string;
  /** Directory holding this server's `initdb`, `pg_ctl` and `postgres`. */
  binDir: string;
  dataDir: string;
  /** Directory of the unix socket (local connections are `trust`). */
  socketDir: string;
  logFile: string;
  /** Directory holding everything of this server (data, socket, log). */
  baseDir: string;
}

/** Majors to start: `PGFERRY_TEST_MAJORS=15` or `=14,17`; defaults to {@link DEFAULT_MAJORS}. */
export function resolveMajors(env: NodeJS.ProcessEnv = process.env): number[] {
  const raw = env.PGFERRY_TEST_MAJORS?.trim();
  if (!raw) return [...DEFAULT_MAJORS];
  const majors = raw.split(/[\s,]+/).filter((s) => s.length > 0);
  const result: number[] = [];
  for (const m of majors) {
    if (!/^\d+$/.test(m)) throw new Error(`PGFERRY_TEST_MAJORS: invalid major version ${JSON.stringify(m)}`);
    const n = Number(m);
    if (!result.includes(n)) result.push(n);
  }
  if (result.length === 0)
    throw new Error(`PGFERRY_TEST_MAJORS: no major versions in ${JSON.stringify(raw)}`);
  return result;
}

/**
 * The bin folders of the client tools fetched by scripts/install-pg-clients.sh (e.g. PostgreSQL
 * 17's pg_dump; `.cache/pg-clients/<major>/bin`), for `PGFERRY_PG_BIN_DIRS`.
 */
export function extraPgBinDirs(): string[] {
  const root = path.join(REPO_ROOT, '.cache', 'pg-clients');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => /^\d+$/.test(d))
    .map((d) => path.join(root, d, 'bin'))
    .filter((d) => existsSync(path.join(d, 'pg_dump')));
}

/** Candidate directories for a major's server binaries, best first. */
export function binDirCandidates(major: number): string[] {
  return [
    `/usr/lib/postgresql/${major}/bin`,
    path.join(REPO_ROOT, 'node_modules', `pg${major}`, 'native', 'bin'),
  ];
}

/** Directory holding `initdb`, `pg_ctl` and `postgres` of the given major; throws if there is none. */
export function binDirFor(major: number): string {
  const candidates = binDirCandidates(major);
  const found = candidates.find((d) =>
    ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(path.join(d, b))),
  );
  if (!found) {
    throw new Error(
      `No PostgreSQL ${major} server binaries (initdb, pg_ctl, postgres) found; looked in: ${candidates.join(', ')}`,
    );
  }
  return found;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** uid/gid of the OS user that will run the server (only meaningful when running as root). */
export function osUserIds(user = POSTGRES_OS_USER): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line)
    throw new Error(`OS user ${user} not found in /etc/passwd (needed to run PostgreSQL as non-root)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Environment for server processes: no PG* variables from the caller, a fixed C locale, and
 * `extra` (e.g. `LOCPATH`: operating-system locales that only this server has).
 */
function serverEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PG') || k.startsWith('LC_') || k === 'LANG' || k === 'LANGUAGE' || k === 'LOCPATH')
      continue;
    env[k] = v;
  }
  env.LANG = 'C';
  env.LC_ALL = 'C';
  return { ...env, ...extra };
}

interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a PostgreSQL binary, as the `postgres` OS user when we are root. */
function runAsPostgres(
  file: string,
  args: string[],
  timeoutMs = 120_000,
  extraEnv: Record<string, string> = {},
): Promise<RunResult> {
  const [cmd, cmdArgs] = isRoot() ? ['runuser', ['-u', POSTGRES_OS_USER, '--', file, ...args]] : [file, args];
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      cmdArgs,
      { env: serverEnv(extraEnv), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const how = error.killed
            ? `was killed after ${timeoutMs} ms`
            : `failed (exit code ${error.code ?? '?'}${error.signal ? `, signal ${error.signal}` : ''})`;
          reject(
            new Error(
              `${[cmd, ...cmdArgs].join(' ')} ${how}\n--- stdout ---\n${stdout.trim()}\n--- stderr ---\n${stderr.trim()}`,
            ),
          );
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

/** Ports handed out by this process and not yet known to be in use by their server. */
const reservedPorts = new Set<number>();

/** A TCP port on 127.0.0.1 that is free right now (and not handed out before by this process). */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, host, () => {
        const addr = srv.address();
        srv.close(() => {
          if (addr && typeof addr === 'object') resolve(addr.port);
          else reject(new Error('could not determine a free port'));
        });
      });
    });
    if (!reservedPorts.has(port)) {
      reservedPorts.add(port);
      return port;
    }
  }
  throw new Error('could not find a free TCP port');
}

export async function readLogTail(logFile: string, lines = 40): Promise<string> {
  try {
    const text = await fs.readFile(logFile, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch (e) {
    return `(no log at ${logFile}: ${(e as Error).message})`;
  }
}

function confValue(value: string | number): string {
  return typeof value === 'number' ? String(value) : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

async function writeServerConf(dataDir: string, settings: Record<string, string | number>): Promise<void> {
  const body = Object.entries(settings)
    .map(([k, v]) => `${k} = ${confValue(v)}`)
    .join('\n');
  await fs.writeFile(
    path.join(dataDir, 'pgferry-test.conf'),
    `# written by scripts/support/postgres-server.ts\n${body}\n`,
  );
}

export interface StartPostgresOptions {
  /** Directory to create the server's directory in (e.g. the run's temp dir). */
  parentDir: string;
  password: string;
  /** Extra `postgresql.conf` settings. */
  settings?: Record<string, string | number>;
  /** initdb's `--locale` (default `C`): the locale databases get unless told otherwise. */
  locale?: string;
  /** Extra environment of the server processes (e.g. `LOCPATH`). */
  env?: Record<string, string>;
}

/**
 * initdb + start one server. On failure, everything started is stopped and the error carries the
 * server log's tail.
 */
export async function startPostgres(major: number, opts: StartPostgresOptions): Promise<PostgresServerInfo> {
  const binDir = binDirFor(major);
  const baseDir = path.join(opts.parentDir, `pg${major}`);
  const dataDir = path.join(baseDir, 'data');
  const socketDir = path.join(baseDir, 'sock');
  const logFile = path.join(baseDir, 'postgres.log');
  const pwFile = path.join(baseDir, 'pwfile');
  await fs.mkdir(baseDir, { mode: 0o700 });
  await fs.mkdir(socketDir, { mode: 0o700 });
  if (isRoot()) {
    const { uid, gid } = osUserIds();
    await fs.chown(baseDir, uid, gid);
    await fs.chown(socketDir, uid, gid);
  }

  // initdb: real password for the superuser, scram over TCP, trust over the (private) unix socket.
  await fs.writeFile(pwFile, `${opts.password}\n`, { mode: 0o600 });
  try {
    if (isRoot()) {
      const { uid, gid } = osUserIds();
      await fs.chown(pwFile, uid, gid);
    }
    await runAsPostgres(path.join(binDir, 'initdb'), [
      '-D',
      dataDir,
      '-U',
      POSTGRES_SUPERUSER,
      `--pwfile=${pwFile}`,
      '--auth-host=scram-sha-256',
      '--auth-local=trust',
      '--encoding=UTF8',
      `--locale=${opts.locale ?? 'C'}`,
      '--no-sync',
    ]);
  } finally {
    await fs.rm(pwFile, { force: true });
  }
  await fs.appendFile(
    path.join(dataDir, 'postgresql.conf'),
    "\n# pgferry test harness\ninclude = 'pgferry-test.conf'\n",
  );

  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await findFreePort();
    await writeServerConf(dataDir, {
      listen_addresses: '127.0.0.1',
      port,
      unix_socket_directories: socketDir,
      max_connections: 100,
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      password_encryption: 'scram-sha-256',
      // A client that gives up mid-authentication leaves a backend that does not absorb
      // ProcSignalBarriers until this timeout, which stalls DROP DATABASE (PG 15+); default is 60s.
      authentication_timeout: '5s',
      ...opts.settings,
    });
    try {
      await runAsPostgres(
        path.join(binDir, 'pg_ctl'),
        ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'],
        120_000,
        opts.env,
      );
    } catch (e) {
      lastError = e;
      const tail = await readLogTail(logFile);
      await stopDataDir(binDir, dataDir).catch(() => undefined);
      // Lost a race for the port: try another one.
      if (/could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(tail)) continue;
      throw new Error(
        `PostgreSQL ${major} failed to start (${binDir}):\n${(e as Error).message}\n--- log tail ---\n${tail}`,
      );
    }
    const info: PostgresServerInfo = {
      major,
      version: '',
      versionNum: 0,
      host: '127.0.0.1',
      port,
      user: POSTGRES_SUPERUSER,
      password: opts.password,
      binDir,
      dataDir,
      socketDir,
      logFile,
      baseDir,
    };
    try {
      const { version, versionNum } = await queryVersion(info);
      info.version = version;
      info.versionNum = versionNum;
    } catch (e) {
      const tail = await readLogTail(logFile);
      await stopPostgres(info).catch(() => undefined);
      throw new Error(
        `PostgreSQL ${major} started but password login over TCP failed: ${(e as Error).message}\n--- log tail ---\n${tail}`,
      );
    }
    if (Math.floor(info.versionNum / 10000) !== major) {
      await stopPostgres(info).catch(() => undefined);
      throw new Error(`Expected PostgreSQL ${major} from ${binDir}, but the server reports ${info.version}`);
    }
    return info;
  }
  throw new Error(
    `PostgreSQL ${major} could not bind a free port after 3 attempts: ${(lastError as Error).message}\n--- log tail ---\n${await readLogTail(logFile)}`,
  );
}

async function queryVersion(info: PostgresServerInfo): Promise<{ version: string; versionNum: number }> {
  const client = new Client({
    host: info.host,
    port: info.port,
    user: info.user,
    password: info.password,
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();
  try {
    const res = await client.query<{ v: string; n: string }>(
      "SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n",
    );
    return { version: res.rows[0].v, versionNum: Number(res.rows[0].n) };
  } finally {
    await client.end();
  }
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function stopDataDir(binDir: string, dataDir: string): Promise<void> {
  if (postmasterPid(dataDir) === undefined) return;
  try {
    await runAsPostgres(
      path.join(binDir, 'pg_ctl'),
      ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop'],
      60_000,
    );
  } catch (e) {
    // Already gone (crashed, or stopped behind our back leaving a stale postmaster.pid): fine.
    const pid = postmasterPid(dataDir);
    if (pid !== undefined && isAlive(pid)) throw e;
  }
}

/** `pg_ctl stop -m immediate`; does nothing if the server is not running. */
export async function stopPostgres(info: Pick<PostgresServerInfo, 'binDir' | 'dataDir'>): Promise<void> {
  await stopDataDir(info.binDir, info.dataDir);
}

/**
 * Synchronous last-resort stop (for `process.on('exit')` and signal handlers): SIGQUIT to the
 * postmaster named in `postmaster.pid` (= immediate shutdown).
 */
export function killPostgresSync(dataDir: string): void {
  const pid = postmasterPid(dataDir);
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGQUIT');
  } catch {
    // already gone
  }
}
