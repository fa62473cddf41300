/**
 * A throwaway PostgreSQL server for restore drills, started by the runner itself (locally, and
 * inside the Fargate task on AWS): no standing database is needed. It listens only on a unix
 * socket in a private directory, trusts local connections there, and trades durability for
 * speed; it is stopped and deleted afterwards.
 */
import { execFile } from 'node:child_process';
import { appendFile, chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { PgferryError } from '../../../core/errors';
import { findPgTools, type PgToolBinary, siblingTool } from '../../../core/postgres/binaries';
import { SOCKET_FOLDER_PREFIX } from '../../../core/work-folders';
import { toolEnv } from './tool-env';

const run = promisify(execFile);

export interface ThrowawayServer {
  socketDir: string;
  port: number;
  version: string;
  major: number;
  stop(): Promise<void>;
}

const PORT = 5432;
/** initdb and postgres refuse to run as root: as root, the server runs as this user. */
const DEFAULT_OS_USER = 'postgres';
/**
 * The longest path of a Unix socket file PostgreSQL can listen on: `sun_path` holds 108 bytes on
 * Linux (104 on macOS) with its terminating NUL. A longer one fails the server's start, and
 * pg_ctl says only "could not start server": a work folder's path of ~80 bytes was enough.
 */
const SOCKET_PATH_MAX = process.platform === 'darwin' ? 103 : 107;
/**
 * Where the server's socket goes: `base` when the socket's path in it fits, else a new folder in
 * the system's temporary folder (or /tmp) — which the caller owns and removes.
 */
async function socketDirFor(base: string): Promise<string> {
  const fits = (dir: string) => Buffer.byteLength(path.join(dir, `.s.PGSQL.${PORT}`)) <= SOCKET_PATH_MAX;
  if (fits(base)) return base;
  for (const parent of new Set([tmpdir(), '/tmp'])) {
    if (!fits(path.join(parent, `${SOCKET_FOLDER_PREFIX}XXXXXX`))) continue;
    return mkdtemp(path.join(parent, SOCKET_FOLDER_PREFIX));
  }
  throw new PgferryError(
    'RestoreFailed',
    `the drill's server cannot listen in ${base}: a socket's path is at most ${SOCKET_PATH_MAX} bytes; set PGFERRY_WORK_DIR to a shorter folder`,
  );
}

/**
 * The installed server binaries (initdb, beside it pg_ctl and postgres) of the lowest major not
 * older than `major`; `why` says what demands that major, for the error when there are none.
 */
export async function chooseServerBinaries(
  major: number,
  why: string,
  env: NodeJS.ProcessEnv,
): Promise<PgToolBinary> {
  const all = await findPgTools('initdb', env);
  const suitable = all.filter((b) => b.major >= major).sort((a, b) => a.major - b.major);
  if (suitable.length > 0) return suitable[0];
  const have = all.length
    ? `found only PostgreSQL ${[...new Set(all.map((b) => b.version))].join(', ')}`
    : 'found none';
  throw new PgferryError(
    'NoSuitablePgDump',
    `${why}: it needs a PostgreSQL ${major} or newer server (initdb, pg_ctl, postgres); ${have}. ` +
      `Install the PostgreSQL ${major} server package or add its bin directory to PGFERRY_PG_BIN_DIRS`,
  );
}

/**
 * Starts a server of `major` or newer (see {@link chooseServerBinaries}) in a new folder of
 * `workDir`: UTF8 and the C locale, as the template that databases are created from with their
 * own encoding and locale.
 */
export async function startThrowawayServer(
  major: number,
  why: string,
  workDir: string,
  env: NodeJS.ProcessEnv,
): Promise<ThrowawayServer> {
  const initdb = await chooseServerBinaries(major, why, env);
  const pgCtl = await siblingTool(initdb, 'pg_ctl');
  const base = await mkdtemp(path.join(workDir, 'pgferry-server-'));
  const dataDir = path.join(base, 'data');
  const asRoot = userInfo().uid === 0;
  const osUser = env.PGFERRY_SERVER_OS_USER ?? DEFAULT_OS_USER;
  const runServerTool = async (file: string, args: string[]) => {
    const [cmd, cmdArgs] = asRoot ? ['runuser', ['-u', osUser, '--', file, ...args]] : [file, args];
    try {
      await run(cmd, cmdArgs, { env: { ...toolEnv(env), LC_ALL: 'C' }, timeout: 180_000 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new PgferryError(
        'RestoreFailed',
        `${path.basename(file)} failed: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' | ')}`,
      );
    }
  };
  const sockets = await socketDirFor(base).catch(async (err: unknown) => {
    await rm(base, { recursive: true, force: true });
    throw err;
  });
  const stop = async () => {
    await runServerTool(pgCtl.path, ['-D', dataDir, '-m', 'immediate', 'stop']).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
    if (sockets !== base) await rm(sockets, { recursive: true, force: true });
  };
  try {
    const owner = asRoot
      ? await Promise.all([run('id', ['-u', osUser]), run('id', ['-g', osUser])])
      : undefined;
    for (const dir of new Set([base, sockets])) {
      await chmod(dir, 0o700);
      if (owner) await chown(dir, Number(owner[0].stdout.trim()), Number(owner[1].stdout.trim()));
    }
    await runServerTool(initdb.path, [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    await appendFile(
      path.join(dataDir, 'postgresql.conf'),
      [
        '',
        '# pgferry restore drill: private, disposable',
        "listen_addresses = ''",
        `unix_socket_directories = '${sockets}'`,
        `port = ${PORT}`,
        'fsync = off',
        'full_page_writes = off',
        'synchronous_commit = off',
        'max_wal_size = 4GB',
        '',
      ].join('\n'),
    );
    await runServerTool(pgCtl.path, [
      '-D',
      dataDir,
      '-l',
      path.join(base, 'server.log'),
      '-w',
      '-t',
      '120',
      'start',
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { socketDir: sockets, port: PORT, version: initdb.version, major: initdb.major, stop };
}
