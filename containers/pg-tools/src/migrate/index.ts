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
 *
 * Its parts, a module each beside this one (which runs them): context.ts (the plan, passwords and
 * tools every part uses), schema-test.ts (the schema test, before the migration), target.ts (the
 * target's databases and roles), dump-stream.ts (pg_dump into pg_restore and the archive), copy.ts
 * (the archive, the COPY loader, the definitions file's restores), checks.ts (ANALYZE and the
 * checks) and online.ts (logical replication and the cutover).
 */
import { rm } from 'node:fs/promises';
import * as path from 'node:path';
import type { Client } from 'pg';
import {
  type DatabaseProperties,
  type DumpResult,
  type MigrateDatabasePlan,
  type MigrateDatabaseResult,
  type MigratePlan,
  type OnlineCutover,
  SCHEMA_VERSION,
} from '../../../../core/contracts';
import { errorMessage, PgferryError } from '../../../../core/errors';
import { type AnalyzeAsLoaded, applyDatabaseProperties } from '../../../../core/postgres/admin';
import { connectPg, endQuietly, withClient, withMaintenance } from '../../../../core/postgres/connect';
import {
  dumpSizeAsRead,
  objectCounts,
  readDatabaseProperties,
  readRequirements,
  sequenceStates,
} from '../../../../core/postgres/inspect';
import { dropOwnPublications, replicationName } from '../../../../core/postgres/logical-replication';
import { namesUndecodable } from '../../../../core/postgres/server-encodings';
import { openObserver } from '../../../../core/postgres/snapshot-guard';
import { pgRestoreParallel, postDataJobs } from '../../../../core/postgres/tools';
import { backupObjectKey, dumpResultKey, migrateResultKey } from '../../../../core/store-keys';
import { createWorkFolder, workRoot } from '../../../../core/work-folders';
import {
  archiveGlobals,
  DUMP_ATTEMPTS,
  dumpObjectKey,
  guardedSnapshot,
  rowCounts,
  TablesChangedError,
} from '../backup-archive';
import { interruption, RestoreProgress, stopIfInterrupted } from '../run';
import { type Checks, loadedRows, type SourceState, verify } from './checks';
import { type Context, context, dbnameArg, type MigrateDeps, restoreEnv } from './context';
import { AutovacuumHold, copyData, copyStream, hasLargeObjects } from './copy';
import { type OnlineState, replicateAndCutOver, startReplication, undoReplication } from './online';
import { applyRoles, createDatabase, dropDatabase, dumpSourceGlobals, type SourceGlobals } from './target';

export type { MigrateDeps } from './context';
export { runSchemaTest } from './schema-test';

/** The setting the freeze puts on the source database: never carried over to the target. */
export const FREEZE_SETTING = 'default_transaction_read_only';

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

/**
 * One attempt at one database (the pipeline above): the source's side opened (`openSource`), the
 * copy (`copyData`, copy.ts), the post-data, the database's properties and the checks (online: the
 * catch-up and the cutover, online.ts), then the results stored. A failure undoes what reached the
 * target (`undoAttempt`).
 */
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
  // What reached the target, read by a failure once the work beside it has settled: the database
  // was created; anything but the empty database was written to it (the pre-data began).
  const reached = { created: false, written: false };
  // Online: the replication objects made so far, removed again on failure.
  const online: OnlineState | undefined = plan.request.online
    ? { name: replicationName(plan.migrateId), identityFull: [], frozen: false }
    : undefined;
  // Autovacuum is held off the target's tables from their creation (the pre-data) until they are
  // analyzed and checked.
  const autovacuum = new AutovacuumHold(ctx, db, progress);
  // The target's database is created while the source is read (its sequences, the snapshot,
  // pg_dump's catalog queries): nothing is written into it before the pre-data, which waits for
  // it and for the roles (`targetReady`), as do the COPY sessions' connections.
  const creating = progress.timed('createDatabase', async () => {
    await createDatabase(ctx, db.target, db, 'migration');
    reached.created = true;
  });
  pending.push(creating, roles);
  const targetReady = Promise.all([creating, roles]).then(() => undefined);
  targetReady.catch(() => undefined); // awaited before anything is written to the target
  try {
    const { observer, slot, guard, snap, largeObjects } = await openSource(
      ctx,
      db,
      online,
      progress,
      sessions,
    );
    const definitionsFile = path.join(workDir, 'definitions.pgdump');
    // What the dump will roughly write, for its progress: read beside pg_dump, which need not wait
    // for every table's size (none until it arrives, or if it cannot be read).
    const estimate = dumpSizeAsRead(db.source, ctx.sourcePassword);
    // The tables' data goes to the target by this process's own COPY sessions, straight from the
    // stream (core/postgres/copy-stream.ts); large objects are not COPY data: the data section of
    // a database with any is loaded by pg_restore reading the stream. So is one in an encoding whose names
    // this process cannot decode exactly (SQL_ASCII's, for one): the COPY sessions name the tables
    // in Unicode. (A name of a decodable encoding that is not exactly decodable fails the load.)
    const loader =
      largeObjects || namesUndecodable(db.encoding) ? undefined : copyStream(ctx, db, targetReady);
    early = loader?.analyzed;
    const { archived, restoredRows } = await copyData(ctx, db, {
      progress,
      snapshot: snap,
      guard,
      observer,
      largeObjects,
      definitionsFile,
      estimate,
      loader,
      targetReady,
      pending,
      writing: () => {
        reached.written = true;
      },
      autovacuum,
    });
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
        releaseAutovacuum: () => autovacuum.release(),
        early,
      }));
      await applyProperties();
    } else {
      checks = await verify(ctx, db, { ...state, tables, loaded, early }, progress);
      await autovacuum.release();
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
    throw await undoAttempt(ctx, db, caught, {
      early,
      pending,
      targetReady,
      online,
      reached,
      autovacuum,
    });
  } finally {
    await Promise.all(sessions.map(endQuietly));
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * The source's side of an attempt, before pg_dump starts: the observer session (its sequences and
 * whether it has large objects read there), online the replication slot, and the exported
 * snapshot with its guard and what was read in it. Each session is added to `sessions` as it is
 * opened, for the attempt to end.
 */
