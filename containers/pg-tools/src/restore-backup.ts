/**
 * Restoring a stored backup into a database, as a restore does and as a verification drill does
 * into its throwaway server: downloads the backup's objects while verifying their SHA-256 against
 * the manifest — nothing of it reaches the target before they match; a new database is created
 * meanwhile, empty and marked incomplete — then (or cleans the target, once verified)
 * optionally creates the roles, runs pg_restore with parallel jobs and fast session settings,
 * ANALYZEs and compares every table's row count with the manifest. In create mode autovacuum is
 * held off the tables from the pre-data until then (core/postgres/autovacuum-hold.ts). A drill
 * creates the roles first (`restoreGlobalsFirst`), and its load streams as a create restore's.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { decompressFile } from '../../../core/compression';
import {
  type BackupManifest,
  type Connection,
  originOf,
  type RestoreReport,
  type StoredObject,
  type ToastCompression,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { fileChunks } from '../../../core/file-chunks';
import { Meter } from '../../../core/metering';
import {
  analyzeInParallel,
  applyDatabaseProperties,
  createMarkedDatabase,
  createMissingRoles,
  createMissingSchemas,
  dropDatabase,
} from '../../../core/postgres/admin';
import type { ArchiveTocEntry } from '../../../core/postgres/archive';
import {
  droppedByClean,
  readArchiveToc,
  schemasNotCreated,
  selectedSchemaEntries,
  unselectedName,
} from '../../../core/postgres/archive-toc';
import { type HeldTable, holdAutovacuum, releaseAutovacuum } from '../../../core/postgres/autovacuum-hold';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../core/postgres/binaries';
import { connectPg, libpqEnv, withClient, withMaintenance } from '../../../core/postgres/connect';
import { dropBlockers, refuseBlockedCleanRestore } from '../../../core/postgres/drop-dependents';
import { isScoped } from '../../../core/postgres/dump-scope';
import { type IncompleteRun, restoringName } from '../../../core/postgres/incomplete-database';
import { countRows } from '../../../core/postgres/inspect';
import { dropOwnPublications } from '../../../core/postgres/logical-replication';
import { conninfoValue, quoteIdent } from '../../../core/postgres/quote';
import { describeArchive, readDatabaseLocale } from '../../../core/postgres/requirements';
import { pgRestoreRuns, selectsRelation } from '../../../core/postgres/restore-selection';
import { loadSessionOptions } from '../../../core/postgres/restore-session';
import { selectionArguments } from '../../../core/postgres/server-encodings';
import {
  describeSessions,
  otherSessions,
  refuseConnectedSessions,
  terminateSessions,
} from '../../../core/postgres/target-sessions';
import {
  type PgRestoreSelection,
  pgRestoreArchive,
  pgRestoreParallel,
  postDataJobs,
  sequenceSetList,
  sessionSettings,
  wholeRestoreJobs,
} from '../../../core/postgres/tools';
import type { BackupStore } from '../../../core/store';
import { backupObjectKey, catalogNameOf } from '../../../core/store-keys';
import { restoreStreams } from '../../../core/strategy';
import { PROGRESS_INTERVAL_MS, type TaskProgress, throttled } from '../../../core/task-progress';
import { checkRestoreDisk, restoreDiskUse } from '../../../core/task-size';
import { createWorkFolder, workRoot } from '../../../core/work-folders';
import {
  ArchiveUnreadable,
  discard,
  NotStreamable,
  type StreamedArchive,
  streamArchives,
  tableKey,
} from './restore-stream';
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
  /** The smallest table data loaded in several sessions (`SPLIT_MIN_BYTES` by default; tests set less). */
  splitMinBytes?: number;
  /** A drill's: the target server's data is on this machine's disk, in the disk check too. */
  withLocalServer?: boolean;
}

