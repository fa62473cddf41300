/**
 * The migrate runner: moves databases from a source server to a target server, one streamed pass
 * per database, and leaves a normal backup of each in the store.
 *
 * Per database, under one exported snapshot of the source (the roles the target lacks and the
 * target database are created meanwhile; the pre-data waits for both):
 *   pg_dump -Fc -Z0 (the target's major) ─> rows counted, compression + SHA-256 ─> the store
 *                                           (the archived backup); its header and TOC ─> a local file
 *                                           ─> pg_restore --section=pre-data ─> the target
 *                                           (pg_dump ≤ 16's large objects created first, in
 *                                           batches: core/postgres/large-objects.ts);
 *                                           each table's COPY text ─> `jobs` COPY sessions ─> the target
 *                                           (core/postgres/copy-stream.ts; with large objects, which
 *                                           are not COPY text, or in an encoding whose names are
 *                                           not decoded exactly (SQL_ASCII): pg_restore
 *                                           --section=data reading the same bytes instead, once
 *                                           the pre-data is restored)
 *   the local file (every definition, no data) ─> its SEQUENCE SET entries, then
 *                                                 pg_restore -j N --section=post-data
 * (autovacuum held off the target's tables from the pre-data until after ANALYZE and the checks:
 * core/postgres/autovacuum-hold.ts)
 * then the database's own properties, ANALYZE, and the checks, which hold while the source is
 * being written to: every table's rows on the target (the COPYs' command tags; counted on the
 * target when pg_restore loaded it) equal the rows the dump carried (counted from its COPY data,
 * in the snapshot), every sequence is at least where it was when the snapshot was
 * taken (at most, for descending ones), and the number of objects of each kind is the snapshot's.
 * Tables rewritten or altered after the snapshot make the attempt void, as for a backup
 * (dump.ts): the target is dropped and the migration starts afresh, a bounded number of times.
 *
 * Its results go to the store (`dump-result.json`, which the backup workflow's record step turns
 * into the manifest, and `migrate-result.json`), as the other tasks' do.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { resolvePassword } from '../../../core/connection';
import {
  type Connection,
  type DatabaseProperties,
  DEFAULT_LOCK_WAIT_TIMEOUT_MS,
  type DumpResult,
  type MigrateDatabasePlan,
  type MigrateDatabaseResult,
  type MigratePlan,
  type OnlineCutover,
  type Requirements,
  SCHEMA_VERSION,
  type SchemaTestResult,
  type StoredObject,
  type TableRowCount,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import {
  AnalyzeAsLoaded,
  analyzeInParallel,
  applyDatabaseProperties,
  createDatabase as createDatabaseLike,
  createMissingRoles,
  dropDatabase as dropDatabaseOn,
  dumpGlobals,
} from '../../../core/postgres/admin';
import type { ArchiveTocEntry, TableDataRows } from '../../../core/postgres/archive';
import { type HeldTable, holdAutovacuum, releaseAutovacuum } from '../../../core/postgres/autovacuum-hold';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../core/postgres/binaries';
import { connectPg, endQuietly, libpqEnv, withClient, withMaintenance } from '../../../core/postgres/connect';
import { CopyStream } from '../../../core/postgres/copy-stream';
import { DefinitionsFile } from '../../../core/postgres/definitions-file';
import {
  type IncompleteRun,
  markIncomplete,
  schemaTestDatabaseName,
} from '../../../core/postgres/incomplete-database';
import {
  countRows,
  databaseExists,
  describeSequence,
  dumpSizeAsRead,
  objectCounts,
  readDatabaseProperties,
  readRequirements,
  type SequenceState,
  sequenceCaughtUp,
  sequenceStates,
} from '../../../core/postgres/inspect';
import { largeObjectsPerTransaction } from '../../../core/postgres/large-objects';
import {
  createPublication,
  createSentinel,
  createSlotWithSnapshot,
  createSubscription,
  dropOwnPublications,
  dropPublicationAndSlot,
  dropSentinel,
  dropSubscription,
  replicationName,
  sentinelArrived,
  sentinelTable,
  setSequences,
  slotLag,
  subscriptionApplyErrors,
  writeSentinel,
} from '../../../core/postgres/logical-replication';
import { withOutputBuffer } from '../../../core/postgres/output-buffer';
import { conninfoValue } from '../../../core/postgres/quote';
import {
  allowWrites,
  endOtherSessions,
  freezeDatabase,
  thawDatabase,
} from '../../../core/postgres/read-only';
import { loadSessionOptions } from '../../../core/postgres/restore-session';
import { namesUndecodable } from '../../../core/postgres/server-encodings';
import {
  changedTables,
  LockWaitTimeoutError,
  lockWaitFailure,
  openObserver,
  type TableVersion,
  tableVersions,
  untranslatableRead,
} from '../../../core/postgres/snapshot-guard';
import {
  collectTail,
  firstError,
  keepStderr,
  pgRestoreParallel,
  pgRestorePreData,
  postDataJobs,
  runTool,
  sequenceSetList,
  sessionSettings,
} from '../../../core/postgres/tools';
import {
  backupObjectKey,
  dumpResultKey,
  migrateResultKey,
  schemaTestResultKey,
} from '../../../core/store-keys';
import { throttled } from '../../../core/task-progress';
import { createWorkFolder, workRoot } from '../../../core/work-folders';
import {
  type ArchiveWatcher,
  archiveGlobals,
  DUMP_ATTEMPTS,
  dumpObjectKey,
  type GlobalsDump,
  guardedSnapshot,
  rowCounts,
  type SnapshotGuard,
  storeDumpStream,
  TablesChangedError,
} from './backup-archive';
import { type DumpProgress, interruption, type PhasedDeps, RestoreProgress, stopIfInterrupted } from './run';
import { toolEnv } from './tool-env';

/** Interrupted (`signal`), a migration drops the databases it created. */
export type MigrateDeps = PhasedDeps;

/** The setting the freeze puts on the source database: never carried over to the target. */
export const FREEZE_SETTING = 'default_transaction_read_only';

interface Context {
  plan: MigratePlan;
  deps: MigrateDeps;
  sourcePassword: string | undefined;
  targetPassword: string | undefined;
  pgDump: PgToolBinary;
  pgRestore: PgToolBinary;
  /** How long pg_dump waits for a table lock on the source. */
  lockWaitTimeoutMs: number;
}

async function context(plan: MigratePlan, deps: MigrateDeps): Promise<Context> {
  const [sourcePassword, targetPassword] = await Promise.all([
    resolvePassword(plan.request.source, 'source', deps.env),
    resolvePassword(plan.request.target, 'target', deps.env),
  ]);
  // The target's major: the dump is made by the pg_dump that matches the server it goes to.
  const pgDump = await choosePgTool('pg_dump', plan.targetServer.major, plan.targetServer.version, deps.env);
  const pgRestore = await siblingTool(pgDump, 'pg_restore');
  const lockWaitTimeoutMs = plan.request.lockWaitTimeoutMs ?? DEFAULT_LOCK_WAIT_TIMEOUT_MS;
  return { plan, deps, sourcePassword, targetPassword, pgDump, pgRestore, lockWaitTimeoutMs };
}

function dumpEnv(ctx: Context, source: Connection): NodeJS.ProcessEnv {
  return { ...toolEnv(ctx.deps.env), ...libpqEnv(source, ctx.sourcePassword) };
}

function restoreEnv(ctx: Context, target: Connection): NodeJS.ProcessEnv {
  return {
    ...toolEnv(ctx.deps.env),
    ...libpqEnv(target, ctx.targetPassword),
    PGOPTIONS: loadSessionOptions(ctx.plan.toastCompression),
  };
}

/** libpq conninfo for `--dbname`: a database name is never parsed as a connection string. */
function dbnameArg(database: string): string {
  return `--dbname=dbname=${conninfoValue(database)}`;
}