async function openSource(
  ctx: Context,
  db: MigrateDatabasePlan,
  online: OnlineState | undefined,
  progress: RestoreProgress,
  sessions: Client[],
) {
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
  return { observer, slot, guard, snap, largeObjects };
}

/**
 * After a failed attempt: the work started beside it settled, online its replication undone, and
 * the target database it created dropped. Returns the error that tells the failure, with what
 * was undone and what is left.
 */
async function undoAttempt(
  ctx: Context,
  db: MigrateDatabasePlan,
  caught: unknown,
  attempt: {
    early: AnalyzeAsLoaded | undefined;
    pending: Promise<unknown>[];
    targetReady: Promise<void>;
    online: OnlineState | undefined;
    /** Read once the work beside the attempt has settled (the database's creation among it). */
    reached: { created: boolean; written: boolean };
    autovacuum: AutovacuumHold;
  },
): Promise<PgferryError> {
  await attempt.early?.abort();
  await Promise.allSettled(attempt.pending);
  // The target's creation or the roles failing is told as it was when they ran first, whatever
  // the source's side met meanwhile (a load stopped by it, say).
  const err = ctx.deps.signal?.aborted
    ? interruption(ctx.deps.signal)
    : await attempt.targetReady.then(
        () => caught,
        (failed: unknown) => failed,
      );
  let message = errorMessage(err);
  if (attempt.online) message += await undoReplication(ctx, db, attempt.online, attempt.reached.created);
  if (attempt.reached.created) {
    const dropped = await dropDatabase(ctx, db.target).then(
      () => true,
      () => false,
    );
    // Not dropped, it is not to be left without autovacuum either (it is to be dropped, though).
    if (!dropped) await attempt.autovacuum.release().catch(() => undefined);
    // A failure before the pre-data (pg_dump's locks, say) is told as the schema test tells
    // it: nothing of the source reached the target.
    const name = db.target.database;
    const left = dropped ? 'was dropped' : 'is left in place: drop it before retrying';
    message += attempt.reached.written
      ? ` (the partially migrated database ${name} ${left})`
      : `; no data was moved (the database ${name}, created for the migration, ${left})`;
  }
  return new PgferryError(err instanceof PgferryError ? err.code : 'MigrateFailed', message, { cause: err });
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