/**
 * Downloads and verifies the backup, creates (or cleans) the target database, restores it and
 * checks it. Throws on any failure; a database it created is dropped again.
 *
 * In create mode everything is loaded into a database of another name ({@link restoringName}),
 * renamed to the target's only once every checksum matched and the restore's checks passed: so
 * the archive can stream into it as it downloads (restore-stream.ts), and the target's name never
 * holds what an unverified or incomplete restore wrote.
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
  const name = into.target.database;
  // Where the restore loads: in create mode a database renamed to the target's name at the end.
  const loading: RestoreTarget =
    into.mode === 'create' ? { ...into, target: { ...into.target, database: restoringName(name) } } : into;
  const loadingName = loading.target.database;
  // The database this run created, under the name it has now.
  let created: string | undefined;
  // Whether anything of the backup has reached the target (in clean mode: once verified).
  let writing = false;
  // Create mode: autovacuum is held off the new database's tables from their creation (the
  // pre-data) until its checks are done (see core/postgres/autovacuum-hold.ts). Not in clean
  // mode: a clean restore that fails leaves the database partly replaced, and must not also
  // leave its tables without autovacuum.
  let held: HeldTable[] | undefined;
  const hold =
    into.mode === 'create'
      ? async () => {
          const t0 = Date.now();
          held = await withClient(loading.target, password, holdAutovacuum);
          progress.timings.holdAutovacuum = (Date.now() - t0) / 1000;
        }
      : undefined;
  // What the streamed load gave (restore-stream.ts); undefined when the archives were restored
  // from files.
  let streamed: StreamedArchive | undefined;
  // The downloaded archive's TOC, read once for the steps that need it (a restore from files).
  let tocRead: Promise<ArchiveTocEntry[]> | undefined;
  const fileToc = (dump: string) => {
    tocRead ??= readArchiveToc(fileChunks(dump));
    return tocRead;
  };
  // Why the archives were not streamed after all (large objects, names not decoded exactly: SQL_ASCII).
  let notStreamed: string | undefined;
  try {
    // A new database is created while the backup downloads and is verified: its CREATE DATABASE
    // and the download's checksums and decompression overlap. Marked incomplete (naming the run,
    // should the run die before it can drop it).
    const creating =
      into.mode === 'create'
        ? progress.timed('createDatabase', () =>
            withMaintenance(into.target, password, async (admin) => {
              await createMarkedDatabase(
                admin,
                loadingName,
                manifest.requires ?? {},
                incompleteRun(into.runId),
              );
              created = loadingName;
              checks.createdWith = await readDatabaseLocale(admin, loadingName);
            }),
          )
        : undefined;
    creating?.catch(() => undefined); // awaited below (and by the streamed load's sessions)
    const choosing = chooseRestoreTools(manifest, deps.env, into.mode);
    choosing.catch(() => undefined); // awaited below
    const dump = manifest.objects.find((o) => o.kind === 'dump');
    // An archive the manifest says holds large objects is restored from files at once: a stream
    // would read its TOC only to find them (the preflight sized the disk for files already).
    const withLargeObjects = manifest.objects.some((o) => o.kind !== 'globals' && o.largeObjects);
    if (restoreStreams(into) && dump && !withLargeObjects) {
      // The dump object and a parallel backup's data-only objects, streamed at once.
      const objects = [dump, ...manifest.objects.filter((o) => o.kind === 'table-data')];
      const totalBytes = objects.reduce((sum, o) => sum + o.bytes, 0);
      // The tables load as the objects arrive: their bytes are the load's progress.
      const report = downloadReport(totalBytes, deps.onProgress, 'restore');
      const loaded = progress.timed('load', () =>
        streamArchives({
          store: deps.store,
          manifest,
          objects,
          workDir,
          jobs: loading.jobs,
          spreadBytes: loading.splitMinBytes,
          // The sessions connect once the database exists.
          connect: async () => {
            await creating;
            return connectPg(loading.target, password);
          },
          settings: copySettings(loading),
          tablesReady: async (toc, definitions) => {
            await creating;
            const { tool } = await choosing;
            stopIfInterrupted(signal);
            writing = true;
            if (isScoped(manifest.scope)) await createSchemas(toc, loading);
            await progress.timed('preData', () =>
              pgRestoreParallel(tool, {
                args: [...restoreArgs(loading), '--section=pre-data'],
                jobs: loading.jobs,
                dumpFile: definitions,
                env: restoreEnv(loading, deps),
                onChild: deps.onChild,
                signal,
              }),
            );
            await hold?.();
          },
          verify: (object, sha256, bytes) => verifyChecksum(object, manifest, sha256, bytes),
          signal,
          onBytes: (bytes) => report(bytes),
        }).then(
          (done) => {
            report(totalBytes, true);
            for (const o of objects) checks.checksums.push({ key: o.key, sha256: o.sha256, verified: true });
            return done;
          },
          (err: unknown) => {
            if (err instanceof NotStreamable) {
              notStreamed = err.message;
              return undefined;
            }
            throw err instanceof ArchiveUnreadable
              ? downloadFailure(err.cause, err.object, manifest, true)
              : err;
          },
        ),
      );
      const [load, createdDb, chosen] = await Promise.allSettled([loaded, creating, choosing]);
      // The checksum's verdict first: a corrupt backup is what the user must hear of.
      if (load.status === 'rejected') throw load.reason;
      if (createdDb.status === 'rejected') throw createdDb.reason;
      if (chosen.status === 'rejected') throw chosen.reason;
      streamed = load.value;
      // Not streamed (large objects): the load phase only read the TOC; the file path's phases
      // follow, once their files are known to fit (the disk may be sized for a streamed restore).
      if (!streamed) {
        delete progress.timings.load;
        await checkRestoreDisk(
          {
            id: manifest.id,
            use: {
              ...restoreDiskUse(manifest),
              fromFilesBecause: `its archive is restored from files, not streamed (${notStreamed})`,
            },
            withLocalServer: into.withLocalServer === true,
          },
          { onAws: false },
          deps.env,
        );
      }
      stopIfInterrupted(signal);
      if (streamed) {
        const { tool } = chosen.value;
        const { definitions, toc } = streamed;
        await progress.timed('postData', async () => {
          // The sequences' values (SEQUENCE SET, the data section's other entries) first.
          const sequences = await sequenceSetList(definitions, toc);
          if (sequences) {
            await pgRestoreParallel(tool, {
              args: [...restoreArgs(loading), `--use-list=${sequences}`],
              jobs: 1,
              dumpFile: definitions,
              env: restoreEnv(loading, deps),
              onChild: deps.onChild,
            });
          }
          await pgRestoreParallel(tool, {
            args: [...restoreArgs(loading), '--section=post-data'],
            jobs: postDataJobs(loading.jobs, toc, tableDataBytes(manifest)),
            dumpFile: definitions,
            env: restoreEnv(loading, deps),
            onChild: deps.onChild,
            signal,
          });
        });
      }
    }

    // Restored from files: a clean restore's (verified before anything is changed), one with the
    // roles, one of some schemas or tables, and an archive with large objects.
    const files = streamed
      ? undefined
      : await (async () => {
          const [downloaded, createdDb, chosen] = await Promise.allSettled([
            progress.timed('download', () =>
              downloadVerified(
                deps.store,
                manifest,
                workDir,
                checks,
                signal,
                downloadReport(
                  manifest.objects.reduce((sum, o) => sum + o.bytes, 0),
                  deps.onProgress,
                ),
              ),
            ),
            creating,
            choosing,
          ]);
          // The checksum's verdict first: a corrupt backup is what the user must hear of.
          if (downloaded.status === 'rejected') throw downloaded.reason;
          if (createdDb.status === 'rejected') throw createdDb.reason;
          if (chosen.status === 'rejected') throw chosen.reason;
          return { ...downloaded.value, ...chosen.value };
        })();
    stopIfInterrupted(signal);

    if (files) {
      // What the preflight checks from the stored archive's start when it can (not an lz4 dump
      // without the lz4 tool): each --schema and --table selects something.
      if (loading.schemas.length || loading.tables.length) {
        const backup = { id: manifest.id, store: deps.store.url };
        const unselected = unselectedName(await fileToc(files.dump), loading, backup);
        if (unselected !== undefined) throw new PgferryError('InvalidInput', unselected);
      }
      if (into.mode === 'clean') {
        await progress.timed('checkTarget', async () =>
          prepareCleanTarget(into, await fileToc(files.dump), checks),
        );
      }
      stopIfInterrupted(signal);
      writing = true;
      if (into.withGlobals) {
        checks.globals = await progress.timed('globals', () =>
          withMaintenance(into.target, password, (admin) =>
            applyGlobals(admin, files.globals, files.tool, files.psql, into, manifest, deps),
          ),
        );
      }
      stopIfInterrupted(signal);
      if (isScoped(manifest.scope)) await createSchemas(await fileToc(files.dump), loading);
      if (loading.schemas.length || loading.tables.length) {
        await restoreSelectedSchemas(files.tool, files.dump, await fileToc(files.dump), loading, deps);
      }
      // A whole archive of many small tables: one job (wholeRestoreJobs).
      const whole = !loading.schemas.length && !loading.tables.length && !files.tableData.length;
      const sizes = tableBytes(manifest);
      const jobs =
        whole && sizes
          ? wholeRestoreJobs(loading.jobs, await fileToc(files.dump), sizes, loading.splitMinBytes)
          : loading.jobs;
      await progress.timed('pgRestore', () =>
        pgRestoreInto(files.tool, files.dump, { ...loading, jobs }, manifest, deps, {
          tableData: files.tableData,
          psql: files.psql,
          afterPreData: hold,
          toc: () => fileToc(files.dump),
        }),
      );
    }
    stopIfInterrupted(signal);
    // A migration's archive is a copy in its online snapshot: the migration's own publication and
    // the REPLICA IDENTITY FULL it gave tables are not the source's (see dropOwnPublications).
    // Only those the archive carries: a clean restore must not drop a live migration's publication.
    if (originOf(manifest) === 'migration') {
      const toc = streamed?.toc ?? (files ? await fileToc(files.dump) : []);
      const among = toc.filter((e) => e.desc === 'PUBLICATION' && e.tag).map((e) => e.tag as string);
      await progress.timed('ownPublication', () =>
        withClient(loading.target, password, (target) => dropOwnPublications(target, { among })),
      );
    }
    // The tables spread over the job's sessions, as pg_restore's jobs were. The rows: a streamed
    // load's COPYs' command tags; else counted at once in a session of their own (reads both,
    // neither waits for the other's locks).
    const streamedRows = streamed;
    const [analyzed, counted] = await Promise.allSettled([
      progress.timed('analyze', () =>
        analyzeInParallel(() => connectPg(loading.target, password), into.jobs, streamed?.analyzed),
      ),
      streamedRows
        ? Promise.resolve(loadedRows(selectedTables(manifest, into), streamedRows))
        : withClient(loading.target, password, (target) =>
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
    if (held) {
      const tables = held;
      await progress.timed('releaseAutovacuum', () =>
        withClient(loading.target, password, (target) => releaseAutovacuum(target, tables)).catch(
          (err: unknown) => {
            throw new PgferryError(
              'RestoreFailed',
              `resetting the autovacuum_enabled option the restore set on ${tables.length} tables while it loaded them failed: ${errorMessage(err)}`,
              { cause: err },
            );
          },
        ),
      );
      held = undefined;
    }
    stopIfInterrupted(signal);
    // The rename and the properties on one session of the maintenance database.
    await withMaintenance(into.target, password, async (admin) => {
      if (loadingName !== name) {
        await progress.timed('rename', () => renameIntoPlace(admin, loadingName, name));
        created = name;
      }
      // Last, since it ends the incomplete mark (and the owner it sets may keep us from commenting).
      await progress.timed('databaseProperties', () =>
        applyDatabaseProperties(admin, name, manifest.databaseProperties, into),
      );
    });
  } catch (caught) {
    // The load's last ANALYZE, should the post-data have failed beside it.
    await streamed?.analyzed.abort();
    // Interrupted, the tools' failures (they were stopped) say less than the interruption.
    const err = signal?.aborted ? interruption(signal) : caught;
    let message = errorMessage(err);
    if (created !== undefined && created !== name) {
      const dropped = await dropCreatedDatabase(into, created);
      message += dropped
        ? ` (the database ${created}, which the restore loads before renaming it ${name}, was dropped; nothing was written to ${name})`
        : ` (the database ${created}, which the restore loads before renaming it ${name}, is left in place: drop it, then run the restore again; nothing was written to ${name})`;
    } else if (created !== undefined) {
      const dropped = await dropCreatedDatabase(into, created);
      message += dropped
        ? ` (the restored database ${name} was dropped: run the restore again)`
        : ` (the restored database ${name} is left in place: drop it, then run the restore again)`;
    } else if (into.mode === 'clean' && writing && progress.timings.pgRestore !== undefined) {
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

/** The COPY sessions' settings: pg_restore's sessions' (`PGOPTIONS`), and its `--role`. */
function copySettings(into: RestoreTarget): [string, string][] {
  return [
    ...sessionSettings(loadSessionOptions(into.toastCompression)),
    ...(into.role ? ([['role', into.role]] as [string, string][]) : []),
  ];
}

