/**
 * The migrate runner: moves databases from a source server to a target server, one streamed pass
 * per database, and leaves a normal backup of each in the store.
 *
 * Per database, under one exported snapshot of the source:
 *   pg_dump -Fc -Z0 (the target's major) ──┬─> rows counted, compression + SHA-256 ─> the store
 *                                          │     (the archived backup), its header and TOC ─> a local file
 *                                          └─> pg_restore --section=pre-data,data ─> the target
 *   the local file (every definition, no data) ─> pg_restore -j N --section=post-data
 * then the database's own properties, ANALYZE, and the checks, which hold while the source is
 * being written to: every table's rows on the target equal the rows the dump carried (counted from
 * its COPY data, in the snapshot), every sequence is at least where it was when the snapshot was
 * taken (at most, for descending ones), and the number of objects of each kind is the snapshot's.
 * Tables rewritten or altered after the snapshot make the attempt void, as for a backup
 * (dump.ts): the target is dropped and the migration starts afresh, a bounded number of times.
 *
 * Its results go to the store (`dump-result.json`, which the backup workflow's record step turns
 * into the manifest, and `migrate-result.json`), as the other tasks' do.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
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
  type Requirements,
  SCHEMA_VERSION,
  type SchemaTestResult,
  type StoredObject,
  type TableRowCount,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import {
  analyze,
  applyDatabaseProperties,
  createDatabase as createDatabaseLike,
  createMissingRoles,
  dropDatabase as dropDatabaseOn,
  dumpGlobals,
} from '../../../core/postgres/admin';
import type { TableDataRows } from '../../../core/postgres/archive';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../core/postgres/binaries';
import { connectPg, endQuietly, libpqEnv, withClient, withMaintenance } from '../../../core/postgres/connect';
import { type IncompleteRun, markIncomplete } from '../../../core/postgres/incomplete-database';
import {
  countRows,
  databaseExists,
  describeSequence,
  estimateDumpSize,
  objectCounts,
  readDatabaseProperties,
  readRequirements,
  type SequenceState,
  sequenceCaughtUp,
  sequenceStates,
} from '../../../core/postgres/inspect';
import { conninfoValue } from '../../../core/postgres/quote';
import { loadSessionOptions } from '../../../core/postgres/restore-session';
import { LockWaitTimeoutError, lockWaitFailure, openObserver } from '../../../core/postgres/snapshot-guard';
import { collectTail, firstError, keepStderr, pgRestoreParallel } from '../../../core/postgres/tools';
import {
  backupObjectKey,
  dumpResultKey,
  migrateResultKey,
  schemaTestResultKey,
} from '../../../core/store-keys';
import { throttled } from '../../../core/task-progress';
import { createWorkFolder, workRoot } from '../../../core/work-folders';
import {
  DUMP_ATTEMPTS,
  dumpObjectKey,
  guardedSnapshot,
  rowCounts,
  type SnapshotGuard,
  storeDumpStream,
  storeGlobals,
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
    result.roles = await applyRoles(ctx);
    for (const [i, db] of plan.databases.entries()) {
      const scratch = `pgferry_schema_test_${plan.migrateId.replace('-', '_').toLowerCase()}_${i}`;
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
  const roles = await applyRoles(ctx);
  const results: MigrateDatabaseResult[] = [];
  for (const db of plan.databases) {
    try {
      stopIfInterrupted(deps.signal);
      results.push(await migrateDatabase(ctx, db, roles));
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
  roles: MigrateDatabaseResult['roles'],
): Promise<MigrateDatabaseResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateDatabaseOnce(ctx, db, roles);
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
  roles: MigrateDatabaseResult['roles'],
): Promise<MigrateDatabaseResult> {
  const { plan, deps } = ctx;
  const progress = new RestoreProgress((phase) => deps.onPhase?.(`${phase} ${db.source.database}`));
  const workDir = await createWorkFolder('migrate', workRoot(deps.env));
  const sessions: Client[] = [];
  let created = false;
  try {
    const observer = await openObserver(db.source, ctx.sourcePassword, ctx.lockWaitTimeoutMs);
    sessions.push(observer);
    // Sequences move outside any snapshot: read before pg_dump reads them, each is at most what
    // the dump carries (for ascending ones), however much the source is written to meanwhile.
    const sequences = await sequenceStates(observer);
    await progress.timed('createDatabase', async () => {
      await createDatabase(ctx, db.target, db, 'migration');
      created = true;
    });

    // The snapshot pins what pg_dump and the source-side checks see; its session reads the
    // catalog only, and holds no lock on any table.
    const source = await connectPg(db.source, ctx.sourcePassword);
    sessions.push(source);
    const { guard, ...snap } = await guardedSnapshot(source, observer, ctx.lockWaitTimeoutMs, async (c) => ({
      state: {
        requires: await readRequirements(c),
        properties: await readDatabaseProperties(c),
        objects: await objectCounts(c),
        sequences,
      } satisfies SourceState,
    }));
    const definitionsFile = path.join(workDir, 'definitions.pgdump');
    // What the dump will roughly write, for its progress (none if it cannot be read).
    const estimate = await estimateDumpSize(db.source, ctx.sourcePassword);
    let archived: Awaited<ReturnType<typeof archive>> | undefined;
    await progress.timed('data', () =>
      streamDumpIntoRestore(ctx, {
        dumpArgs: [
          '--format=custom',
          '--compress=0',
          `--snapshot=${snap.snapshot}`,
          `--lock-wait-timeout=${ctx.lockWaitTimeoutMs}`,
          '--no-password',
        ],
        source: db.source,
        restoreArgs: [
          '--section=pre-data',
          '--section=data',
          '--exit-on-error',
          '--no-password',
          dbnameArg(db.target.database),
        ],
        target: db.target,
        archive: async (input) => {
          archived = await archive(ctx, db, input, guard, definitionsFile, estimate);
        },
        guard,
        diagnose: (stderr) => lockWaitFailure(stderr, observer, ctx.lockWaitTimeoutMs),
      }),
    );
    if (!archived) throw new PgferryError('DumpFailed', 'the dump was not archived');
    await guard.verify(archived.tables);
    const { tables: catalogTables, state } = await snap.read;
    const tables = rowCounts(archived.tables, catalogTables);

    await progress.timed('postData', () =>
      pgRestoreParallel(ctx.pgRestore, {
        args: ['--section=post-data', '--exit-on-error', '--no-password', dbnameArg(db.target.database)],
        jobs: plan.jobs,
        dumpFile: definitionsFile,
        env: restoreEnv(ctx, db.target),
        onChild: ctx.deps.onChild,
      }),
    );
    const properties = withoutFreeze(state.properties, db.readOnlySetting);
    await progress.timed('databaseProperties', () =>
      withMaintenance(db.target, ctx.targetPassword, (admin) =>
        applyDatabaseProperties(admin, db.target.database, properties, { noOwner: false, noAcl: false }),
      ),
    );
    const globals = await progress.timed('globals', async () =>
      storeGlobals(db.backup, await siblingTool(ctx.pgDump, 'pg_dumpall'), dumpEnv(ctx, db.source), deps),
    );

    const checks = await verify(ctx, db, { ...state, tables }, progress);
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
      roles,
      checks,
    };
    await deps.store.putJson(dumpResultKey(db.backup.database, db.backup.backupId), dumpResult);
    await deps.store.putJson(migrateResultKey(db.backup.database, db.backup.backupId), result);
    return result;
  } catch (caught) {
    const err = deps.signal?.aborted ? interruption(deps.signal) : caught;
    let message = errorMessage(err);
    if (created) {
      const dropped = await dropDatabase(ctx, db.target).then(
        () => true,
        () => false,
      );
      message += dropped
        ? ` (the partially migrated database ${db.target.database} was dropped)`
        : ` (the partially migrated database ${db.target.database} is left in place: drop it before retrying)`;
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
  estimate: number | undefined,
): Promise<{ object: StoredObject; uncompressedBytes: number; tables: TableDataRows[] }> {
  const definitions = createWriteStream(definitionsFile, { flags: 'wx', mode: 0o600 });
  const written = once(definitions, 'close');
  written.catch(() => undefined); // awaited below, once the stream has ended; never unhandled
  const report = throttled(ctx.deps.onProgress);
  const copied = ({ dumpedBytes, storedBytes }: DumpProgress, force = false) =>
    report(
      {
        step: 'copy',
        doneBytes: dumpedBytes,
        // Past the estimate, the dump's size is unknown.
        ...(estimate !== undefined && dumpedBytes <= estimate
          ? { totalBytes: estimate, estimated: true }
          : {}),
        storedBytes,
        database: db.source.database,
      },
      force,
    );
  copied({ dumpedBytes: 0, storedBytes: 0 }, true);
  const { flowing, upload, stored } = storeDumpStream(db.backup, input, ctx.deps.store, copied, {
    signal: guard.signal,
    firstBytes: () => guard.firstBytes(),
    tocRead: (oids) => guard.tocRead(oids),
    tocBytes: (bytes, last) => {
      definitions.write(bytes);
      if (last) definitions.end();
    },
  });
  try {
    await Promise.all([flowing, upload]);
  } finally {
    if (!definitions.writableEnded) definitions.destroy();
  }
  await written;
  const result = stored();
  copied({ dumpedBytes: result.uncompressedBytes, storedBytes: result.object.bytes }, true);
  return result;
}

/**
 * pg_dump's output streamed into pg_restore's standard input, and — when `archive` is given — the
 * same bytes to it at the same time. Any failure stops both tools; the error is the tool's own.
 */