// ---------------------------------------------------------------------------------------------
// Schema test
// ---------------------------------------------------------------------------------------------

/**
 * Restores each database's schema (no data) into a scratch database on the target server, then
 * drops it: a schema the target cannot take stops the migration before any data moves. The roles
 * the schema needs are created first (missing ones only), as the migration would.
 */
export async function runSchemaTest(plan: MigratePlan, deps: MigrateDeps): Promise<SchemaTestResult> {
  const started = Date.now();
  const first = plan.databases[0].backup;
  const key = schemaTestResultKey(first.database, first.backupId);
  const result: SchemaTestResult = { status: 'passed', seconds: 0, databases: [] };
  try {
    const ctx = await context(plan, deps);
    result.roles = await applyRoles(ctx, await dumpSourceGlobals(ctx));
    for (const [i, db] of plan.databases.entries()) {
      const scratch = schemaTestDatabaseName(plan.migrateId, i);
      const entry = { database: db.source.database, scratchDatabase: scratch, dropped: false };
      result.databases.push(entry);
      deps.onPhase?.(`schemaTest ${db.source.database}`);
      const scratchTarget = { ...db.target, database: scratch };
      stopIfInterrupted(deps.signal);
      await createDatabase(ctx, scratchTarget, db, 'schema test');
      const failure = await streamDumpIntoRestore(ctx, {
        dumpArgs: [
          '--format=custom',
          '--compress=0',
          '--schema-only',
          `--lock-wait-timeout=${ctx.lockWaitTimeoutMs}`,
          '--no-password',
        ],
        source: db.source,
        restoreArgs: ['--exit-on-error', '--no-password', dbnameArg(scratch)],
        target: scratchTarget,
        diagnose: (stderr) =>
          lockWaitFailure(
            stderr,
            () => openObserver(db.source, ctx.sourcePassword, ctx.lockWaitTimeoutMs),
            ctx.lockWaitTimeoutMs,
          ),
      }).then(
        () => undefined,
        (err: unknown) => err,
      );
      entry.dropped = await dropDatabase(ctx, scratchTarget).then(
        () => true,
        () => false,
      );
      if (failure !== undefined && deps.signal?.aborted) {
        const stopped = interruption(deps.signal);
        stopped.message += ` (the scratch database ${scratch} was ${entry.dropped ? 'dropped' : 'left behind: drop it'})`;
        throw stopped;
      }
      if (failure instanceof LockWaitTimeoutError) {
        throw new PgferryError(
          failure.code,
          `${failure.message}; no data was moved (the scratch database ${scratch} was ` +
            `${entry.dropped ? 'dropped' : 'left behind: drop it'})`,
          { cause: failure },
        );
      }
      if (failure !== undefined) {
        throw new PgferryError(
          'SchemaTestFailed',
          `the schema of ${db.source.database} does not restore on the target (PostgreSQL ${plan.targetServer.version}): ` +
            `${errorMessage(failure)}; no data was moved (the scratch database ${scratch} was ` +
            `${entry.dropped ? 'dropped' : 'left behind: drop it'})`,
          { cause: failure },
        );
      }
    }
    result.seconds = (Date.now() - started) / 1000;
    await deps.store.putJson(key, result);
    return result;
  } catch (err) {
    const failed = {
      ...result,
      status: 'failed',
      seconds: (Date.now() - started) / 1000,
      error: errorMessage(err),
    };
    await deps.store.putJson(key, failed).catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Migration
// ---------------------------------------------------------------------------------------------

/** Migrates every database of the plan, one after the other; the first failure stops it. */
export async function runMigrate(plan: MigratePlan, deps: MigrateDeps): Promise<MigrateDatabaseResult[]> {
  const ctx = await context(plan, deps);
  // The roles are created on the target while the first database's copy starts (the target's
  // database is created and pg_dump reads the source's catalog meanwhile): its pre-data, the
  // first thing that names them, waits for them. The same globals are each archived backup's.
  const globals = dumpSourceGlobals(ctx);
  globals.catch(() => undefined); // awaited by the roles and by each database's migration
  const roles = globals.then((out) => applyRoles(ctx, out));
  roles.catch(() => undefined); // awaited by each database's migration
  const results: MigrateDatabaseResult[] = [];
  for (const db of plan.databases) {
    try {
      stopIfInterrupted(deps.signal);
      results.push(await migrateDatabase(ctx, db, { globals, roles }));
    } catch (err) {
      const failed: DumpResult = {
        schemaVersion: SCHEMA_VERSION,
        backupId: db.backup.backupId,
        status: 'failed',
        error: { name: (err as Error).name ?? 'Error', message: errorMessage(err) },
        finishedAt: new Date().toISOString(),
      };
      await deps.store
        .putJson(dumpResultKey(db.backup.database, db.backup.backupId), failed)
        .catch(() => undefined);
      throw err;
    }
  }
  return results;
}

/**
 * Migrates one database; an attempt that met a table changed under its snapshot is dropped and
 * made again, up to `DUMP_ATTEMPTS` times.
 */
async function migrateDatabase(
  ctx: Context,
  db: MigrateDatabasePlan,
  source: SourceGlobals,
): Promise<MigrateDatabaseResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateDatabaseOnce(ctx, db, source);
    } catch (err) {
      if (!(err instanceof PgferryError && err.cause instanceof TablesChangedError)) throw err;
      await ctx.deps.store.deleteObject(
        backupObjectKey(db.backup.database, db.backup.backupId, dumpObjectKey(db.backup)),
      );
      if (attempt >= DUMP_ATTEMPTS) {
        throw new PgferryError(
          err.code,
          `${err.message}; ${attempt} attempts in a row met such a change: migrate with --freeze-source, ` +
            'or when the table is not being altered',
          { cause: err },
        );
      }
      ctx.deps.onPhase?.(`retry ${db.source.database} (${err.cause.message})`);
    }
  }
}