/** A `--table` backup holds its tables but not their schemas: those the restore selects are created. */
async function createSchemas(toc: readonly ArchiveTocEntry[], into: RestoreTarget): Promise<void> {
  const schemas = schemasNotCreated(toc).filter(
    (schema) => into.schemas.length === 0 || into.schemas.includes(schema),
  );
  if (schemas.length) {
    await withClient(into.target, into.password, (target) => createMissingSchemas(target, schemas));
  }
}

/**
 * A `--schema`/`--table` restore: the schemas it restores into that the target lacks, restored from
 * the archive's own entries (see `selectedSchemaEntries`) — `CREATE SCHEMA`, its owner, comment and
 * grants, as a restore of the whole archive gives them — by pg_restore with a `--use-list` of them
 * (by dump id: a name in any encoding is matched exactly), the request's `--no-owner`,
 * `--no-privileges` and `--role`, and no `--clean`. A schema the target has is left as it is, as
 * `pg_restore -n` leaves it. (Not streamed: a selection is restored from files.)
 */
async function restoreSelectedSchemas(
  tool: PgToolBinary,
  dumpFile: string,
  toc: readonly ArchiveTocEntry[],
  into: RestoreTarget,
  deps: RestoreDeps,
): Promise<void> {
  const selected = selectedSchemaEntries(toc, into);
  if (!selected.length) return;
  const present = await withClient(into.target, into.password, async (target) => {
    const { rows } = await target.query<{ nspname: string }>(
      'SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)',
      [selected.map((s) => s.schema)],
    );
    return new Set(rows.map((r) => r.nspname));
  });
  const ids = selected.filter((s) => !present.has(s.schema)).flatMap((s) => s.ids);
  if (!ids.length) return;
  const list = `${dumpFile}.schemas.list`;
  await writeFile(list, ids.map((id) => `${id};\n`).join(''), { mode: 0o600 });
  try {
    await pgRestoreParallel(tool, {
      // The request's options without --clean (and without its selection, which selects no SCHEMA entry).
      args: [...restoreArgs({ ...into, mode: 'create' }), `--use-list=${list}`],
      jobs: 1,
      dumpFile,
      env: restoreEnv(into, deps),
      onChild: deps.onChild,
    });
  } finally {
    await rm(list, { force: true });
  }
}

