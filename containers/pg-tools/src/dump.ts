/**
 * The dump runner: pg_dump of one database, streamed through compression and SHA-256 into the
 * store, with each table's rows counted from the dump's own COPY data as it streams past, and the
 * server's roles and tablespaces beside it. It reports to the record step through
 * `dump-result.json`.
 *
 * pg_dump takes its snapshot and locks as it always does; pgferry adds no lock of its own on any
 * table. A session exports the snapshot and reads the catalog in it (which tables exist, and the
 * version of each one's `pg_class` row); once pg_dump writes its first byte (it holds all its
 * locks by then) a second session reads the same rows again. A table rewritten or altered after
 * the snapshot (see core/postgres/snapshot-guard.ts) makes the attempt worthless: it is removed and the
 * dump starts afresh, up to `DUMP_ATTEMPTS` times, then the backup fails naming the table.
 *
 * With `strategy.jobs` > 1 (`--jobs`, or the default on 4 cores and more), side pg_dumps import the
 * same snapshot and each dumps the data of its share of the tables (`planDumpJobs`: largest
 * first, to the least loaded job; with a plan's `minSideJobBytes`, only as many as carry that) as a
 * data-only archive of its own, compressed, hashed and counted on its own stream; the main archive
 * holds the schema and every other table's data (`--exclude-table-data` for the moved tables). The
 * main pg_dump locks every table, but it may end (and let go of them) before a side pg_dump has
 * locked its own: each side dump takes a second look of its own at its first bytes, for its tables
 * (`SnapshotGuard.sideDump`), and a change it finds stops the attempt as the main one's does.
 * A failure of any stream stops them all and removes what was stored.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Client } from 'pg';
import { resolvePassword } from '../../../core/connection';
import {
  type BackupPlan,
  DEFAULT_LOCK_WAIT_TIMEOUT_MS,
  type DumpResult,
  SCHEMA_VERSION,
  type StoredObject,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import type { TableDataRows } from '../../../core/postgres/archive';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../core/postgres/binaries';
import { connectPg, endQuietly, libpqEnv } from '../../../core/postgres/connect';
import {
  dumpScopeArgs,
  exactTablePattern,
  hasNonAsciiPattern,
  isScoped,
  pgDumpScope,
  readDumpJobTables,
  unmatchedPattern,
} from '../../../core/postgres/dump-scope';
import { readDatabaseProperties, readRequirements, serverInfo } from '../../../core/postgres/inspect';
import { lockWaitFailure, openObserver, untranslatableRead } from '../../../core/postgres/snapshot-guard';
import { collectTail, oversizedRowFailure } from '../../../core/postgres/tools';
import { backupObjectKey, dumpResultKey } from '../../../core/store-keys';
import { type DumpJobTable, planDumpJobs } from '../../../core/strategy';
import {
  DUMP_ATTEMPTS,
  dumpObjectKey,
  guardedSnapshot,
  rowCounts,
  type SnapshotGuard,
  storeDumpStream,
  storeGlobals,
  TablesChangedError,
  tableDataObjectKey,
} from './backup-archive';
import type { DumpDeps } from './run';
import { toolEnv } from './tool-env';

export type SucceededDumpResult = Extract<DumpResult, { status: 'succeeded' }>;

/** Runs the dump; on failure records a failed `dump-result.json` (best effort) and rethrows. */
export async function runDump(plan: BackupPlan, deps: DumpDeps): Promise<SucceededDumpResult> {
  try {
    const result = await dump(plan, deps);
    await deps.store.putJson(dumpResultKey(plan.database, plan.backupId), result);
    return result;
  } catch (err) {
    const failed: DumpResult = {
      schemaVersion: SCHEMA_VERSION,
      backupId: plan.backupId,
      status: 'failed',
      error: { name: (err as Error).name ?? 'Error', message: errorMessage(err) },
      finishedAt: new Date().toISOString(),
    };
    await deps.store.putJson(dumpResultKey(plan.database, plan.backupId), failed).catch(() => undefined);
    throw err;
  }
}

async function dump(plan: BackupPlan, deps: DumpDeps): Promise<SucceededDumpResult> {
  const password = await resolvePassword(plan.source, 'source', deps.env);
  for (let attempt = 1; ; attempt++) {
    try {
      return await dumpOnce(plan, deps, password);
    } catch (err) {
      if (!(err instanceof TablesChangedError)) throw err;
      // The attempt's objects are gone with their failed uploads, or removed here: a fresh dump
      // writes the same keys.
      await removeDumpObjects(plan, deps);
      if (attempt >= DUMP_ATTEMPTS) throw new TablesChangedError(err.changes, attempt);
      deps.onRetry?.(err.message, attempt);
    }
  }
}

/** Every dump object an attempt may have stored (the main archive and the side jobs' archives). */
async function removeDumpObjects(plan: BackupPlan, deps: DumpDeps): Promise<void> {
  const keys = [dumpObjectKey(plan)];
  for (let job = 1; job < plan.strategy.jobs; job++) keys.push(tableDataObjectKey(plan, job));
  for (const key of keys) await deps.store.deleteObject(backupObjectKey(plan.database, plan.backupId, key));
}

