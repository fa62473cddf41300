/**
 * The restore runner: downloads a backup's objects while verifying their SHA-256 against the
 * manifest — before anything touches the target — then creates the database (or cleans it),
 * optionally creates the roles, runs pg_restore with parallel jobs and fast session settings,
 * ANALYZEs, compares every table's row count with the manifest, and stores a report.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { cleanableOrder, droppedByClean, readArchiveToc } from '../../../core/archive-toc';
import { decompressFile } from '../../../core/compression';
import { libpqEnv, resolvePassword } from '../../../core/connection';
import {
  type BackupManifest,
  type Connection,
  type DatabaseProperties,
  type RestorePlan,
  type RestoreReport,
  SCHEMA_VERSION,
  type StoredObject,
} from '../../../core/contracts';
import { dropBlockers, refuseBlockedCleanRestore } from '../../../core/drop-dependents';
import { errorMessage, PgferryError, type PgferryErrorCode } from '../../../core/errors';
import { completeDatabase, type IncompleteRun, markIncomplete } from '../../../core/incomplete-database';
import { Meter } from '../../../core/metering';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../core/pg-binaries';
import { connectPg, quoteIdent, serverInfo } from '../../../core/postgres';
import { createDatabaseSql, describeArchive, readDatabaseLocale } from '../../../core/requirements';
import { loadSessionOptions } from '../../../core/restore-session';
import type { BackupStore } from '../../../core/store';
import { backupObjectKey, catalogNameOf, restoreReportKey } from '../../../core/store-keys';
import {
  describeSessions,
  otherSessions,
  refuseConnectedSessions,
  terminateSessions,
} from '../../../core/target-sessions';
import { createWorkFolder, workRoot } from '../../../core/work-folders';
import type { DumpDeps } from './dump';
import { planGlobals } from './globals';
import { toolEnv } from './tool-env';

export type RestoreDeps = Pick<DumpDeps, 'store' | 'env' | 'onChild'> & {
  onPhase?: (phase: string) => void;
  /**
   * Aborted when the run is interrupted (a signal, or the CLI gone): the restore stops at once and
   * undoes what it can — the database it created is dropped, its files removed — and fails with
   * the abort's reason. Its tools are stopped by whoever aborts (see main.ts).
   */
  signal?: AbortSignal;
};

/**
 * How long a clean restore's sessions wait for a lock (`lock_timeout`), and for the sessions it
 * ends to go: a session that connects after the check and holds a lock makes pg_restore fail
 * within this time instead of waiting forever.
 */
export const CLEAN_LOCK_TIMEOUT_SECONDS = 30;

/** Throws the interruption, once `signal` is aborted. */
export function stopIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw interruption(signal);
}

/** The error an interrupted run fails with: the abort's reason. */
export function interruption(signal: AbortSignal): PgferryError {
  const reason = signal.reason as unknown;
  return reason instanceof PgferryError
    ? reason
    : new PgferryError('Interrupted', `interrupted: ${errorMessage(reason)}`);
}

type Checks = RestoreReport['checks'];

/** What a restore has done so far: its report's timings and checks, also when it fails. */
export class RestoreProgress {
  readonly timings: Record<string, number> = {};
  readonly checks: Checks = { checksums: [], rowCounts: [], analyzed: false };

  constructor(private readonly onPhase?: (phase: string) => void) {}

  async timed<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    this.onPhase?.(phase);
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      this.timings[phase] = (Date.now() - t0) / 1000;
    }
  }
}

/** The restore task: restores, checks, and stores a report whatever the outcome. */
export async function runRestore(plan: RestorePlan, deps: RestoreDeps): Promise<RestoreReport> {
  const started = Date.now();
  const progress = new RestoreProgress(deps.onPhase);
  const { manifest } = plan;
  const reportKey = restoreReportKey(catalogNameOf(manifest), manifest.id, plan.restoreId);
  try {
    const password = await resolvePassword(plan.request.target, 'target', deps.env);
    await restoreInto(plan, password, progress, deps);
    const report = buildReport(plan, 'passed', started, progress);
    await deps.store.putJson(reportKey, report);
    return report;
  } catch (err) {
    const report = { ...buildReport(plan, 'failed', started, progress), error: errorMessage(err) };
    await deps.store.putJson(reportKey, report).catch(() => undefined);
    throw err;
  }
}