/**
 * Renames the restored database into place. No session may be connected to it: the restore's own
 * have ended, but a server process may outlive its client's goodbye by a moment, so a refusal is
 * retried; sessions still connected after two seconds (nobody else should be in a database marked
 * incomplete) are ended. A database created under the target's name meanwhile is not touched.
 */
async function renameIntoPlace(admin: Client, from: string, to: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.query(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '42P04') {
        throw new PgferryError(
          'TargetRefused',
          `a database ${to} was created on the target while the restore ran; the restored database could not take its name`,
          { cause: err },
        );
      }
      if (code !== '55006' || Date.now() > deadline) throw err;
      if (attempt === 20) {
        await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [from],
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
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
async function prepareCleanTarget(
  request: RestoreTarget,
  toc: readonly ArchiveTocEntry[],
  checks: Checks,
): Promise<void> {
  const dropped = droppedByClean(toc, request);
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
  report: DownloadReport,
): Promise<{ dump: string; globals?: string; tableData: string[] }> {
  const files: { dump?: string; globals?: string } = {};
  const tableData: string[] = [];
  let before = 0;
  // One this run verified already (a drill's globals, restored first) is not downloaded again.
  const verified = new Set(checks.checksums.map((c) => c.key));
  for (const object of manifest.objects) {
    if (verified.has(object.key)) {
      before += object.bytes;
      continue;
    }
    const name =
      object.kind === 'table-data'
        ? `table-data-${tableData.length + 1}.pgdump`
        : object.kind === 'dump'
          ? 'dump.pgdump'
          : 'globals.sql';
    const file = path.join(dir, name);
    await downloadOne(store, manifest, object, file, signal, (bytes) => report(before + bytes));
    before += object.bytes;
    checks.checksums.push({ key: object.key, sha256: object.sha256, verified: true });
    if (object.kind === 'table-data') tableData.push(file);
    else files[object.kind] = file;
  }
  report(before, true);
  if (!files.dump) throw new PgferryError('BackupCorrupt', `backup ${manifest.id} has no dump object`);
  return { dump: files.dump, globals: files.globals, tableData };
}

/** Reports the bytes downloaded so far; `force` past the throttle. */
type DownloadReport = (doneBytes: number, force?: boolean) => void;

/**
 * A {@link DownloadReport} of `totalBytes` as `step` (`download`; a streamed restore's `restore`,
 * whose tables load as the bytes arrive), its start reported at once.
 */
function downloadReport(
  totalBytes: number,
  onProgress?: (progress: TaskProgress) => void,
  step: 'download' | 'restore' = 'download',
): DownloadReport {
  const report = throttled(onProgress);
  report({ step, doneBytes: 0, totalBytes }, true);
  return (doneBytes, force = false) => report({ step, doneBytes, totalBytes }, force);
}

/** Throws unless the object's bytes (`sha256`, `bytes`) are the manifest's. */
function verifyChecksum(object: StoredObject, manifest: BackupManifest, sha256: string, bytes: number): void {
  if (sha256 === object.sha256 && bytes === object.bytes) return;
  throw new PgferryError(
    'BackupCorrupt',
    `object ${object.key} of backup ${manifest.id} failed its checksum (sha256 ${sha256.slice(0, 12)}…, ` +
      `${bytes} bytes; the manifest says ${object.sha256.slice(0, 12)}…, ${object.bytes} bytes); ` +
      'nothing of the backup was written to the target',
  );
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
    verifyChecksum(object, manifest, meter.digest(), meter.bytes);
    if (decompressing.status === 'rejected') throw downloadFailure(decompressing.reason, object, manifest);
  } finally {
    if (!localFile) await rm(compressed, { force: true });
  }
}

/** What a failed download or decompression of `object` tells the user: a full disk, or corruption. */
export function downloadFailure(
  err: unknown,
  object: StoredObject,
  manifest: BackupManifest,
  /** Read as it streamed: the decompressing tool's failure is told as corruption too. */
  unreadable = false,
): PgferryError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new PgferryError(
      'RestoreFailed',
      `no space left to download ${object.key}; nothing of the backup was written to the target`,
    );
  }
  // A decompressing tool's failure (lz4's) read as it streamed is the object's, not the restore's.
  if (err instanceof PgferryError && !(unreadable && ['DumpFailed', 'RestoreFailed'].includes(err.code))) {
    return err;
  }
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
async function dropCreatedDatabase(into: RestoreTarget, name: string): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await withMaintenance(into.target, into.password, (admin) => dropDatabase(admin, name));
      return true;
    } catch {
      if (attempt === 5) return false;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/**
 * A drill's roles, created on its throwaway server before the backup loads (`DRILL_RESTORE` in
 * core/strategy.ts): downloads the globals object, its checksum verified and recorded as every
 * object's, and creates the roles as a restore with them does. The load that follows, without
 * them, streams.
 */
export async function restoreGlobalsFirst(
  manifest: BackupManifest,
  into: RestoreTarget,
  progress: RestoreProgress,
  deps: RestoreDeps,
): Promise<void> {
  const { checks } = progress;
  stopIfInterrupted(deps.signal);
  const workDir = await createWorkFolder('restore', workRoot(deps.env));
  try {
    checks.globals = await progress.timed('globals', async () => {
      const choosing = chooseRestoreTools(manifest, deps.env);
      choosing.catch(() => undefined); // awaited below
      const object = manifest.objects.find((o) => o.kind === 'globals');
      const file = path.join(workDir, 'globals.sql');
      if (object) {
        await downloadOne(deps.store, manifest, object, file, deps.signal);
        checks.checksums.push({ key: object.key, sha256: object.sha256, verified: true });
      }
      const { tool, psql } = await choosing;
      stopIfInterrupted(deps.signal);
      return withMaintenance(into.target, into.password, (admin) =>
        applyGlobals(admin, object && file, tool, psql, into, manifest, deps),
      );
    });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * The pg_restore that reads the backup's archive, and psql beside it (if found). A clean restore,
 * whose drops psql runs, fails without it here: before it changes anything.
 */
function chooseRestoreTools(
  manifest: BackupManifest,
  env: NodeJS.ProcessEnv,
  mode?: RestoreTarget['mode'],
): Promise<{ tool: PgToolBinary; psql: PgToolBinary | undefined }> {
  return choosePgTool(
    'pg_restore',
    manifest.tool.pgDumpMajor,
    manifest.tool.pgDumpVersion,
    env,
    `the backup's archive was written by ${describeArchive(manifest)}`,
  ).then(async (tool) => {
    const psql = await siblingTool(tool, 'psql').catch((err: PgferryError) => {
      if (mode !== 'clean') return undefined;
      throw new PgferryError(err.code, `a clean restore runs its drops with psql, and ${err.message}`);
    });
    return { tool, psql };
  });
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

/**
 * pg_restore's arguments for the request's options (the target database; not what it selects:
 * {@link pgRestoreSelection}).
 */
function restoreArgs(request: RestoreTarget): string[] {
  const args = [
    `--dbname=dbname=${conninfoValue(request.target.database)}`,
    '--exit-on-error',
    '--no-password',
  ];
  if (request.mode === 'clean') args.push('--clean', '--if-exists');
  if (request.noOwner) args.push('--no-owner');
  if (request.noAcl) args.push('--no-privileges');
  if (request.role) args.push(`--role=${request.role}`);
  return args;
}

/**
 * What the request's `--schema` and `--table` select, as pg_restore is given it: each of its runs'
 * flags (core/postgres/restore-selection.ts), their names in the bytes of the backup's database's
 * encoding, as its archive names them; undefined when it selects the whole archive.
 */
function pgRestoreSelection(
  request: RestoreTarget,
  manifest: BackupManifest,
): PgRestoreSelection | undefined {
  if (!request.schemas.length && !request.tables.length) return undefined;
  return pgRestoreRuns(request).map((run) => selectionArguments(manifest.requires?.encoding, run));
}

/** pg_restore's environment: the target's connection and the fast session settings. */
function restoreEnv(request: RestoreTarget, deps: RestoreDeps): NodeJS.ProcessEnv {
  // In clean mode a session that connected after the check cannot make a DROP wait forever.
  const lockTimeout = request.mode === 'clean' ? ` -c lock_timeout=${CLEAN_LOCK_TIMEOUT_SECONDS}s` : '';
  return {
    ...toolEnv(deps.env),
    ...libpqEnv(request.target, request.password),
    PGOPTIONS: loadSessionOptions(request.toastCompression) + lockTimeout,
  };
}

/** pg_restore into the target, with the request's options. */
async function pgRestoreInto(
  pgRestore: PgToolBinary,
  dumpFile: string,
  request: RestoreTarget,
  manifest: BackupManifest,
  deps: RestoreDeps,
  opts: {
    /** A parallel backup's data-only archives (see `pgRestoreSections`). */
    tableData?: string[];
    /** psql beside pg_restore (looked up while the backup downloads), for a clean restore's drops. */
    psql?: PgToolBinary;
    /** Runs between the pre-data and the data (the autovacuum hold). */
    afterPreData?: () => Promise<void>;
    /** `dumpFile`'s TOC, read once for the whole restore (see PgRestoreOptions' `toc`). */
    toc?: () => Promise<ArchiveTocEntry[]>;
  } = {},
): Promise<void> {
  const { password } = request;
  const { tableData = [], psql } = opts;
  const args = restoreArgs(request);
  const lockTimeout = request.mode === 'clean';
  const env = restoreEnv(request, deps);
  // A restore of some schemas or tables skips the rest of the archive: how much it reads is unknown.
  const selective = request.schemas.length > 0 || request.tables.length > 0 || tableData.length > 0;
  const archiveBytes = selective ? undefined : (await stat(dumpFile)).size;
  const reads = watchArchiveReads(archiveBytes, deps.onProgress);
  const onChild = (child: ChildProcess) => {
    deps.onChild?.(child);
    reads.watch(child);
  };
  try {
    // The largest tables' data in `jobs` COPY sessions each, read from the archive by this
    // process (see pgRestoreParallel).
    const split = { connect: () => connectPg(request.target, password), minBytes: request.splitMinBytes };
    await pgRestoreArchive(pgRestore, {
      args,
      jobs: request.jobs,
      dumpFile,
      tableData,
      env,
      onChild,
      split,
      psql, // a clean restore's drops (chooseRestoreTools found it)
      afterPreData: opts.afterPreData,
      selection: pgRestoreSelection(request, manifest),
      toc: opts.toc,
    });
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

/**
 * The rows a streamed load's COPYs loaded into each of `tables` (none when no archive holds its
 * data).
 */
function loadedRows(
  tables: { schema: string; name: string; rows: number }[],
  { rows }: StreamedArchive,
): { schema: string; name: string; rows: number; restoredRows: number }[] {
  return tables.map((t) => ({ ...t, restoredRows: rows.get(tableKey(t.schema, t.name)) ?? 0 }));
}

/** Each of the backup's tables' bytes of data (COPY text); undefined in older manifests, which lack them. */
function tableBytes(manifest: BackupManifest): number[] | undefined {
  const known = manifest.tables.every((t) => t.dataBytes !== undefined);
  return known ? manifest.tables.map((t) => t.dataBytes ?? 0) : undefined;
}

/** The bytes of the backup's table data (COPY text); the archives' whole in older manifests. */
function tableDataBytes(manifest: BackupManifest): number {
  return tableBytes(manifest)?.reduce((sum, bytes) => sum + bytes, 0) ?? manifest.uncompressedBytes;
}

/** The backup's tables that the restore selected (`--schema`, `--table`), with their rows at the backup. */
function selectedTables(manifest: BackupManifest, into: RestoreTarget) {
  return manifest.tables
    .filter((t) => selectsRelation(into, t.schema, t.name))
    .map(({ schema, name, rows }) => ({ schema, name, rows }));
}
