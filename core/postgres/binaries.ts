/**
 * Finding PostgreSQL client tools of the right major. pg_dump must be at least as new as the
 * server it dumps; among the suitable ones the closest major is preferred (it is the one the
 * server's own release was tested with).
 */
import { execFile } from 'node:child_process';
import { access, constants, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PgferryError } from '../errors';

const run = promisify(execFile);

export type PgTool = 'pg_dump' | 'pg_dumpall' | 'pg_restore' | 'psql' | 'initdb' | 'pg_ctl' | 'postgres';

export interface PgToolBinary {
  path: string;
  /** e.g. "17.11" */
  version: string;
  major: number;
}

/** Parses `pg_dump (PostgreSQL) 17.11 (Debian 17.11-1)` → 17.11 / 17; also `9.6.24` → 9. */
export function parseToolVersion(output: string): { version: string; major: number } | undefined {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(output);
  if (!m) return undefined;
  const first = Number(m[1]);
  const major = first >= 10 ? first : Number(`${first}.${m[2] ?? 0}`);
  return { version: [m[1], m[2], m[3]].filter((x) => x !== undefined).join('.'), major };
}

/** The directories searched, in order: PGFERRY_PG_BIN_DIRS, PATH, then the distributions' layouts. */
export async function candidateBinDirs(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const dirs: string[] = [];
  const split = (value: string | undefined) => (value ?? '').split(':').filter(Boolean);
  dirs.push(...split(env.PGFERRY_PG_BIN_DIRS), ...split(env.PATH));
  for (const [parent, pattern, sub] of [
    ['/usr/lib/postgresql', /^\d+(\.\d+)?$/, 'bin'],
    ['/usr', /^pgsql-\d+(\.\d+)?$/, 'bin'],
  ] as const) {
    const names = await readdir(parent).catch(() => [] as string[]);
    for (const name of names.filter((n) => pattern.test(n))) dirs.push(path.join(parent, name, sub));
  }
  return [...new Set(dirs.map((d) => path.resolve(d)))];
}

/**
 * How long a tool may take to print its version. Debian's /usr/bin tools are a Perl wrapper that
 * takes well over a second on a loaded machine (20 backups at once on 2 cores took more than 10 s):
 * a slow answer is not a missing tool.
 */
const PROBE_TIMEOUT_MS = 60_000;

/** What a probe found: the tool, nothing there (cached), or a tool that did not answer (not cached). */
type Probe = { binary: PgToolBinary } | { absent: true } | { failed: string };

const versionCache = new Map<string, Promise<Probe>>();

async function probeFile(file: string): Promise<Probe> {
  let cached = versionCache.get(file);
  if (!cached) {
    cached = (async (): Promise<Probe> => {
      try {
        await access(file, constants.X_OK);
      } catch {
        return { absent: true };
      }
      try {
        const { stdout } = await run(file, ['--version'], { timeout: PROBE_TIMEOUT_MS });
        const parsed = parseToolVersion(stdout);
        return parsed ? { binary: { path: file, ...parsed } } : { absent: true };
      } catch (err) {
        // Asked again next time: a tool that timed out or crashed once may answer later.
        versionCache.delete(file);
        return {
          failed: (err as { killed?: boolean }).killed
            ? 'did not answer --version in time'
            : String((err as Error).message).split('\n')[0],
        };
      }
    })();
    versionCache.set(file, cached);
  }
  return cached;
}

async function probe(file: string): Promise<PgToolBinary | undefined> {
  const found = await probeFile(file);
  return 'binary' in found ? found.binary : undefined;
}

/**
 * Every installed copy of `tool`, in search order; with `programsOnly`, none that is Debian's
 * `pg_wrapper` (not even started to ask its version: see `choosePgTool`).
 */