async function migrateDatabaseOnce(
  ctx: Context,
  db: MigrateDatabasePlan,
  { globals: sourceGlobals, roles }: SourceGlobals,
): Promise<MigrateDatabaseResult> {
  const { plan, deps } = ctx;
  const progress = new RestoreProgress((phase) => deps.onPhase?.(`${phase} ${db.source.database}`));
  const workDir = await createWorkFolder('migrate', workRoot(deps.env));
  const sessions: Client[] = [];
  // Work started beside a phase: settled before a failure drops the target.
  const pending: Promise<unknown>[] = [];
  // The copy path's tables analyzed as their load ended (the final analyze leaves them out).
  let early: AnalyzeAsLoaded | undefined;
  let created = false;
  // Whether anything but the empty database reached the target: the pre-data began.
  let written = false;
  // Online: the replication objects made so far, removed again on failure.
  const online: OnlineState | undefined = plan.request.online
    ? { name: replicationName(plan.migrateId), identityFull: [], frozen: false }
    : undefined;
  // Autovacuum is held off the target's tables from their creation (the pre-data) until they are
  // analyzed and checked (core/postgres/autovacuum-hold.ts): what the hold set, until released.
  let held: HeldTable[] | undefined;
  const holdAutovacuumOnTarget = async () => {
    const t0 = Date.now();
    held = await withClient(db.target, ctx.targetPassword, holdAutovacuum);
    progress.timings.holdAutovacuum = (Date.now() - t0) / 1000;
  };
  const releaseAutovacuumOnTarget = async () => {
    const tables = held;
    if (!tables) return;
    await progress.timed('releaseAutovacuum', () =>
      withClient(db.target, ctx.targetPassword, (target) => releaseAutovacuum(target, tables)).catch(
        (err: unknown) => {
          throw new PgferryError(
            'MigrateFailed',
            `resetting the autovacuum_enabled option the migration set on ${tables.length} tables of the target while it loaded them failed: ${errorMessage(err)}`,
            { cause: err },
          );
        },
      ),
    );
    held = undefined;
  };
  // The target's database is created while the source is read (its sequences, the snapshot,
  // pg_dump's catalog queries): nothing is written into it before the pre-data, which waits for
  // it and for the roles (`targetReady`), as do the COPY sessions' connections.
  const creating = progress.timed('createDatabase', async () => {
    await createDatabase(ctx, db.target, db, 'migration');
    created = true;
  });
  pending.push(creating, roles);
  const targetReady = Promise.all([creating, roles]).then(() => undefined);
  targetReady.catch(() => undefined); // awaited before anything is written to the target
  try {
    const observer = await openObserver(db.source, ctx.sourcePassword, ctx.lockWaitTimeoutMs);
    sessions.push(observer);
    // Sequences move outside any snapshot: read before pg_dump reads them, each is at most what
    // the dump carries (for ascending ones), however much the source is written to meanwhile.
    const sequences = await sequenceStates(observer);
    // Large objects are not COPY data: a database with any is loaded by pg_restore (below). Read
    // here, on the observer, not in the snapshot's session, which reads the catalog meanwhile; one
    // created before the snapshot but after this read fails the load, naming it.
    const largeObjects = await hasLargeObjects(observer);

    // Online: the copy is made at the snapshot the replication slot exports, so that the changes
    // the slot streams begin exactly where the copy ends.
    const slot = online
      ? await progress.timed('replication', () => startReplication(ctx, db, observer, online))
      : undefined;
    if (slot) sessions.push(slot.replication);
    const slotSnapshot = slot?.snapshot;
    // The snapshot pins what pg_dump and the source-side checks see; its session reads the
    // catalog only, and holds no lock on any table.
    const source = await connectPg(db.source, ctx.sourcePassword);
    sessions.push(source);
    const { guard, ...snap } = await guardedSnapshot(
      source,
      observer,
      ctx.lockWaitTimeoutMs,
      async (c) => ({
        state: {
          requires: await readRequirements(c),
          properties: await readDatabaseProperties(c),
          objects: await objectCounts(c),
          sequences,
        } satisfies SourceState,
      }),
      slotSnapshot,
    );
    const definitionsFile = path.join(workDir, 'definitions.pgdump');
    // What the dump will roughly write, for its progress: read beside pg_dump, which need not wait
    // for every table's size (none until it arrives, or if it cannot be read).
    const estimate = dumpSizeAsRead(db.source, ctx.sourcePassword);
    let archived: Awaited<ReturnType<typeof archive>> | undefined;
    const dumpArgs = [
      '--format=custom',
      '--compress=0',
      `--snapshot=${snap.snapshot}`,
      `--lock-wait-timeout=${ctx.lockWaitTimeoutMs}`,
      '--no-password',
    ];
    // A name with no UTF-8 equivalent fails the catalog read, and with it the snapshot pg_dump imports.
    const diagnose = async (stderr: string) =>
      (await untranslatableRead(snap.read, db.source.database, 'MigrateFailed')) ??
      lockWaitFailure(stderr, observer, ctx.lockWaitTimeoutMs);
    // The tables' data goes to the target by this process's own COPY sessions, straight from the
    // stream (core/postgres/copy-stream.ts); large objects are not COPY data: the data section of
    // a database with any is loaded by pg_restore reading the stream. So is one in an encoding whose names
    // this process cannot decode exactly (SQL_ASCII's, for one): the COPY sessions name the tables
    // in Unicode. (A name of a decodable encoding that is not exactly decodable fails the load.)
    const loader =
      largeObjects || namesUndecodable(db.encoding) ? undefined : copyStream(ctx, db, targetReady);
    const copy = loader?.copy;
    early = loader?.analyzed;
    // Interrupted, the sessions stop too: pg_dump may have ended long before the last COPY does.
    const interrupted = () => {
      copy?.abort(deps.signal?.reason);
      void early?.abort();
    };
    deps.signal?.addEventListener('abort', interrupted, { once: true });
    let restoredRows: Map<number, number> | undefined;
    try {
      await progress.timed('data', async () => {
        // The pre-data runs once the definitions file is whole (the TOC read); the data read
        // meanwhile waits in the loader's queues (or pg_restore's input), then holds pg_dump back.
        let definitionsWritten: (written: Promise<void>) => void = () => undefined;
        let toc: readonly ArchiveTocEntry[] = [];
        const definitions = new Promise<void>((resolve) => {
          definitionsWritten = resolve;
        });
        // The data waits for it, and for the autovacuum hold on the tables it created. Its large
        // objects (pg_dump ≤ 16's BLOB entries) are created first, in batches.
        const preData = definitions
          .then(() => targetReady)
          .then(async () => {
            written = true;
            const t0 = Date.now();
            await restorePreData(ctx, db, definitionsFile, toc);
            progress.timings.preData = (Date.now() - t0) / 1000;
          })
          .then(holdAutovacuumOnTarget);
        preData.catch(() => undefined); // the load fails with it; settled before a drop
        pending.push(preData);
        // Without the copy path, pg_restore reads the stream for the data section alone (the
        // tables' data, the large objects' data into the objects the pre-data created, the
        // sequences' values), once the pre-data is restored: the stream waits for it in
        // pg_restore's input. pg_restore 17 creates pg_dump 17's large objects (`BLOB METADATA`
        // entries, data section) one statement and transaction each, unless given a transaction
        // size.
        const restore = copy
          ? undefined
          : preData.then(async () =>
              largeObjects && ctx.pgRestore.major >= 17
                ? [
                    `--transaction-size=${await withClient(db.target, ctx.targetPassword, largeObjectsPerTransaction)}`,
                  ]
                : [],
            );
        restore?.catch(() => undefined); // pg_restore fails with it, or never starts
        const streamed = streamDumpIntoRestore(ctx, {
          dumpArgs,
          source: db.source,
          ...(restore && {
            restoreArgs: [
              '--section=data',
              '--exit-on-error',
              '--no-password',
              dbnameArg(db.target.database),
            ],
            restoreAfter: { tocRead: definitions, ready: restore },
          }),
          target: db.target,
          archive: async (input) => {
            archived = await archive(ctx, db, input, guard, definitionsFile, estimate, {
              toc: (entries) => {
                toc = entries;
                copy?.start(entries, preData);
              },
              ...(copy && { tableData: copy, ready: () => copy.ready() }),
              definitionsWritten,
            });
          },
          ...(copy && { stop: (reason: unknown) => copy.abort(reason) }),
          guard,
          diagnose,
        });
        // A stream that fails before its TOC is whole leaves no pre-data to wait for.
        await streamed.catch((err: unknown) => {
          const failed = Promise.reject(err);
          failed.catch(() => undefined); // handled: a no-op when the TOC was whole already
          definitionsWritten(failed);
          throw err;
        });
        if (!copy) return;
        // The stream has ended: the tables whose COPYs end from here on are analyzed at the end.
        early?.stop();
        restoredRows = await copy.finish();
        // The sequences' values (SEQUENCE SET, the data section's other entries) from the
        // definitions file: pg_restore restores only the entries listed.
        await restoreSequences(ctx, db, definitionsFile, archived?.toc ?? []);
      });
    } finally {
      deps.signal?.removeEventListener('abort', interrupted);
      await copy?.close();
    }
    if (!archived) throw new PgferryError('DumpFailed', 'the dump was not archived');
    // pg_dump imported the slot's snapshot long ago: its WAL sender is freed for the subscription's,
    // so one free WAL sender is all an online migration needs.
    if (slot) {
      sessions.splice(sessions.indexOf(slot.replication), 1);
      await endQuietly(slot.replication);
    }
    await guard.verify(archived.tables);
    const { tables: catalogTables, state } = await snap.read;
    const tables = rowCounts(archived.tables, catalogTables);
    // The rows each table's COPYs loaded (their command tags), named as `tables` names them.
    const loaded = restoredRows && loadedRows(archived.tables, catalogTables, restoredRows);

    // The roles and tablespaces go to the store while the indexes and constraints are built: the
    // two need nothing of each other. They are what pg_dumpall printed at the migration's start
    // (the target's roles were created from it): a second run took ~0.2 CPU s of the post-data.
    const globalsStored = progress.timed('globals', async () =>
      archiveGlobals(db.backup, await sourceGlobals, deps),
    );
    globalsStored.catch(() => undefined); // awaited below, or settled on failure; never unhandled
    pending.push(globalsStored);
    const dataBytes = archived.tables.reduce((sum, t) => sum + (t.bytes ?? 0), 0);
    const postJobs = postDataJobs(plan.jobs, archived.toc, dataBytes);
    await progress.timed('postData', () =>
      pgRestoreParallel(ctx.pgRestore, {
        args: ['--section=post-data', '--exit-on-error', '--no-password', dbnameArg(db.target.database)],
        jobs: postJobs,
        dumpFile: definitionsFile,
        env: restoreEnv(ctx, db.target),
        onChild: ctx.deps.onChild,
      }),
    );
    // The migration's own publication (post-data) and the REPLICA IDENTITY FULL it gave tables
    // (pre-data) are in pg_dump's snapshot: the target gets neither (the subscription needs
    // neither: the source's FULL is what lets it apply a key-less table's changes).
    if (online) {
      await progress.timed('ownPublication', () =>
        withClient(db.target, ctx.targetPassword, (target) =>
          dropOwnPublications(target, { also: online.name }),
        ),
      );
    }
    const properties = withoutFreeze(state.properties, db.readOnlySetting);
    // Also ends the target's incomplete mark: online, only once the cutover is through, so a task
    // killed during the catch-up leaves a marked database (which the cleanup step then drops).
    const applyProperties = () =>
      progress.timed('databaseProperties', () =>
        withMaintenance(db.target, ctx.targetPassword, (admin) =>
          applyDatabaseProperties(admin, db.target.database, properties, { noOwner: false, noAcl: false }),
        ),
      );
    if (!online) await applyProperties();
    const globals = await globalsStored;

    let checks: Checks;
    let cutover: OnlineCutover | undefined;
    if (online) {
      ({ checks, cutover } = await replicateAndCutOver(ctx, db, online, {
        observer,
        atSnapshot: catalogTables,
        state,
        tables,
        progress,
        releaseAutovacuum: releaseAutovacuumOnTarget,
        early,
      }));
      await applyProperties();
    } else {
      checks = await verify(ctx, db, { ...state, tables, loaded, early }, progress);
      await releaseAutovacuumOnTarget();
    }
    const dumpResult: DumpResult = {
      schemaVersion: SCHEMA_VERSION,
      backupId: db.backup.backupId,
      status: 'succeeded',
      tool: { pgDumpVersion: ctx.pgDump.version, pgDumpMajor: ctx.pgDump.major },
      objects: [archived.object, globals.object],
      tables,
      globals: globals.info,
      requires: state.requires,
      databaseProperties: properties,
      uncompressedBytes: archived.uncompressedBytes,
      finishedAt: new Date().toISOString(),
    };
    const result: MigrateDatabaseResult = {
      database: db.source.database,
      targetDatabase: db.target.database,
      backupId: db.backup.backupId,
      sourceBytes: db.sizeBytes,
      dumpedBytes: archived.uncompressedBytes,
      storedBytes: archived.object.bytes,
      timings: progress.timings,
      roles: await roles,
      checks,
      ...(cutover ? { online: cutover } : {}),
    };
    await deps.store.putJson(dumpResultKey(db.backup.database, db.backup.backupId), dumpResult);
    await deps.store.putJson(migrateResultKey(db.backup.database, db.backup.backupId), result);
    return result;
  } catch (caught) {
    await early?.abort();
    await Promise.allSettled(pending);
    // The target's creation or the roles failing is told as it was when they ran first, whatever
    // the source's side met meanwhile (a load stopped by it, say).
    const err = deps.signal?.aborted
      ? interruption(deps.signal)
      : await targetReady.then(
          () => caught,
          (failed: unknown) => failed,
        );
    let message = errorMessage(err);
    if (online) message += await undoReplication(ctx, db, online, created);
    if (created) {
      const dropped = await dropDatabase(ctx, db.target).then(
        () => true,
        () => false,
      );
      // Not dropped, it is not to be left without autovacuum either (it is to be dropped, though).
      if (!dropped) await releaseAutovacuumOnTarget().catch(() => undefined);
      // A failure before the pre-data (pg_dump's locks, say) is told as the schema test tells
      // it: nothing of the source reached the target.
      const name = db.target.database;
      const left = dropped ? 'was dropped' : 'is left in place: drop it before retrying';
      message += written
        ? ` (the partially migrated database ${name} ${left})`
        : `; no data was moved (the database ${name}, created for the migration, ${left})`;
    }
    throw new PgferryError(err instanceof PgferryError ? err.code : 'MigrateFailed', message, { cause: err });
  } finally {
    await Promise.all(sessions.map(endQuietly));
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * The source database's settings as they were before the freeze: the freeze's
 * `default_transaction_read_only = on` is the migration's, not the database's.
 */
function withoutFreeze(properties: DatabaseProperties, before: string | null): DatabaseProperties {
  const settings = properties.settings.filter(
    (s) => !(s.role === null && s.setting.startsWith(`${FREEZE_SETTING}=`)),
  );
  if (before !== null) settings.push({ role: null, setting: `${FREEZE_SETTING}=${before}` });
  return { ...properties, settings };
}

/**
 * The dump's bytes, compressed and hashed into the store exactly as a backup stores them, its rows
 * counted on the way; its header and TOC (every definition, no data) also go to `definitionsFile`
 * for the post-data restore.
 */
async function archive(
  ctx: Context,
  db: MigrateDatabasePlan,
  input: Readable,
  guard: SnapshotGuard,
  definitionsFile: string,
  /** The dump's size estimate, once it has arrived (see `dumpSizeAsRead`). */
  estimate: () => number | undefined,
  /** The loader's hooks (the copy path), and who waits for the definitions file to be whole. */
  load: Pick<ArchiveWatcher, 'toc' | 'tableData' | 'ready'> & {
    definitionsWritten?: (written: Promise<void>) => void;
  } = {},
): Promise<{
  object: StoredObject;
  uncompressedBytes: number;
  tables: TableDataRows[];
  toc: ArchiveTocEntry[];
}> {
  const definitions = new DefinitionsFile(definitionsFile);
  let toc: ArchiveTocEntry[] = [];
  const report = throttled(ctx.deps.onProgress);
  const copied = ({ dumpedBytes, storedBytes }: DumpProgress, force = false) => {
    const total = estimate();
    report(
      {
        step: 'copy',
        doneBytes: dumpedBytes,
        // Past the estimate (or before it has arrived), the dump's size is unknown.
        ...(total !== undefined && dumpedBytes <= total ? { totalBytes: total, estimated: true } : {}),
        storedBytes,
        database: db.source.database,
      },
      force,
    );
  };
  copied({ dumpedBytes: 0, storedBytes: 0 }, true);
  const { flowing, upload, stored } = storeDumpStream(db.backup, input, ctx.deps.store, copied, {
    signal: guard.signal,
    firstBytes: () => guard.firstBytes(),
    tocRead: (oids) => guard.tocRead(oids),
    tocBytes: (bytes, last) => {
      definitions.write(bytes, last);
      if (last) load.definitionsWritten?.(definitions.written);
    },
    toc: (entries) => {
      toc = entries;
      load.toc?.(entries);
    },
    tableData: load.tableData,
    ready: load.ready,
  });
  try {
    await Promise.all([flowing, upload]);
  } finally {
    await definitions.discard();
  }
  await definitions.written;
  const result = stored();
  copied({ dumpedBytes: result.uncompressedBytes, storedBytes: result.object.bytes }, true);
  return { ...result, toc };
}

/**
 * pg_dump's output streamed into pg_restore's standard input (with `restoreArgs`), and — when
 * `archive` is given — the same bytes to it at the same time; without `restoreArgs`, to `archive`
 * alone (the copy path: its loader reads them there). Any failure stops both tools and `stop`s
 * what loads beside them; the error is the tool's own.
 */
async function streamDumpIntoRestore(
  ctx: Context,
  opts: {
    dumpArgs: string[];
    source: Connection;
    restoreArgs?: string[];
    /**
     * pg_restore starts once `ready` is settled (the pre-data restored), with the arguments it
     * gives after `restoreArgs`' (before the dump's name: standard input): until then its input
     * waits here, every byte up to the TOC's end (`tocRead`, which the archive reads from the same
     * bytes), then at most a few MiB more before pg_dump is held back.
     */
    restoreAfter?: { tocRead: Promise<unknown>; ready: Promise<string[]> };
    target: Connection;
    archive?: (input: Readable) => Promise<void>;
    /** Called with the failure: stops the loader that reads the archive's stream. */
    stop?: (reason: unknown) => void;
    /** Its abort stops both tools; the abort's reason is the error. */
    guard?: SnapshotGuard;
    /** A better error for pg_dump's failure (a lock it could not get), if there is one. */
    diagnose?: (stderr: string) => Promise<PgferryError | undefined>;
  },
): Promise<void> {
  // Its archive written 1 MiB at a time rather than stdio's 4 KiB (core/postgres/output-buffer.ts).
  const [dumpCommand, dumpArgs] = withOutputBuffer(ctx.pgDump.path, opts.dumpArgs);
  const dump = spawn(dumpCommand, dumpArgs, {
    env: dumpEnv(ctx, opts.source),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ctx.deps.onChild?.(dump);
  const dumpStderr = collectTail(dump.stderr);
  const work: Promise<unknown>[] = [exitStatus(dump, 'pg_dump', dumpStderr)];
  let restore: ChildProcess | undefined;
  let restoreStderr = () => '';
  const { restoreArgs, restoreAfter } = opts;
  // A failure stops a pg_restore that waits to start, and drops what its input holds.
  let stopRestore: (err: unknown) => void = () => undefined;
  if (restoreArgs) {
    const toRestore = new PassThrough({ highWaterMark: 1 << 20 });
    dump.stdout.pipe(restoreAfter ? heldUntil(toRestore, restoreAfter.tocRead) : toRestore);
    const stopped = new Promise<never>((_, reject) => {
      stopRestore = (err) => {
        toRestore.destroy();
        reject(err);
      };
    });
    stopped.catch(() => undefined);
    const run = async () => {
      const more = (await Promise.race([restoreAfter?.ready, stopped])) ?? [];
      const child = spawn(ctx.pgRestore.path, [...restoreArgs, ...more], {
        env: restoreEnv(ctx, opts.target),
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      restore = child;
      ctx.deps.onChild?.(child);
      restoreStderr = keepStderr(child.stderr);
      await Promise.all([
        pipeline(toRestore, child.stdin),
        exitStatus(child, 'pg_restore', () => firstError(restoreStderr())),
      ]);
    };
    work.push(run());
  }
  if (opts.archive) {
    const toArchive = new PassThrough({ highWaterMark: 1 << 20 });
    dump.stdout.pipe(toArchive);
    work.push(opts.archive(toArchive));
  }
  try {
    await Promise.all(work);
  } catch (err) {
    opts.stop?.(err);
    stopRestore(err);
    dump.kill('SIGKILL');
    restore?.kill('SIGKILL');
    await Promise.allSettled(work);
    if (opts.guard?.signal.aborted) throw opts.guard.signal.reason;
    const diagnosed = opts.diagnose && dump.exitCode !== 0 ? await opts.diagnose(dumpStderr()) : undefined;
    if (diagnosed) throw diagnosed;
    // pg_restore's own error says most; a broken pipe after it says nothing.
    if (restore && restore.exitCode !== 0 && /error/i.test(restoreStderr())) {
      throw new PgferryError('MigrateFailed', `pg_restore failed: ${firstError(restoreStderr())}`, {
        cause: err,
      });
    }
    if (err instanceof PgferryError) throw err;
    const dumpError = dumpStderr();
    if (dumpError) throw new PgferryError('DumpFailed', `pg_dump failed: ${dumpError}`, { cause: err });
    throw err;
  }
}

/** Whether the database has large objects (their data is in the dump, and is not COPY text). */
async function hasLargeObjects(client: Client): Promise<boolean> {
  const { rows } = await client.query<{ any: boolean }>(
    'SELECT EXISTS (SELECT FROM pg_catalog.pg_largeobject_metadata) AS any',
  );
  return rows[0].any;
}

/**
 * The loader of the copy path: `plan.jobs` COPY sessions on the target, with pg_restore's session
 * settings and the load's own (`PGOPTIONS`, as pg_restore's sessions get them); and a session
 * that analyzes each table once loaded, whose failure stops the load at once.
 */
function copyStream(
  ctx: Context,
  db: MigrateDatabasePlan,
  targetReady: Promise<void>,
): { copy: CopyStream; analyzed: AnalyzeAsLoaded } {
  // The sessions connect once the database exists.
  const connect = async () => {
    await targetReady;
    return connectPg(db.target, ctx.targetPassword);
  };
  const analyzed: AnalyzeAsLoaded = new AnalyzeAsLoaded(connect, {
    errorCode: 'MigrateFailed',
    onFailure: (err) => copy.abort(err),
  });
  const copy = new CopyStream({
    sessions: ctx.plan.jobs,
    connect,
    settings: sessionSettings(loadSessionOptions(ctx.plan.toastCompression)),
    errorCode: 'MigrateFailed',
    onTableLoaded: (table) => analyzed.loaded(table),
  });
  return { copy, analyzed };
}

/** pg_restore of the definitions file (`args` selects what) into the target. */
async function restoreDefinitions(
  ctx: Context,
  db: MigrateDatabasePlan,
  definitionsFile: string,
  args: string[],
): Promise<void> {
  const out = await runTool(
    ctx.pgRestore,
    [...args, '--exit-on-error', '--no-password', dbnameArg(db.target.database), definitionsFile],
    { env: restoreEnv(ctx, db.target), onChild: ctx.deps.onChild },
  );
  if (out.code !== 0) {
    throw new PgferryError('MigrateFailed', `pg_restore failed: ${firstError(out.stderr)}`);
  }
}

/**
 * The pre-data section of the definitions file restored into the target: pg_dump ≤ 16's large
 * objects (a `BLOB` entry each, `toc`'s) created first by this process in batches, as a restore
 * does (core/postgres/large-objects.ts), the rest by pg_restore.
 */
async function restorePreData(
  ctx: Context,
  db: MigrateDatabasePlan,
  definitionsFile: string,
  toc: readonly ArchiveTocEntry[],
): Promise<void> {
  try {
    await pgRestorePreData(ctx.pgRestore, {
      dumpFile: definitionsFile,
      env: restoreEnv(ctx, db.target),
      onChild: ctx.deps.onChild,
      toc,
      connect: () => connectPg(db.target, ctx.targetPassword),
      run: (args) => restoreDefinitions(ctx, db, definitionsFile, args),
      signal: ctx.deps.signal,
    });
  } catch (err) {
    // The large objects' creation failed: told as the migration's failure.
    if (!(err instanceof PgferryError && err.code === 'RestoreFailed')) throw err;
    throw new PgferryError('MigrateFailed', err.message, { cause: err });
  }
}

/**
 * A stream into `out` that holds its writer back as `out` does only once `from` has settled:
 * before, every byte written waits in `out` however many (a TOC of many entries, read whole by
 * another reader of the same bytes before `out`'s reader starts).
 */
function heldUntil(out: Writable, from: Promise<unknown>): Writable {
  let holding = false;
  const hold = () => {
    holding = true;
  };
  from.then(hold, hold);
  const held = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, done) {
      if (out.write(chunk) || !holding) done();
      else out.once('drain', () => done());
    },
    final(done) {
      out.end();
      done();
    },
  });
  // `out` closed (its reader failed, or was stopped): the writer goes on without it.
  out.once('close', () => held.destroy());
  return held;
}

/** The TOC's SEQUENCE SET entries (each sequence's value) restored from the definitions file. */
async function restoreSequences(
  ctx: Context,
  db: MigrateDatabasePlan,
  definitionsFile: string,
  toc: readonly ArchiveTocEntry[],
): Promise<void> {
  const list = await sequenceSetList(definitionsFile, toc);
  if (list) await restoreDefinitions(ctx, db, definitionsFile, [`--use-list=${list}`]);
}

/**
 * The rows each table's COPYs loaded (their command tags, by TABLE DATA dumpId), keyed by the
 * table's name as `rowCounts` gives it.
 */
function loadedRows(
  dumped: TableDataRows[],
  catalog: Map<number, TableVersion>,
  loaded: Map<number, number>,
): Map<string, number> {
  return new Map(
    dumped.map((t) => {
      const known = catalog.get(t.oid);
      return [tableKey(known?.schema ?? t.schema, known?.name ?? t.name), loaded.get(t.dumpId) ?? 0];
    }),
  );
}

const tableKey = (schema: string, name: string) => JSON.stringify([schema, name]);

async function exitStatus(child: ChildProcess, tool: string, stderr: () => string): Promise<void> {
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) {
    throw new PgferryError(
      tool === 'pg_dump' ? 'DumpFailed' : 'MigrateFailed',
      `${tool} failed (${code ?? signal}): ${stderr() || 'no error output'}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Target databases and roles
// ---------------------------------------------------------------------------------------------

/**
 * Makes `target` an empty database with the source's encoding and locale: created (and marked
 * incomplete until its properties are applied), or — when it exists — used as it is (preflight
 * let it through: it is empty), or dropped and created again with `force`.
 */
async function createDatabase(
  ctx: Context,
  target: Connection,
  db: MigrateDatabasePlan,
  kind: IncompleteRun['kind'],
): Promise<void> {
  await withMaintenance(target, ctx.targetPassword, async (admin) => {
    const name = target.database;
    if ((await databaseExists(admin, name)) && name === db.target.database) {
      if (!ctx.plan.request.force) return;
      await dropDatabaseOn(admin, name);
    }
    await createDatabaseLike(admin, name, db, ctx.plan.targetServer.major);
    const run = { kind, id: ctx.plan.migrateId, pid: process.pid, host: hostname() };
    await markIncomplete(admin, name, { ...run, startedAt: new Date().toISOString() });
  });
}

async function dropDatabase(ctx: Context, target: Connection): Promise<void> {
  await withMaintenance(target, ctx.targetPassword, (admin) => dropDatabaseOn(admin, target.database));
}

/**
 * The source server's roles and tablespaces (`pg_dumpall --globals-only`, without passwords unless
 * asked for), once per migration: every database of a plan is on the one source server, and each
 * archived backup's plan asks for passwords as the request does (the migrate preflight).
 */
async function dumpSourceGlobals(ctx: Context): Promise<GlobalsDump> {
  const { plan, deps } = ctx;
  const pgDumpall = await siblingTool(ctx.pgDump, 'pg_dumpall');
  const source = plan.databases[0].source;
  const out = await dumpGlobals(pgDumpall, source.database, {
    withRolePasswords: plan.request.withRolePasswords,
    env: dumpEnv(ctx, source),
    onChild: deps.onChild,
  });
  if (out.code !== 0) {
    throw new PgferryError('DumpFailed', `pg_dumpall --globals-only failed: ${firstError(out.stderr)}`);
  }
  return out;
}

/** The source's globals, dumped once, and the roles created on the target from them. */
interface SourceGlobals {
  globals: Promise<GlobalsDump>;
  roles: Promise<MigrateDatabaseResult['roles']>;
}

/**
 * The source server's roles that the target lacks are created on it (from `out`, what
 * `dumpSourceGlobals` printed); existing roles are left exactly as they are, and tablespaces are
 * not created (their directories belong to the target's host).
 */
async function applyRoles(ctx: Context, out: GlobalsDump): Promise<MigrateDatabaseResult['roles']> {
  const { plan, deps } = ctx;
  const target = plan.databases[0].target;
  const psql = await siblingTool(ctx.pgDump, 'psql');
  return withMaintenance(target, ctx.targetPassword, (admin) =>
    createMissingRoles(admin, out.stdout.toString('utf8'), {
      psql,
      target,
      password: ctx.targetPassword,
      env: toolEnv(deps.env),
      onChild: deps.onChild,
      failure: { code: 'MigrateFailed', message: 'creating roles on the target failed' },
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

type Checks = MigrateDatabaseResult['checks'];

/** The source as the dump's snapshot sees it (sequences: as read just before pg_dump started). */
interface SourceState {
  requires: Requirements;
  properties: DatabaseProperties;
  sequences: Map<string, SequenceState>;
  objects: Map<string, number>;
}

/**
 * The target's planner statistics, on as many sessions as the post-data phase's jobs: one
 * session's database-wide ANALYZE left all but one core idle.
 */
function analyzeTarget(
  ctx: Context,
  db: MigrateDatabasePlan,
  early: AnalyzeAsLoaded | undefined,
): Promise<void> {
  return analyzeInParallel(() => connectPg(db.target, ctx.targetPassword), ctx.plan.jobs, early);
}

async function verify(
  ctx: Context,
  db: MigrateDatabasePlan,
  state: SourceState & {
    tables: TableRowCount[];
    /**
     * The rows the copy path's COPYs loaded, by `tableKey`: exactly the rows now in each table
     * (fresh tables, no triggers or rules before the post-data), so the target is not read again.
     */
    loaded?: Map<string, number>;
    /** The tables analyzed as their load ended. */
    early?: AnalyzeAsLoaded;
  },
  progress: RestoreProgress,
  /** Online, the target is analyzed while it catches up, before the source is frozen. */
  analyzeFirst = true,
): Promise<Checks> {
  return withClient(db.target, ctx.targetPassword, async (target) => {
    const { loaded } = state;
    // Without the COPYs' tags, the rows are counted on this session while the others analyze:
    // the counts read what the load wrote, which ANALYZE does not change.
    const counted = loaded
      ? Promise.resolve(
          state.tables.map((t) => ({ ...t, restoredRows: loaded.get(tableKey(t.schema, t.name)) ?? 0 })),
        )
      : countRows(target, state.tables);
    counted.catch(() => undefined); // awaited below; never unhandled
    if (analyzeFirst) await progress.timed('analyze', () => analyzeTarget(ctx, db, state.early));
    return await progress.timed('verify', async () => {
      const rowCounts: Checks['rowCounts'] = await counted;
      const targetSequences = await sequenceStates(target);
      const sequences = [...state.sequences.entries()].map(([key, s]) => {
        const target = targetSequences.get(key);
        return {
          schema: s.schema,
          name: s.name,
          source: describeSequence(s),
          target: target ? describeSequence(target) : 'missing',
          caughtUp: target !== undefined && sequenceCaughtUp(s, target),
          descending: s.descending,
        };
      });
      const targetObjects = await objectCounts(target);
      const kinds = [...new Set([...state.objects.keys(), ...targetObjects.keys()])].sort();
      const objectCounts_: Checks['objectCounts'] = kinds.map((kind) => ({
        kind,
        source: state.objects.get(kind) ?? 0,
        target: targetObjects.get(kind) ?? 0,
      }));
      const differences = [
        ...rowCounts
          .filter((t) => t.rows !== t.restoredRows)
          .map((t) => `${t.schema}.${t.name} has ${t.restoredRows} rows (source ${t.rows})`),
        ...sequences
          .filter((s) => !s.caughtUp)
          .map(
            (s) =>
              `sequence ${s.schema}.${s.name} is ${s.target}, ${s.descending ? 'above' : 'below'} the source's ` +
              `${s.source} at the snapshot`,
          ),
        ...objectCounts_
          .filter((o) => o.source !== o.target)
          .map((o) => `${o.target} ${o.kind} objects (source ${o.source})`),
      ];
      if (differences.length) {
        throw new PgferryError(
          'MigrateFailed',
          `the target differs from the source: ${differences.slice(0, 5).join(', ')}${differences.length > 5 ? ', …' : ''}`,
        );
      }
      return {
        rowCounts,
        sequences: sequences.map(({ schema, name, source, target }) => ({ schema, name, source, target })),
        objectCounts: objectCounts_,
        analyzed: true,
        restoredRowsFrom: loaded ? 'copy' : 'target',
      };
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Online: logical replication and the cutover
// ---------------------------------------------------------------------------------------------

/** The target is close enough behind to freeze the source: at most this many WAL bytes… */
export const CUTOVER_LAG_BYTES = 8 * 1024 * 1024;
/** …and its newest applied change at most this old. */
export const CUTOVER_LAG_SECONDS = 2;
/** How often the catch-up reads the lag. */
const LAG_POLL_MS = 250;
/** How long the subscription may take to connect to the slot before the migration gives up. */
const SUBSCRIBER_CONNECT_MS = 30_000;
/** How long the cutover waits for the target to apply the source's last changes. */
const CUTOVER_APPLY_TIMEOUT_MS = 60_000;

interface OnlineState {
  /** The publication's, slot's and subscription's name. */
  name: string;
  /** Tables given REPLICA IDENTITY FULL, to be reset. */
  identityFull: string[];
  publication?: boolean;
  slot?: boolean;
  subscription?: boolean;
  /** The cutover's sentinel table (`sentinelTable`), on the source and on the target. */
  sentinel?: boolean;
  frozen: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A WAL position (`16/B374D848`) as a number of bytes. */
function lsnBytes(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/**
 * The publication (every table), then the slot with its exported snapshot, whose id is returned
 * with the replication connection that holds it: the caller keeps that open until pg_dump has
 * imported the snapshot.
 */
async function startReplication(
  ctx: Context,
  db: MigrateDatabasePlan,
  observer: Client,
  online: OnlineState,
): Promise<{ snapshot: string; replication: Client }> {
  online.identityFull = await createPublication(observer, online.name, {
    replicaIdentityFull: ctx.plan.request.replicaIdentityFull,
  });
  online.publication = true;
  const replication = await connectPg(db.source, ctx.sourcePassword, undefined, 'database');
  try {
    const slot = await createSlotWithSnapshot(replication, online.name, ctx.plan.sourceServer.major);
    online.slot = true;
    ctx.deps.onPhase?.(`slot ${online.name} at ${slot.consistentPoint}`);
    return { snapshot: slot.snapshot, replication };
  } catch (err) {
    await endQuietly(replication);
    throw err;
  }
}

/**
 * After the copy: the sentinel created on both sides, the target subscribes to the slot and
 * applies the changes made since the snapshot until it is close behind; then the cutover: the
 * source frozen and its sessions ended, the sentinel's row written on the source and waited for on
 * the target (then everything committed before it is applied there), the sentinel dropped, the
 * sequences set, the schema compared with the snapshot's (DDL meanwhile stops the migration), the
 * target verified against the frozen source, and the subscription, publication and slot dropped.
 * The source stays frozen: the finish step decides when it is unfrozen.
 */
async function replicateAndCutOver(
  ctx: Context,
  db: MigrateDatabasePlan,
  online: OnlineState,
  opts: {
    observer: Client;
    atSnapshot: Map<number, TableVersion>;
    state: SourceState;
    tables: TableRowCount[];
    progress: RestoreProgress;
    /** Gives the target's tables their autovacuum back (once analyzed, before the catch-up). */
    releaseAutovacuum: () => Promise<void>;
    /** The tables analyzed as their load ended. */
    early?: AnalyzeAsLoaded;
  },
): Promise<{ checks: Checks; cutover: OnlineCutover }> {
  const { progress, observer, atSnapshot } = opts;
  return withClient(db.target, ctx.targetPassword, async (target) => {
    await progress.timed('subscribe', async () => {
      // Before the subscription, which must find the table on the target and in the publication.
      // In one transaction: none of it exists if it fails (a schema of that name, never ours, stays).
      await createSentinel(observer, online.name, true);
      online.sentinel = true; // before the target's: a failure there still drops both
      await createSentinel(target, online.name, false);
      online.subscription = true; // before: a failure half-way still tries to drop it
      await createSubscription(target, {
        name: online.name,
        source: db.source,
        sourcePassword: ctx.sourcePassword,
      });
    });
    await progress.timed('analyze', () => analyzeTarget(ctx, db, opts.early));
    // The catch-up applies the source's updates and deletes: autovacuum is needed from here on.
    await opts.releaseAutovacuum();
    const lagAtFreeze = await progress.timed('catchUp', () =>
      catchUp(ctx, db, online, observer, target, atSnapshot),
    );
    const changedSchema = async (source: Client) =>
      schemaChanges(atSnapshot, await tableVersions(source), online.name);

    return progress.timed('cutover', async () => {
      const admin = await connectPg(db.source, ctx.sourcePassword);
      try {
        await allowWrites(admin);
        online.frozen = true; // before: a failure of the statement itself still thaws
        await freezeDatabase(admin, db.source.database);
        const frozenAt = new Date().toISOString();
        // Sessions connected before the freeze would go on writing: they are ended (a pool
        // reconnects, read-only). What they committed is before the position read next.
        const sessionsEnded = await endOtherSessions(admin, db.source.database);
        // The sentinel's row, committed after everything else the source will ever send (this
        // session alone may write): on the target, it proves all of that applied.
        const token = randomUUID();
        await writeSentinel(admin, online.name, token);
        const { currentLsn: cutoverLsn } = await slotLag(admin, online.name);
        await waitApplied(ctx, online, target, token, async () =>
          refuseSchemaChanges(await changedSchema(admin)),
        );
        const appliedAt = Date.now();
        // Gone before the checks: the target is to be the source's database, nothing more.
        await dropSentinel(target, online.name);
        await dropSentinel(admin, online.name);
        online.sentinel = false;
        const objects = await objectCounts(admin);
        refuseSchemaChanges([
          ...(await changedSchema(admin)),
          ...[...new Set([...objects.keys(), ...opts.state.objects.keys()])]
            .filter((kind) => (objects.get(kind) ?? 0) !== (opts.state.objects.get(kind) ?? 0))
            .map(
              (kind) =>
                `${objects.get(kind) ?? 0} ${kind} objects (${opts.state.objects.get(kind) ?? 0} at the copy)`,
            ),
        ]);
        const sequences = await sequenceStates(admin);
        await setSequences(target, sequences.values());
        const counted = await countRows(admin, opts.tables);
        const checks = await verify(
          ctx,
          db,
          {
            ...opts.state,
            sequences,
            objects,
            tables: counted.map(({ schema, name, restoredRows }) => ({ schema, name, rows: restoredRows })),
          },
          progress,
          false,
        );
        const verifiedAt = Date.now();
        await dropSubscription(target, online.name);
        online.subscription = false;
        await dropPublicationAndSlot(admin, online.name);
        online.publication = online.slot = false;
        const at = (t: number) => (t - Date.parse(frozenAt)) / 1000;
        return {
          checks,
          cutover: {
            replication: online.name,
            replicaIdentityFull: online.identityFull,
            lagAtFreeze,
            cutoverLsn,
            frozenAt,
            sessionsEnded,
            cutoverAt: new Date().toISOString(),
            steps: { applied: at(appliedAt), verified: at(verifiedAt), replicationDropped: at(Date.now()) },
          },
        };
      } finally {
        await endQuietly(admin);
      }
    });
  });
}

/**
 * Reads the lag until the target is within `CUTOVER_LAG_BYTES` and `CUTOVER_LAG_SECONDS` of the
 * source, reporting it; stops on apply errors on the target, a subscription that never connects,
 * and DDL on the source. Returns the lag it ended at.
 */
async function catchUp(
  ctx: Context,
  db: MigrateDatabasePlan,
  online: OnlineState,
  observer: Client,
  target: Client,
  atSnapshot: Map<number, TableVersion>,
): Promise<{ bytes: number; seconds: number }> {
  const report = throttled(ctx.deps.onProgress);
  const started = Date.now();
  // The source's WAL position over time: the lag in seconds is the age of the oldest position the
  // target has not confirmed.
  let samples: { at: number; lsn: bigint }[] = [];
  let start: bigint | undefined;
  let everActive = false;
  let lastSchemaCheck = Date.now();
  for (;;) {
    stopIfInterrupted(ctx.deps.signal);
    const lag = await slotLag(observer, online.name);
    const now = Date.now();
    const current = lsnBytes(lag.currentLsn);
    const confirmed = lag.confirmedLsn ? lsnBytes(lag.confirmedLsn) : 0n;
    start ??= confirmed;
    samples.push({ at: now, lsn: current });
    samples = samples.filter((s, i) => s.lsn > confirmed || i === samples.length - 1);
    const behind = samples.find((s) => s.lsn > confirmed);
    const seconds = behind ? (now - behind.at) / 1000 : 0;
    report({
      step: 'catchUp',
      doneBytes: Number(confirmed > start ? confirmed - start : 0n),
      totalBytes: Number(current > start ? current - start : 0n),
      lagBytes: lag.lagBytes,
      lagSeconds: seconds,
      database: db.source.database,
    });
    // DDL first: it is also what makes the apply fail (a column the target lacks).
    const applyErrors = await subscriptionApplyErrors(target, online.name, ctx.plan.targetServer.major);
    if (applyErrors > 0 || now - lastSchemaCheck > 2000) {
      lastSchemaCheck = now;
      refuseSchemaChanges(schemaChanges(atSnapshot, await tableVersions(observer), online.name));
    }
    if (applyErrors > 0) throw applyFailure(applyErrors);
    everActive ||= lag.active;
    if (everActive && lag.lagBytes <= CUTOVER_LAG_BYTES && seconds <= CUTOVER_LAG_SECONDS) {
      return { bytes: lag.lagBytes, seconds };
    }
    if (!everActive && now - started > SUBSCRIBER_CONNECT_MS) {
      throw new PgferryError(
        'MigrateFailed',
        `the target's subscription did not connect to the source within ${SUBSCRIBER_CONNECT_MS / 1000}s: ` +
          `the target server must reach the source at ${db.source.host}:${db.source.port} (see the target server's log)`,
      );
    }
    await sleep(LAG_POLL_MS);
  }
}

function applyFailure(errors: number): PgferryError {
  return new PgferryError(
    'MigrateFailed',
    `the target failed to apply the source's changes (${errors} apply error${errors > 1 ? 's' : ''}: a row written on ` +
      "the target that conflicts with the source's; the target server's log names it)",
  );
}

/** Stops the migration when the source's schema changed since the copy: `changes` names how. */
function refuseSchemaChanges(changes: string[]): void {
  if (!changes.length) return;
  throw new PgferryError(
    'MigrateFailed',
    `the source's schema changed during the online migration: ${changes.slice(0, 5).join(', ')}` +
      `${changes.length > 5 ? ', …' : ''}; logical replication does not carry DDL, so the target would differ: ` +
      'migrate again when no DDL runs',
  );
}

/**
 * Waits until the target has the sentinel's row `token`, written on the source after the freeze:
 * everything committed before it is applied.
 */
async function waitApplied(
  ctx: Context,
  online: OnlineState,
  target: Client,
  token: string,
  /** Throws when the schema changed: DDL is what most often makes the apply fail. */
  checkSchema: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + CUTOVER_APPLY_TIMEOUT_MS;
  while (!(await sentinelArrived(target, online.name, token))) {
    stopIfInterrupted(ctx.deps.signal);
    const errors = await subscriptionApplyErrors(target, online.name, ctx.plan.targetServer.major);
    if (errors > 0) {
      await checkSchema();
      throw applyFailure(errors);
    }
    if (Date.now() > deadline) {
      throw new PgferryError(
        'MigrateFailed',
        `the target did not apply the source's last changes within ${CUTOVER_APPLY_TIMEOUT_MS / 1000}s of the freeze: ` +
          `the row written to ${sentinelTable(online.name)} after the freeze is not on the target ` +
          "(a session on the target holding a row the source changed, or a target too slow; the target server's log may name it)",
      );
    }
    await sleep(20);
  }
}

/**
 * Tables created, dropped, altered or rewritten since the copy's snapshot, named; but for the
 * migration's own (the sentinel, in the schema `ours`).
 */
function schemaChanges(
  atSnapshot: Map<number, TableVersion>,
  now: Map<number, TableVersion>,
  ours: string,
): string[] {
  return [
    ...changedTables(atSnapshot, now, atSnapshot.keys()).map((c) => `${c.schema}.${c.name} was ${c.change}`),
    ...[...now.entries()]
      .filter(([oid, t]) => !atSnapshot.has(oid) && t.schema !== ours)
      .map(([, t]) => `${t.schema}.${t.name} was created`),
  ];
}

/**
 * After a failure: the subscription dropped (before the target database can be), the publication
 * and slot dropped (a forgotten slot keeps WAL until the source's disk fills), the replica
 * identities reset and the source unfrozen. Returns what could not be undone, for the message.
 */
async function undoReplication(
  ctx: Context,
  db: MigrateDatabasePlan,
  online: OnlineState,
  created: boolean,
): Promise<string> {
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    await fn().catch((err: unknown) => problems.push(`${what}: ${errorMessage(err)}`));
  };
  if ((online.subscription || online.sentinel) && created) {
    await attempt('dropping the subscription', () =>
      withClient(db.target, ctx.targetPassword, async (c) => {
        await dropSubscription(c, online.name);
        await dropSentinel(c, online.name);
      }),
    );
  }
  if (online.publication || online.slot || online.frozen || online.identityFull.length || online.sentinel) {
    await attempt('cleaning up the source', () =>
      withClient(db.source, ctx.sourcePassword, async (c) => {
        await allowWrites(c);
        if (online.frozen) await thawDatabase(c, db.source.database, db.readOnlySetting);
        if (online.sentinel) await dropSentinel(c, online.name);
        await dropPublicationAndSlot(c, online.name);
      }),
    );
  }
  return problems.length
    ? ` (NOT UNDONE: ${problems.join('; ')}; drop the slot with SELECT pg_drop_replication_slot('${online.name}'))`
    : ' (the publication and replication slot were dropped)';
}