async function dumpOnce(
  plan: BackupPlan,
  deps: DumpDeps,
  password: string | undefined,
): Promise<SucceededDumpResult> {
  const lockWaitTimeoutMs = plan.lockWaitTimeoutMs ?? DEFAULT_LOCK_WAIT_TIMEOUT_MS;
  const observer = await openObserver(plan.source, password, lockWaitTimeoutMs);
  let snapshotSession: Client | undefined;
  try {
    const server = await serverInfo(observer);
    const pgDump = await choosePgTool('pg_dump', server.major, server.version, deps.env);
    // Asked its version now, beside the dump, rather than after it (its answer is kept).
    const pgDumpall = siblingTool(pgDump, 'pg_dumpall');
    pgDumpall.catch(() => undefined);
    const env = { ...toolEnv(deps.env), ...libpqEnv(plan.source, password) };
    snapshotSession = await connectPg(plan.source, password);
    // A parallel backup's side jobs, planned from the tables as the snapshot sees them.
    let sideJobs: DumpJobTable[][] = [];
    const { guard, ...snap } = await guardedSnapshot(
      snapshotSession,
      observer,
      lockWaitTimeoutMs,
      async (c) => {
        if (plan.strategy.jobs > 1 && !isScoped(plan.scope)) {
          sideJobs = planDumpJobs(
            await readDumpJobTables(c),
            plan.strategy.jobs,
            0,
            plan.strategy.minSideJobBytes,
          );
        }
        return {
          scope: await pgDumpScope(c, plan.scope, plan.source.database),
          requires: await readRequirements(c),
          databaseProperties: await readDatabaseProperties(c),
        };
      },
      undefined,
      // Known once the read is in; the exporting transaction waits for every side pg_dump.
      () => 1 + sideJobs.length,
    );
    // A name the catalog read cannot convert to UTF-8 fails the read, and with it the snapshot
    // pg_dump imports: the read's error is the cause.
    const readFailure = () =>
      untranslatableRead(snap.read, plan.source.database, 'DumpFailed', '; nothing was backed up');
    // The plan needs the snapshot's tables, and pg_dump the scope's patterns as it can match them
    // (see `pgDumpScope`): wait for the read (catalog only, quick) first. Each table's size waits
    // for the table's lock, as pg_dump would, within the lock wait timeout.
    let scope = plan.scope;
    if (plan.strategy.jobs > 1 || hasNonAsciiPattern(plan.scope)) {
      ({ scope } = await snap.read.catch(async (err: unknown) => {
        throw (
          (await readFailure()) ??
          (await lockWaitFailure(errorMessage(err), observer, lockWaitTimeoutMs, 'the backup')) ??
          err
        );
      }));
    }
    const dumped = await streamDumps({ ...plan, scope }, pgDump, snap.snapshot, env, deps, sideJobs, {
      lockWaitTimeoutMs,
      guard,
      diagnose: async (stderr) =>
        (await readFailure()) ?? lockWaitFailure(stderr, observer, lockWaitTimeoutMs),
    });
    await guard.verify(dumped.tables);
    const catalog = await snap.read;

    const globals = await storeGlobals(plan, await pgDumpall, env, deps);
    return {
      schemaVersion: SCHEMA_VERSION,
      backupId: plan.backupId,
      status: 'succeeded',
      tool: { pgDumpVersion: pgDump.version, pgDumpMajor: pgDump.major },
      objects: [...dumped.objects, globals.object],
      tables: rowCounts(dumped.tables, catalog.tables, true),
      globals: globals.info,
      requires: catalog.requires,
      databaseProperties: catalog.databaseProperties,
      uncompressedBytes: dumped.uncompressedBytes,
      finishedAt: new Date().toISOString(),
    };
  } finally {
    await endQuietly(snapshotSession);
    await endQuietly(observer);
  }
}

interface StreamOptions {
  lockWaitTimeoutMs: number;
  guard: SnapshotGuard;
  diagnose: (stderr: string) => Promise<PgferryError | undefined>;
}

/**
 * The main archive and each side job's data-only archive, streamed into the store at once. The
 * first failure stops every pg_dump; what the others stored is removed with the attempt.
 */