/**
 * Downloads and verifies the backup, creates (or cleans) the target database, restores it and
 * checks it. Throws on any failure; a database it created is dropped again.
 */
export async function restoreInto(
  plan: RestorePlan,
  password: string | undefined,
  progress: RestoreProgress,
  deps: RestoreDeps,
): Promise<void> {
  const { request, manifest } = plan;
  const { checks } = progress;
  const { signal } = deps;
  stopIfInterrupted(signal);
  const workDir = await createWorkFolder('restore', workRoot(deps.env));
  let createdDatabase = false;
  try {
    const files = await progress.timed('download', () =>
      downloadVerified(deps.store, manifest, workDir, checks, signal),
    );
    stopIfInterrupted(signal);
    const pgRestore = await choosePgTool(
      'pg_restore',
      manifest.tool.pgDumpMajor,
      manifest.tool.pgDumpVersion,
      deps.env,
      `the backup's archive was written by ${describeArchive(manifest)}`,
    );

    if (request.mode === 'clean') {
      await progress.timed('checkTarget', () => prepareCleanTarget(plan, password, files.dump, checks));
    }
    stopIfInterrupted(signal);
    const admin = await connectMaintenance(plan, password);
    try {
      if (request.mode === 'create') {
        await progress.timed('createDatabase', async () => {
          await createDatabase(admin, request.target.database, manifest);
          createdDatabase = true;
          await markIncomplete(admin, request.target.database, incompleteRun(plan));
        });
        checks.createdWith = await readDatabaseLocale(admin, request.target.database);
      }
      stopIfInterrupted(signal);
      if (request.withGlobals) {
        checks.globals = await progress.timed('globals', () =>
          applyGlobals(admin, files.globals, pgRestore, password, plan, deps),
        );
      }
    } finally {
      await admin.end().catch(() => undefined);
    }

    stopIfInterrupted(signal);
    await progress.timed('pgRestore', () => pgRestoreInto(pgRestore, files.dump, plan, password, deps));
    stopIfInterrupted(signal);
    const target = await connectPg(request.target, password);
    try {
      await progress.timed('analyze', () => target.query('ANALYZE'));
      checks.analyzed = true;
      checks.rowCounts = await progress.timed('rowCounts', () => compareRowCounts(target, plan));
    } finally {
      await target.end().catch(() => undefined);
    }
    const mismatched = checks.rowCounts.filter((t) => t.rows !== t.restoredRows);
    if (mismatched.length) {
      throw new PgferryError(
        'RestoreFailed',
        `row counts differ from the backup's: ${mismatched
          .slice(0, 5)
          .map((t) => `${t.schema}.${t.name} ${t.restoredRows} (expected ${t.rows})`)
          .join(', ')}`,
      );
    }
    stopIfInterrupted(signal);
    // Last, since it ends the incomplete mark (and the owner it sets may keep us from commenting).
    await progress.timed('databaseProperties', () =>
      applyDatabaseProperties(plan, password, manifest.databaseProperties),
    );
  } catch (caught) {
    // Interrupted, the tools' failures (they were stopped) say less than the interruption.
    const err = signal?.aborted ? interruption(signal) : caught;
    let message = errorMessage(err);
    const name = request.target.database;
    if (createdDatabase) {
      const dropped = await dropCreatedDatabase(plan, password);
      message += dropped
        ? ` (the partially restored database ${name} was dropped: run the restore again)`
        : ` (the partially restored database ${name} is left in place: drop it, then run the restore again)`;
    } else if (request.mode === 'clean' && progress.timings.pgRestore !== undefined) {
      message += ` (the database ${name} is left partly replaced: pg_restore had begun dropping and recreating its objects)`;
    } else if (request.mode === 'clean' && signal?.aborted) {
      message += ` (nothing in the database ${name} was changed)`;
    }
    if (plan.warnings?.length) message += ` (preflight warned: ${plan.warnings.join('; ')})`;
    throw new PgferryError(err instanceof PgferryError ? err.code : 'RestoreFailed', message, { cause: err });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Who is creating the database, for its incomplete mark. */
function incompleteRun(plan: RestorePlan): IncompleteRun {
  return {
    kind: 'restore',
    id: plan.restoreId,
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
  };
}

/**
 * Before a clean restore drops anything: nothing in the target that is not in the backup depends
 * on what pg_restore will drop (it would stop pg_restore midway), and no other session is
 * connected (its locks would make pg_restore wait) — or, with `terminateConnections`, those
 * sessions are ended. Throws, naming them, while nothing is changed.
 */
async function prepareCleanTarget(
  plan: RestorePlan,
  password: string | undefined,
  dumpFile: string,
  checks: Checks,
): Promise<void> {
  const { request } = plan;
  const dropped = droppedByClean(await readArchiveToc(createReadStream(dumpFile)), request);
  const target = await connectPg(request.target, password);
  try {
    const blockers = await dropBlockers(target, dropped);
    if (blockers.length) refuseBlockedCleanRestore(request.target.database, blockers, 'nothing was dropped');
    const sessions = await otherSessions(target, request.target.database);
    if (sessions.length === 0) return;
    if (!request.terminateConnections) {
      refuseConnectedSessions(request.target.database, sessions, 'nothing was dropped');
    }
    const left = await terminateSessions(
      target,
      request.target.database,
      sessions.map((s) => s.pid),
      CLEAN_LOCK_TIMEOUT_SECONDS * 1000,
    );
    if (left.length) {
      throw new PgferryError(
        'TargetRefused',
        `sessions connected to ${quoteIdent(request.target.database)} did not end within ${CLEAN_LOCK_TIMEOUT_SECONDS}s: ` +
          `${describeSessions(left)}; nothing was dropped`,
      );
    }
    checks.terminatedSessions = sessions.map(({ pid, user, application }) => ({ pid, user, application }));
  } finally {
    await target.end().catch(() => undefined);
  }
}

function buildReport(
  plan: RestorePlan,
  status: 'passed' | 'failed',
  started: number,
  { timings, checks }: RestoreProgress,
): RestoreReport {
  return {
    schemaVersion: SCHEMA_VERSION,
    kind: 'restore',
    restoreId: plan.restoreId,
    backupId: plan.manifest.id,
    database: catalogNameOf(plan.manifest),
    target: {
      host: plan.request.target.host,
      port: plan.request.target.port,
      database: plan.request.target.database,
      serverVersion: plan.targetServer.version,
    },
    status,
    mode: plan.request.mode,
    jobs: plan.jobs,
    toastCompression: plan.toastCompression,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date().toISOString(),
    timings: { ...timings, total: (Date.now() - started) / 1000 },
    checks,
    ...(plan.warnings?.length ? { warnings: plan.warnings } : {}),
  };
}

/**
 * Downloads every object into `dir`, decompressing as it goes and hashing the stored bytes.
 * Only files whose checksum matched are returned: a corrupt backup never reaches pg_restore.
 */
async function downloadVerified(
  store: BackupStore,
  manifest: BackupManifest,
  dir: string,
  checks: Checks,
  signal: AbortSignal | undefined,
): Promise<{ dump: string; globals?: string }> {
  const files: { dump?: string; globals?: string } = {};
  for (const object of manifest.objects) {
    const file = path.join(dir, object.kind === 'dump' ? 'dump.pgdump' : 'globals.sql');
    await downloadOne(store, manifest, object, file, signal);
    checks.checksums.push({ key: object.key, sha256: object.sha256, verified: true });
    files[object.kind] = file;
  }
  if (!files.dump) throw new PgferryError('BackupCorrupt', `backup ${manifest.id} has no dump object`);
  return { dump: files.dump, globals: files.globals };
}

/**
 * Downloads one object, checking its SHA-256, and decompresses it into `file`. An object of a
 * local store is hashed and decompressed at once, each reading the stored file; one from S3 is
 * hashed as it downloads to a file beside `file`, then decompressed. Either way nothing reaches
 * `file`'s reader before both finished and the checksum matched.
 */
async function downloadOne(
  store: BackupStore,
  manifest: BackupManifest,
  object: StoredObject,
  file: string,
  signal: AbortSignal | undefined,
) {
  const key = backupObjectKey(catalogNameOf(manifest), manifest.id, object.key);
  const localFile = store.localFile?.(key);
  const compressed = localFile ?? `${file}.download`;
  const meter = new Meter({ sha256: true });
  try {
    const body = await store.download(key);
    const hashed = pipeline(body, meter, localFile ? discard() : createWriteStream(compressed), { signal });
    const decompressed = localFile
      ? decompressFile(object.compression, compressed, file, signal)
      : hashed.then(() => decompressFile(object.compression, compressed, file, signal));
    const [hashing, decompressing] = await Promise.allSettled([hashed, decompressed]);
    if (hashing.status === 'rejected') throw downloadFailure(hashing.reason, object, manifest);
    const sha256 = meter.digest();
    if (sha256 !== object.sha256 || meter.bytes !== object.bytes) {
      throw new PgferryError(
        'BackupCorrupt',
        `object ${object.key} of backup ${manifest.id} failed its checksum (sha256 ${sha256.slice(0, 12)}…, ` +
          `${meter.bytes} bytes; the manifest says ${object.sha256.slice(0, 12)}…, ${object.bytes} bytes); ` +
          'nothing was written to the target',
      );
    }
    if (decompressing.status === 'rejected') throw downloadFailure(decompressing.reason, object, manifest);
  } finally {
    if (!localFile) await rm(compressed, { force: true });
  }
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}

/** What a failed download or decompression of `object` tells the user: a full disk, or corruption. */
export function downloadFailure(err: unknown, object: StoredObject, manifest: BackupManifest): PgferryError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new PgferryError(
      'RestoreFailed',
      `no space left to download ${object.key}; nothing was written to the target`,
    );
  }
  if (err instanceof PgferryError) return err;
  // The checksum matched, so bytes that do not decompress were stored that way: corruption.
  return new PgferryError(
    'BackupCorrupt',
    `object ${object.key} of backup ${manifest.id} cannot be read (${errorMessage(err)}); nothing was written to the target`,
  );
}