export async function findPgTools(
  tool: PgTool,
  env: NodeJS.ProcessEnv = process.env,
  { programsOnly = false }: { programsOnly?: boolean } = {},
): Promise<PgToolBinary[]> {
  const dirs = await candidateBinDirs(env);
  const found = await Promise.all(
    dirs.map(async (dir) => {
      const file = path.join(dir, tool);
      return programsOnly && (await isDebianWrapper(file)) ? undefined : probe(file);
    }),
  );
  const seen = new Set<string>();
  return found.filter((b): b is PgToolBinary => {
    if (!b || seen.has(b.path)) return false;
    seen.add(b.path);
    return true;
  });
}

/**
 * Starts asking every program `choosePgTool` would ask for each of `tools` its version, without
 * waiting: the answers are kept (per process, as `choosePgTool`'s own are), so that choosing the
 * tool once the server's major is known starts no process. A runner calls it at its start, so
 * that the probes (0.05–0.1 s each before pg_dump could start) run beside its loading of the
 * plan and its first connections. What a probe could not learn is asked again when chosen.
 */
export function prefetchPgTools(tools: readonly PgTool[], env: NodeJS.ProcessEnv = process.env): void {
  for (const tool of tools) findPgTools(tool, env, { programsOnly: true }).catch(() => undefined);
}

/**
 * The copy of `tool` to use for a server of major `serverMajor`: the lowest major that is not
 * older than the server (ties: first in search order). `why` opens the error when there is none
 * (default: "the server runs PostgreSQL <serverVersion>"); it says whose version demands it.
 */
export async function choosePgTool(
  tool: PgTool,
  serverMajor: number,
  serverVersion: string,
  env: NodeJS.ProcessEnv = process.env,
  why = `the server runs PostgreSQL ${serverVersion}`,
): Promise<PgToolBinary> {
  // The programs first: Debian's wrapper (/usr/bin/pg_dump, first in PATH) runs a program of
  // /usr/lib/postgresql/<major>/bin, which is searched too, and asking it its version starts Perl
  // (~30 ms of CPU, 0.1–0.4 s before the task can start on a loaded machine; twice per runner,
  // as /bin is /usr/bin). Only when no program will do are the wrappers asked.
  const programs = await findPgTools(tool, env, { programsOnly: true });
  const program = lowestSuitable(programs, serverMajor);
  if (program) return program;
  const all = await findPgTools(tool, env);
  const suitable = lowestSuitable(all, serverMajor);
  if (suitable) return suitable;
  const have = all.length ? `found only ${[...new Set(all.map((b) => b.version))].join(', ')}` : 'found none';
  throw new PgferryError(
    'NoSuitablePgDump',
    `${why}, which needs ${tool} ${serverMajor} or newer; ${have}. ` +
      `Install the PostgreSQL ${serverMajor} client tools (e.g. apt-get install postgresql-client-${serverMajor}) ` +
      'or add their bin directory to PGFERRY_PG_BIN_DIRS',
  );
}

/** The copy of the lowest major not older than `serverMajor` (ties: the first found). */
function lowestSuitable(found: readonly PgToolBinary[], serverMajor: number): PgToolBinary | undefined {
  return found.filter((b) => b.major >= serverMajor).sort((a, b) => a.major - b.major)[0];
}

/** Whether `file` is (a link to) postgresql-common's `pg_wrapper`. */
async function isDebianWrapper(file: string): Promise<boolean> {
  const target = await realpath(file).catch(() => file);
  return path.basename(target) === 'pg_wrapper';
}

/** The same tool from the same installation as `sibling` (e.g. pg_dumpall beside pg_dump). */
export async function siblingTool(sibling: PgToolBinary, tool: PgTool): Promise<PgToolBinary> {
  const file = path.join(path.dirname(sibling.path), tool);
  const found = await probeFile(file);
  if ('binary' in found) return found.binary;
  throw new PgferryError(
    'NoSuitablePgDump',
    'failed' in found
      ? `${file} ${found.failed}`
      : `${tool} is missing beside ${sibling.path}: install ${tool} there (one PostgreSQL package holds both), ` +
          'or put a folder holding both first in PGFERRY_PG_BIN_DIRS',
  );
}
