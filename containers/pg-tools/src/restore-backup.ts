/**
 * Restoring a stored backup into a database, as a restore does and as a verification drill does
 * into its throwaway server: downloads the backup's objects while verifying their SHA-256 against
 * the manifest — nothing of it reaches the target before they match; a new database is created
 * meanwhile, empty and marked incomplete — then (or cleans the target, once verified)
 * optionally creates the roles, runs pg_restore with parallel jobs and fast session settings,
 * ANALYZEs and compares every table's row count with the manifest.
 */
import type { ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { decompressFile } from '../../../core/compression';
import type {
  BackupManifest,
  Connection,
  RestoreReport,
  StoredObject,
  ToastCompression,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { Meter } from '../../../core/metering';
import {
  analyzeInParallel,
  applyDatabaseProperties,
  createDatabase,
  createMissingRoles,
  createMissingSchemas,
  dropDatabase,
} from '../../../core/postgres/admin';
import { droppedByClean, readArchiveToc, schemasNotCreated } from '../../../core/postgres/archive-toc';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../core/postgres/binaries';
import { connectPg, libpqEnv, withClient, withMaintenance } from '../../../core/postgres/connect';
import { dropBlockers, refuseBlockedCleanRestore } from '../../../core/postgres/drop-dependents';
import { isScoped } from '../../../core/postgres/dump-scope';
import { type IncompleteRun, markIncomplete } from '../../../core/postgres/incomplete-database';
import { countRows } from '../../../core/postgres/inspect';
import { conninfoValue, quoteIdent } from '../../../core/postgres/quote';
import { describeArchive, readDatabaseLocale } from '../../../core/postgres/requirements';
import { loadSessionOptions } from '../../../core/postgres/restore-session';
import {
  describeSessions,
  otherSessions,
  refuseConnectedSessions,
  terminateSessions,
} from '../../../core/postgres/target-sessions';
import { pgRestoreParallel, pgRestoreSections } from '../../../core/postgres/tools';
import type { BackupStore } from '../../../core/store';
import { backupObjectKey, catalogNameOf } from '../../../core/store-keys';
import { PROGRESS_INTERVAL_MS, type TaskProgress, throttled } from '../../../core/task-progress';
import { createWorkFolder, workRoot } from '../../../core/work-folders';
import { interruption, type PhasedDeps, type RestoreProgress, stopIfInterrupted } from './run';
import { toolEnv } from './tool-env';
import { treeReads } from './watchdog';

type Checks = RestoreReport['checks'];

export type RestoreDeps = PhasedDeps;

/**
 * How long a clean restore's sessions wait for a lock (`lock_timeout`), and for the sessions it
 * ends to go: a session that connects after the check and holds a lock makes pg_restore fail
 * within this time instead of waiting forever.
 */
export const CLEAN_LOCK_TIMEOUT_SECONDS = 30;

/** Where a backup is restored, and how: what a restore's plan (or a drill) asks of the restore. */
export interface RestoreTarget {
  /** The restore's (or the drill's) id, for the database's incomplete mark. */
  runId: string;
  target: Connection;
  password: string | undefined;
  mode: 'create' | 'clean';
  withGlobals: boolean;
  noOwner: boolean;
  noAcl: boolean;
  /** pg_restore's `--role`. */
  role?: string;
  schemas: readonly string[];
  tables: readonly string[];
  /** Clean mode: end the target's other sessions instead of refusing. */
  terminateConnections: boolean;
  jobs: number;
  toastCompression: ToastCompression;
  /** The preflight's warnings, added to a failure's message. */
  warnings?: readonly string[];
}

/**
 * Downloads and verifies the backup, creates (or cleans) the target database, restores it and
 * checks it. Throws on any failure; a database it created is dropped again.
 */
export async function restoreBackup(
  manifest: BackupManifest,
  into: RestoreTarget,
  progress: RestoreProgress,
  deps: RestoreDeps,
): Promise<void> {
  const { password } = into;
  const { checks } = progress;
  const { signal } = deps;
  stopIfInterrupted(signal);
  const workDir = await createWorkFolder('restore', workRoot(deps.env));
  let createdDatabase = false;
  // Whether anything of the backup has reached the target (a new database is created, empty and
  // marked incomplete, while the backup is still being verified).
  let writing = false;
  try {
    // A new database is created while the backup downloads and is verified: its CREATE DATABASE
    // and the download's checksums and decompression overlap. Nothing of the backup reaches it
    // before every checksum matched; when one does not, it is dropped, still empty (the
    // database's incomplete mark names the run, should the run die before it can drop it).
    const creating =
      into.mode === 'create'
        ? progress.timed('createDatabase', () =>
            withMaintenance(into.target, password, async (admin) => {
              await createDatabase(admin, into.target.database, manifest.requires ?? {});
              createdDatabase = true;
              await markIncomplete(admin, into.target.database, incompleteRun(into.runId));
              checks.createdWith = await readDatabaseLocale(admin, into.target.database);
            }),
          )
        : undefined;
    const [downloaded, created, chosen] = await Promise.allSettled([
      progress.timed('download', () =>
        downloadVerified(deps.store, manifest, workDir, checks, signal, deps.onProgress),
      ),
      creating,
      choosePgTool(
        'pg_restore',
        manifest.tool.pgDumpMajor,
        manifest.tool.pgDumpVersion,
        deps.env,
        `the backup's archive was written by ${describeArchive(manifest)}`,
      ).then(async (tool) => ({ tool, psql: await siblingTool(tool, 'psql').catch(() => undefined) })),
    ]);
    // The checksum's verdict first: a corrupt backup is what the user must hear of.
    if (downloaded.status === 'rejected') throw downloaded.reason;
    if (created.status === 'rejected') throw created.reason;
    if (chosen.status === 'rejected') throw chosen.reason;
    const files = downloaded.value;
    const { tool: pgRestore, psql } = chosen.value;
    stopIfInterrupted(signal);

    if (into.mode === 'clean') {
      await progress.timed('checkTarget', () => prepareCleanTarget(into, files.dump, checks));
    }
    stopIfInterrupted(signal);
    writing = true;
    if (into.withGlobals) {
      checks.globals = await progress.timed('globals', () =>
        withMaintenance(into.target, password, (admin) =>
          applyGlobals(admin, files.globals, pgRestore, psql, into, manifest, deps),
        ),
      );
    }

    stopIfInterrupted(signal);
    if (isScoped(manifest.scope)) {
      // A `--table` backup holds its tables but not their schemas.
      const schemas = schemasNotCreated(await readArchiveToc(createReadStream(files.dump))).filter(
        (schema) => into.schemas.length === 0 || into.schemas.includes(schema),
      );
      if (schemas.length) {
        await withClient(into.target, password, (target) => createMissingSchemas(target, schemas));
      }
    }
    await progress.timed('pgRestore', () =>
      pgRestoreInto(pgRestore, files.dump, into, deps, files.tableData, psql),
    );
    stopIfInterrupted(signal);
    // The tables spread over the job's sessions, as pg_restore's jobs were; the rows counted at
    // once in a session of their own (reads both, neither waits for the other's locks).
    const [analyzed, counted] = await Promise.allSettled([
      progress.timed('analyze', () => analyzeInParallel(() => connectPg(into.target, password), into.jobs)),
      withClient(into.target, password, (target) =>
        progress.timed('rowCounts', () => countRows(target, selectedTables(manifest, into))),
      ),
    ]);
    if (analyzed.status === 'rejected') throw analyzed.reason;
    if (counted.status === 'rejected') throw counted.reason;
    checks.analyzed = true;
    checks.rowCounts = counted.value;
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
      withMaintenance(into.target, password, (admin) =>
        applyDatabaseProperties(admin, into.target.database, manifest.databaseProperties, into),
      ),
    );
  } catch (caught) {
    // Interrupted, the tools' failures (they were stopped) say less than the interruption.
    const err = signal?.aborted ? interruption(signal) : caught;
    let message = errorMessage(err);
    const name = into.target.database;
    if (createdDatabase && !writing) {
      const dropped = await dropCreatedDatabase(into);
      message += dropped
        ? ` (the database ${name}, created empty while the backup was verified, was dropped)`
        : ` (the database ${name}, created empty while the backup was verified, is left in place: drop it)`;
    } else if (createdDatabase) {
      const dropped = await dropCreatedDatabase(into);
      message += dropped
        ? ` (the partially restored database ${name} was dropped: run the restore again)`
        : ` (the partially restored database ${name} is left in place: drop it, then run the restore again)`;
    } else if (into.mode === 'clean' && progress.timings.pgRestore !== undefined) {
      message += ` (the database ${name} is left partly replaced: pg_restore had begun dropping and recreating its objects)`;
    } else if (into.mode === 'clean' && signal?.aborted) {
      message += ` (nothing in the database ${name} was changed)`;
    }
    if (into.warnings?.length) message += ` (preflight warned: ${into.warnings.join('; ')})`;
    throw new PgferryError(err instanceof PgferryError ? err.code : 'RestoreFailed', message, { cause: err });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Who is creating the database, for its incomplete mark. */
function incompleteRun(runId: string): IncompleteRun {
  return {
    kind: 'restore',
    id: runId,
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
async function prepareCleanTarget(request: RestoreTarget, dumpFile: string, checks: Checks): Promise<void> {
  const dropped = droppedByClean(await readArchiveToc(createReadStream(dumpFile)), request);
  await withClient(request.target, request.password, async (target) => {
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
  });
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
  onProgress?: (progress: TaskProgress) => void,
): Promise<{ dump: string; globals?: string; tableData: string[] }> {
  const files: { dump?: string; globals?: string } = {};
  const tableData: string[] = [];
  const report = throttled(onProgress);
  const totalBytes = manifest.objects.reduce((sum, o) => sum + o.bytes, 0);
  let before = 0;
  const downloaded = (bytes: number, force = false) =>
    report({ step: 'download', doneBytes: before + bytes, totalBytes }, force);
  downloaded(0, true);
  for (const object of manifest.objects) {
    const name =
      object.kind === 'table-data'
        ? `table-data-${tableData.length + 1}.pgdump`
        : object.kind === 'dump'
          ? 'dump.pgdump'
          : 'globals.sql';
    const file = path.join(dir, name);
    await downloadOne(store, manifest, object, file, signal, downloaded);
    before += object.bytes;
    checks.checksums.push({ key: object.key, sha256: object.sha256, verified: true });
    if (object.kind === 'table-data') tableData.push(file);
    else files[object.kind] = file;
  }
  downloaded(0, true);
  if (!files.dump) throw new PgferryError('BackupCorrupt', `backup ${manifest.id} has no dump object`);
  return { dump: files.dump, globals: files.globals, tableData };
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
  onBytes?: (bytes: number) => void,
) {
  const key = backupObjectKey(catalogNameOf(manifest), manifest.id, object.key);
  const localFile = store.localFile?.(key);
  const compressed = localFile ?? `${file}.download`;
  const meter = new Meter({ sha256: true, onBytes });
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
          'nothing of the backup was written to the target',
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
      `no space left to download ${object.key}; nothing of the backup was written to the target`,
    );
  }
  if (err instanceof PgferryError) return err;
  // The checksum matched, so bytes that do not decompress were stored that way: corruption.
  return new PgferryError(
    'BackupCorrupt',
    `object ${object.key} of backup ${manifest.id} cannot be read (${errorMessage(err)}); nothing of the backup was written to the target`,
  );
}

/**
 * Drops the database the failed restore created; a few attempts a second apart, since the failure
 * may be the target server restarting. `false` when it could not.
 */
async function dropCreatedDatabase(into: RestoreTarget): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await withMaintenance(into.target, into.password, (admin) => dropDatabase(admin, into.target.database));
      return true;
    } catch {
      if (attempt === 5) return false;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function applyGlobals(
  admin: Client,
  globalsFile: string | undefined,
  pgRestore: PgToolBinary,
  /** psql beside pg_restore, as looked up during the download; looked up again (to say why) if not found. */
  psql: PgToolBinary | undefined,
  into: RestoreTarget,
  manifest: BackupManifest,
  deps: RestoreDeps,
): Promise<NonNullable<Checks['globals']>> {
  if (!globalsFile)
    throw new PgferryError('BackupCorrupt', `backup ${manifest.id} has no globals to restore`);
  return createMissingRoles(admin, await readFile(globalsFile, 'utf8'), {
    psql: psql ?? (await siblingTool(pgRestore, 'psql')),
    target: into.target,
    password: into.password,
    env: toolEnv(deps.env),
    onChild: deps.onChild,
    failure: { code: 'RestoreFailed', message: 'creating roles failed' },
  });
}

/** pg_restore into the target, with the request's options. */
async function pgRestoreInto(
  pgRestore: PgToolBinary,
  dumpFile: string,
  request: RestoreTarget,
  deps: RestoreDeps,
  /** A parallel backup's data-only archives (see `pgRestoreSections`). */
  tableData: string[] = [],
  /** psql beside pg_restore (looked up while the backup downloads), for a clean restore's drops. */
  psql?: PgToolBinary,
): Promise<void> {
  const { password } = request;
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
    PGOPTIONS: loadSessionOptions(request.toastCompression) + lockTimeout,
  };
  // A restore of some schemas or tables skips the rest of the archive: how much it reads is unknown.
  const selective = request.schemas.length > 0 || request.tables.length > 0 || tableData.length > 0;
  const reads = watchArchiveReads(selective ? undefined : (await stat(dumpFile)).size, deps.onProgress);
  const onChild = (child: ChildProcess) => {
    deps.onChild?.(child);
    reads.watch(child);
  };
  try {
    // The largest tables' data in `jobs` COPY sessions each, read from the archive by this
    // process (see pgRestoreParallel).
    const split = { connect: () => connectPg(request.target, password) };
    if (tableData.length) {
      await pgRestoreSections(pgRestore, {
        args,
        jobs: request.jobs,
        dumpFile,
        tableData,
        env,
        onChild,
        split,
        psql,
      });
    } else {
      await pgRestoreParallel(pgRestore, { args, jobs: request.jobs, dumpFile, env, onChild, split });
    }
  } catch (err) {
    if (!lockTimeout || !/lock timeout/i.test(errorMessage(err))) throw err;
    const sessions = await sessionsNow(request.target, password);
    throw new PgferryError(
      'RestoreFailed',
      `${errorMessage(err)}${sessions.length ? ` (sessions connected to the target now: ${describeSessions(sessions)})` : ''}`,
      { cause: err },
    );
  } finally {
    reads.stop();
  }
}

/**
 * Reports how much of the archive (`archiveBytes`, when the whole of it is restored) pg_restore
 * has read: the bytes its processes read, which are the archive's (and the little the server
 * answers). Its data is read as the tables are loaded; once all of it is read, what is left is
 * building indexes and constraints. Without `/proc` (not Linux) nothing is reported, and the
 * phase's name alone says what runs.
 */
function watchArchiveReads(
  archiveBytes: number | undefined,
  onProgress: ((progress: TaskProgress) => void) | undefined,
): { watch: (child: ChildProcess) => void; stop: () => void } {
  if (!onProgress || !existsSync('/proc/self/io')) return { watch: () => undefined, stop: () => undefined };
  const roots: number[] = [];
  let stopped = false;
  // The most each pg_restore's tree was seen to have read. A reaped process's reads count in its
  // parent's (as its CPU time does), so the tree's sum only grows while the root lives; once the
  // root has exited it can be read no more.
  const readBy = new Map<number, number>();
  let reported = -1;
  let looking = false;
  const look = async () => {
    if (looking) return;
    looking = true;
    try {
      for (const root of roots) {
        const tree = [...(await treeReads(root)).values()].reduce((sum, b) => sum + b, 0);
        readBy.set(root, Math.max(tree, readBy.get(root) ?? 0));
      }
      const read = [...readBy.values()].reduce((sum, b) => sum + b, 0);
      // Once pg_restore has ended, its step is over: a late look must not report it again.
      if (stopped || read === reported) return;
      reported = read;
      onProgress(
        archiveBytes === undefined
          ? { step: 'restore', doneBytes: read }
          : read < archiveBytes
            ? { step: 'restore', doneBytes: read, totalBytes: archiveBytes }
            : { step: 'postData', doneBytes: archiveBytes, totalBytes: archiveBytes },
      );
    } finally {
      looking = false;
    }
  };
  const timer = setInterval(() => void look(), PROGRESS_INTERVAL_MS);
  timer.unref();
  onProgress({
    step: 'restore',
    doneBytes: 0,
    ...(archiveBytes === undefined ? {} : { totalBytes: archiveBytes }),
  });
  return {
    watch: (child) => {
      if (child.pid !== undefined) roots.push(child.pid);
    },
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}

/** The other sessions on the target database, for an error message (none when that fails). */
async function sessionsNow(target: Connection, password: string | undefined) {
  try {
    return await withMaintenance(target, password, (admin) => otherSessions(admin, target.database));
  } catch {
    return [];
  }
}

/** The backup's tables that the restore selected (`--schema`, `--table`), with their rows at the backup. */
function selectedTables(manifest: BackupManifest, { schemas, tables }: RestoreTarget) {
  return manifest.tables.filter(
    (t) =>
      (schemas.length === 0 || schemas.includes(t.schema)) &&
      (tables.length === 0 || tables.includes(t.name)),
  );
}