/** What applying the database's properties needs of a plan (a restore's, or a migration's). */
export type PropertiesTarget = { request: Pick<RestorePlan['request'], 'target' | 'noOwner' | 'noAcl'> };

export async function connectMaintenance(
  plan: PropertiesTarget,
  password: string | undefined,
): Promise<Client> {
  try {
    return await connectPg(plan.request.target, password, 'postgres');
  } catch (err) {
    if ((err as PgferryError).code !== 'DatabaseNotFound') throw err;
    return connectPg(plan.request.target, password, 'template1');
  }
}

/** The target database, with the source database's encoding and locale (as recorded). */
async function createDatabase(admin: Client, name: string, manifest: BackupManifest): Promise<void> {
  const { major } = await serverInfo(admin);
  await admin.query(createDatabaseSql(name, major, manifest.requires?.encoding, manifest.requires?.locale));
}

/**
 * Drops the database the failed restore created; a few attempts a second apart, since the failure
 * may be the target server restarting. `false` when it could not.
 */
async function dropCreatedDatabase(plan: RestorePlan, password: string | undefined): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await dropDatabase(plan, password);
      return true;
    } catch {
      if (attempt === 5) return false;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function dropDatabase(plan: RestorePlan, password: string | undefined): Promise<void> {
  const admin = await connectMaintenance(plan, password);
  try {
    const name = plan.request.target.database;
    await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Settings whose value is a list: each element is quoted on its own (as pg_dump does). */
const LIST_SETTINGS = new Set([
  'search_path',
  'temp_tablespaces',
  'session_preload_libraries',
  'local_preload_libraries',
  'shared_preload_libraries',
]);

/**
 * The source database's comment, settings, owner and grants, applied to the restored database
 * under its new name (pg_restore applies them only with --create, to the original name). The
 * comment replaces the database's incomplete mark (which is removed when the source had none, or
 * when the manifest predates recorded properties): applied last, this completes the database.
 */
export async function applyDatabaseProperties(
  plan: PropertiesTarget,
  password: string | undefined,
  properties: DatabaseProperties | undefined,
): Promise<void> {
  const { request } = plan;
  const db = quoteIdent(request.target.database);
  const admin = await connectMaintenance(plan, password);
  try {
    await completeDatabase(admin, request.target.database, properties?.comment ?? null);
    if (!properties) return;
    const roles = new Set(
      (await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles')).rows.map((r) => r.rolname),
    );
    for (const { role, setting } of properties.settings) {
      if (role !== null && !roles.has(role)) continue;
      const [name, ...rest] = setting.split('=');
      const value = rest.join('=');
      const literal = LIST_SETTINGS.has(name)
        ? value
            .split(/,\s*/)
            .map((v) => quoteLiteral(v.replace(/^"(.*)"$/, '$1')))
            .join(', ')
        : quoteLiteral(value);
      const scope = role === null ? '' : `ROLE ${quoteIdent(role)} IN `;
      await admin.query(`ALTER ${scope}DATABASE ${db} SET ${quoteIdent(name)} TO ${literal}`);
    }
    if (!request.noOwner && roles.has(properties.owner)) {
      await admin.query(`ALTER DATABASE ${db} OWNER TO ${quoteIdent(properties.owner)}`);
    }
    if (!request.noAcl && properties.grants !== null) {
      await admin.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
      for (const grant of properties.grants) {
        if (grant.grantee !== 'PUBLIC' && !roles.has(grant.grantee)) continue;
        const grantee = grant.grantee === 'PUBLIC' ? 'PUBLIC' : quoteIdent(grant.grantee);
        await admin.query(
          `GRANT ${grant.privilege} ON DATABASE ${db} TO ${grantee}${grant.grantable ? ' WITH GRANT OPTION' : ''}`,
        );
      }
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** libpq conninfo value quoting: a database name is never parsed as a connection string. */
export function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

async function applyGlobals(
  admin: Client,
  globalsFile: string | undefined,
  pgRestore: PgToolBinary,
  password: string | undefined,
  plan: RestorePlan,
  deps: RestoreDeps,
): Promise<NonNullable<Checks['globals']>> {
  if (!globalsFile)
    throw new PgferryError('BackupCorrupt', `backup ${plan.manifest.id} has no globals to restore`);
  return createMissingRoles(admin, await readFile(globalsFile, 'utf8'), {
    psql: await siblingTool(pgRestore, 'psql'),
    target: plan.request.target,
    password,
    deps,
    failure: { code: 'RestoreFailed', message: 'creating roles failed' },
  });
}

/**
 * Creates on the target server the roles of `globalsSql` (`pg_dumpall --globals-only`) that it
 * lacks, with psql; existing roles are reported and never altered (see `planGlobals`).
 */
export async function createMissingRoles(
  admin: Client,
  globalsSql: string,
  opts: {
    psql: PgToolBinary;
    target: Connection;
    password: string | undefined;
    deps: Pick<RestoreDeps, 'env' | 'onChild'>;
    /** The failure's code and its message's start. */
    failure: { code: PgferryErrorCode; message: string };
  },
): Promise<NonNullable<Checks['globals']>> {
  const { psql, target, password, deps, failure } = opts;
  const existing = new Set(
    (await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles')).rows.map((r) => r.rolname),
  );
  const globals = planGlobals(globalsSql, existing);
  if (globals.created.length === 0) return { created: [], skippedExisting: globals.skippedExisting };
  const child = spawn(
    psql.path,
    ['--no-psqlrc', '--quiet', '-v', 'ON_ERROR_STOP=1', '--no-password', '-f', '-'],
    {
      env: { ...toolEnv(deps.env), ...libpqEnv({ ...target, database: 'postgres' }, password) },
      stdio: ['pipe', 'ignore', 'pipe'],
    },
  );
  deps.onChild?.(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin.end(globals.sql);
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new PgferryError(failure.code, `${failure.message}: ${firstError(stderr)}`);
  return {
    created: globals.created,
    skippedExisting: globals.skippedExisting,
    ...(globals.createdWithoutPassword.length
      ? { createdWithoutPassword: globals.createdWithoutPassword }
      : {}),
  };
}

/**
 * The TOC entries pg_restore restores after everything else: privileges (grants, default
 * privileges), then what needs them (materialized views' data, event triggers and their
 * comments). Run in parallel, pg_restore hands them to its workers ordered only by their own
 * object, so a grant made by a role other than the owner (`SET SESSION AUTHORIZATION grantor;
 * GRANT …`) can run before the schema grant it needs and fail with "permission denied for schema"
 * — found by the fidelity test, intermittently. They are restored apart, in one job, in order.
 */
const RESTORED_LAST =
  /^\d+; \d+ \d+ (ACL|ACL LANGUAGE|DEFAULT ACL|MATERIALIZED VIEW DATA|EVENT TRIGGER|(COMMENT|SECURITY LABEL) - EVENT TRIGGER) /;

/** pg_restore into the target, with the request's options. */
async function pgRestoreInto(
  pgRestore: PgToolBinary,
  dumpFile: string,
  plan: RestorePlan,
  password: string | undefined,
  deps: RestoreDeps,
): Promise<void> {
  const { request } = plan;
  const args = [
    `--dbname=dbname=${conninfoValue(request.target.database)}`,
    '--exit-on-error',
    '--no-password',
  ];
  if (request.mode === 'clean') args.push('--clean', '--if-exists');
  if (request.noOwner) args.push('--no-owner');
  if (request.noAcl) args.push('--no-privileges');
  if (request.role) args.push(`--role=${request.role}`);
  for (const schema of request.schemas) args.push(`--schema=${schema}`);
  for (const table of request.tables) args.push(`--table=${table}`);
  // In clean mode a session that connected after the check cannot make a DROP wait forever.
  const lockTimeout = request.mode === 'clean' ? ` -c lock_timeout=${CLEAN_LOCK_TIMEOUT_SECONDS}s` : '';
  const env = {
    ...toolEnv(deps.env),
    ...libpqEnv(request.target, password),
    PGOPTIONS: loadSessionOptions(plan.toastCompression) + lockTimeout,
  };
  try {
    await pgRestoreParallel(pgRestore, { args, jobs: plan.jobs, dumpFile, env, onChild: deps.onChild });
  } catch (err) {
    if (!lockTimeout || !/lock timeout/i.test(errorMessage(err))) throw err;
    const sessions = await sessionsNow(plan, password);
    throw new PgferryError(
      'RestoreFailed',
      `${errorMessage(err)}${sessions.length ? ` (sessions connected to the target now: ${describeSessions(sessions)})` : ''}`,
      { cause: err },
    );
  }
}

/** The other sessions on the target database, for an error message (none when that fails). */
async function sessionsNow(plan: RestorePlan, password: string | undefined) {
  try {
    const admin = await connectMaintenance(plan, password);
    try {
      return await otherSessions(admin, plan.request.target.database);
    } finally {
      await admin.end().catch(() => undefined);
    }
  } catch {
    return [];
  }
}

/**
 * `pg_restore --jobs` of `dumpFile` with `args`. With several jobs: everything but
 * {@link RESTORED_LAST} in parallel, then those in one job, each run given its part of the
 * archive's list. With `--clean`, the list is in an order pg_restore can drop (see
 * `cleanableOrder`).
 */
export async function pgRestoreParallel(
  pgRestore: PgToolBinary,
  opts: {
    args: string[];
    jobs: number;
    dumpFile: string;
    env: NodeJS.ProcessEnv;
    onChild?: (child: ChildProcess) => void;
  },
): Promise<void> {
  const { args, jobs, dumpFile, env, onChild } = opts;
  const run = (more: string[]) => runPgRestore(pgRestore, [...more, dumpFile], env, onChild);
  const clean = args.includes('--clean');
  const inOneRun = jobs === 1 || args.includes('--no-privileges');
  if (inOneRun && !clean) {
    await run([...args, `--jobs=${jobs}`]);
    return;
  }
  let entries = (await run(['--list'])).stdout.split('\n').filter((line) => /^\d+;/.test(line));
  if (clean) {
    const line = new Map(entries.map((l) => [Number(l.slice(0, l.indexOf(';'))), l]));
    const toc = await readArchiveToc(createReadStream(dumpFile));
    entries = cleanableOrder([...line.keys()], toc).map((id) => line.get(id) as string);
  }
  const { first, last } = inOneRun ? { first: entries, last: [] } : splitRestoreList(entries);
  const listFile = (part: string) => `${dumpFile}.${part}.list`;
  try {
    await writeFile(listFile('first'), `${first.join('\n')}\n`);
    await writeFile(listFile('last'), `${last.join('\n')}\n`);
    await run([...args, `--jobs=${jobs}`, `--use-list=${listFile('first')}`]);
    if (last.length > 0) await run([...args, `--use-list=${listFile('last')}`]);
  } finally {
    await Promise.all(['first', 'last'].map((part) => rm(listFile(part), { force: true })));
  }
}

/**
 * The two passes of a parallel restore: `first` every entry of pg_restore's `--list` but
 * {@link RESTORED_LAST}'s, `last` those; each in the archive's order.
 */
export function splitRestoreList(entries: string[]): { first: string[]; last: string[] } {
  const first: string[] = [];
  const last: string[] = [];
  for (const line of entries) (RESTORED_LAST.test(line) ? last : first).push(line);
  return { first, last };
}

async function runPgRestore(
  pgRestore: PgToolBinary,
  args: string[],
  env: NodeJS.ProcessEnv,
  onChild?: (child: ChildProcess) => void,
): Promise<{ stdout: string }> {
  const child = spawn(pgRestore.path, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  onChild?.(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-20_000);
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) {
    throw new PgferryError('RestoreFailed', `pg_restore failed (${code ?? signal}): ${firstError(stderr)}`);
  }
  return { stdout };
}

/** The first error pg_restore/psql reported, with the command it was running. */
export function firstError(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim());
  const index = lines.findIndex((l) => /error|fatal/i.test(l));
  if (index < 0) return lines.slice(-2).join(' | ') || 'no error output';
  return lines.slice(index, index + 2).join(' | ');
}

async function compareRowCounts(target: Client, plan: RestorePlan): Promise<Checks['rowCounts']> {
  const { schemas, tables } = plan.request;
  const selected = plan.manifest.tables.filter(
    (t) =>
      (schemas.length === 0 || schemas.includes(t.schema)) &&
      (tables.length === 0 || tables.includes(t.name)),
  );
  const out: Checks['rowCounts'] = [];
  for (const t of selected) {
    const { rows } = await target.query<{ n: string }>(
      `SELECT count(*) AS n FROM ONLY ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`,
    );
    out.push({ ...t, restoredRows: Number(rows[0].n) });
  }
  return out;
}