async function streamDumpIntoRestore(
  ctx: Context,
  opts: {
    dumpArgs: string[];
    source: Connection;
    restoreArgs: string[];
    target: Connection;
    archive?: (input: Readable) => Promise<void>;
    /** Its abort stops both tools; the abort's reason is the error. */
    guard?: SnapshotGuard;
    /** A better error for pg_dump's failure (a lock it could not get), if there is one. */
    diagnose?: (stderr: string) => Promise<PgferryError | undefined>;
  },
): Promise<void> {
  const dump = spawn(ctx.pgDump.path, opts.dumpArgs, {
    env: dumpEnv(ctx, opts.source),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const restore = spawn(ctx.pgRestore.path, opts.restoreArgs, {
    env: restoreEnv(ctx, opts.target),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  ctx.deps.onChild?.(dump);
  ctx.deps.onChild?.(restore);
  const dumpStderr = collectTail(dump.stderr);
  const restoreStderr = keepStderr(restore.stderr);
  const toRestore = new PassThrough({ highWaterMark: 1 << 20 });
  dump.stdout.pipe(toRestore);
  const work: Promise<unknown>[] = [
    pipeline(toRestore, restore.stdin),
    exitStatus(dump, 'pg_dump', dumpStderr),
    exitStatus(restore, 'pg_restore', () => firstError(restoreStderr())),
  ];
  if (opts.archive) {
    const toArchive = new PassThrough({ highWaterMark: 1 << 20 });
    dump.stdout.pipe(toArchive);
    work.push(opts.archive(toArchive));
  }
  try {
    await Promise.all(work);
  } catch (err) {
    dump.kill('SIGKILL');
    restore.kill('SIGKILL');
    await Promise.allSettled(work);
    if (opts.guard?.signal.aborted) throw opts.guard.signal.reason;
    const diagnosed = opts.diagnose && dump.exitCode !== 0 ? await opts.diagnose(dumpStderr()) : undefined;
    if (diagnosed) throw diagnosed;
    // pg_restore's own error says most; a broken pipe after it says nothing.
    if (restore.exitCode !== 0 && /error/i.test(restoreStderr())) {
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
 * The source server's roles that the target lacks are created on it (`pg_dumpall --globals-only`,
 * without passwords unless asked for); existing roles are left exactly as they are, and
 * tablespaces are not created (their directories belong to the target's host).
 */
async function applyRoles(ctx: Context): Promise<MigrateDatabaseResult['roles']> {
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

async function verify(
  ctx: Context,
  db: MigrateDatabasePlan,
  state: SourceState & { tables: TableRowCount[] },
  progress: RestoreProgress,
): Promise<Checks> {
  return withClient(db.target, ctx.targetPassword, async (target) => {
    await progress.timed('analyze', () => analyze(target));
    return await progress.timed('verify', async () => {
      const rowCounts: Checks['rowCounts'] = await countRows(target, state.tables);
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
      };
    });
  });
}