async function streamDumps(
  plan: BackupPlan,
  pgDump: PgToolBinary,
  snapshot: string,
  env: NodeJS.ProcessEnv,
  deps: DumpDeps,
  sideJobs: DumpJobTable[][],
  opts: StreamOptions,
): Promise<{ objects: StoredObject[]; uncompressedBytes: number; tables: TableDataRows[] }> {
  const common = [
    '--format=custom',
    '--compress=0',
    `--snapshot=${snapshot}`,
    `--lock-wait-timeout=${Math.round(opts.lockWaitTimeoutMs)}`,
    '--no-password',
  ];
  const patterns = (tables: DumpJobTable[], option: string) =>
    tables.flatMap((t) => [option, exactTablePattern(t.schema, t.name)]);
  const streams = [
    {
      // The scope's patterns, each its own argument (no shell): what a partial backup holds.
      args: [...common, ...dumpScopeArgs(plan.scope), ...patterns(sideJobs.flat(), '--exclude-table-data')],
      as: { key: dumpObjectKey(plan), kind: 'dump' as const },
    },
    ...sideJobs.map((tables, i) => ({
      args: [...common, '--data-only', ...patterns(tables, '--table')],
      as: { key: tableDataObjectKey(plan, i + 1), kind: 'table-data' as const },
    })),
  ];
  const stop = new AbortController();
  const progress = streams.map(() => ({ dumpedBytes: 0, storedBytes: 0 }));
  let lastReport = 0;
  const report = (i: number, p: { dumpedBytes: number; storedBytes: number }) => {
    progress[i] = p;
    const now = Date.now();
    if (now - lastReport < 1000) return;
    lastReport = now;
    deps.onProgress?.(sum(progress));
  };
  const running = streams.map((stream, i) =>
    streamDump(plan, pgDump, stream.args, stream.as, env, deps, (p) => report(i, p), opts, {
      stop: stop.signal,
      side: i > 0,
    }),
  );
  // The first failure stops the others; its error is the backup's.
  const settled = await Promise.allSettled(
    running.map((r) =>
      r.catch((err: unknown) => {
        stop.abort(err);
        throw err;
      }),
    ),
  );
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) {
    if (streams.length > 1) await removeDumpObjects(plan, deps).catch(() => undefined);
    throw stop.signal.reason ?? failed.reason;
  }
  const results = settled.map(
    (r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof streamDump>>>).value,
  );
  const total = {
    objects: results.map((r) => r.object),
    uncompressedBytes: results.reduce((n, r) => n + r.uncompressedBytes, 0),
    tables: results.flatMap((r) => r.tables),
  };
  deps.onProgress?.({
    dumpedBytes: total.uncompressedBytes,
    storedBytes: total.objects.reduce((n, o) => n + o.bytes, 0),
  });
  return total;
}

function sum(progress: { dumpedBytes: number; storedBytes: number }[]) {
  return {
    dumpedBytes: progress.reduce((n, p) => n + p.dumpedBytes, 0),
    storedBytes: progress.reduce((n, p) => n + p.storedBytes, 0),
  };
}

async function streamDump(
  plan: BackupPlan,
  pgDump: PgToolBinary,
  args: string[],
  as: Pick<StoredObject, 'key' | 'kind'>,
  env: NodeJS.ProcessEnv,
  deps: DumpDeps,
  onProgress: (progress: { dumpedBytes: number; storedBytes: number }) => void,
  opts: StreamOptions,
  parallel: { stop: AbortSignal; side: boolean },
): Promise<{ object: StoredObject; uncompressedBytes: number; tables: TableDataRows[] }> {
  const child = spawn(pgDump.path, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  deps.onChild?.(child);
  const stderr = collectTail(child.stderr);
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const look = parallel.side ? opts.guard.sideDump() : opts.guard;
  const stops = [opts.guard.signal, look.signal, parallel.stop];
  const { flowing, upload, stored } = storeDumpStream(
    plan,
    child.stdout,
    deps.store,
    onProgress,
    {
      signal: AbortSignal.any(stops),
      firstBytes: () => look.firstBytes(),
      tocRead: (oids) => look.tocRead(oids),
    },
    as,
  );
  try {
    await Promise.all([flowing, upload]);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    const stopped = stops.find((s) => s.aborted);
    if (stopped) throw stopped.reason;
    // When the store failed (full, unwritable), that is the cause, whichever side broke first.
    const storeFailure = await upload.then(
      () => undefined,
      (e: unknown) => e,
    );
    throw (
      (storeFailure === undefined ? await opts.diagnose(stderr()) : undefined) ??
      pgDumpFailure(stderr(), storeFailure ?? err)
    );
  }
  const [code, exitSignal] = await exited;
  // pg_dump may write part of its output and then fail: its exit status is the only truth.
  if (code !== 0) {
    const known =
      unmatchedPattern(stderr(), plan.source.database) ??
      oversizedRowFailure(
        stderr(),
        (table) =>
          `No pg_dump-based backup can hold it: back up the rest with --exclude-table-data '${table}' and keep ` +
          'such values as large objects, which are dumped in pieces; nothing was backed up',
      );
    throw (
      (await opts.diagnose(stderr())) ??
      (known === undefined ? undefined : new PgferryError('DumpFailed', known)) ??
      new PgferryError(
        'DumpFailed',
        `pg_dump failed (${code ?? exitSignal}): ${stderr() || 'no error output'}`,
      )
    );
  }
  const result = stored();
  // The main dump's look is verified by the caller, for every dumped table (the main archive holds
  // each one's definition).
  if (parallel.side) await look.verify(result.tables);
  return result;
}

function pgDumpFailure(stderr: string, err: unknown): Error {
  // A store failure is the cause; pg_dump's "broken pipe" that follows it is not.
  if (err instanceof PgferryError) return err;
  if (stderr) return new PgferryError('DumpFailed', `pg_dump failed: ${stderr}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}
