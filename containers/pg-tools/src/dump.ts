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
import { dumpScopeArgs, unmatchedPattern } from '../../../core/postgres/dump-scope';
import { readDatabaseProperties, readRequirements, serverInfo } from '../../../core/postgres/inspect';
import { lockWaitFailure, openObserver } from '../../../core/postgres/snapshot-guard';
import { collectTail } from '../../../core/postgres/tools';
import { backupObjectKey, dumpResultKey } from '../../../core/store-keys';
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
      // The attempt's object is gone with its failed upload, or removed here: a fresh dump
      // writes the same key.
      await deps.store.deleteObject(backupObjectKey(plan.database, plan.backupId, dumpObjectKey(plan)));
      if (attempt >= DUMP_ATTEMPTS) throw new TablesChangedError(err.changes, attempt);
      deps.onRetry?.(err.message, attempt);
    }
  }
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
    const env = { ...toolEnv(deps.env), ...libpqEnv(plan.source, password) };
    snapshotSession = await connectPg(plan.source, password);
    const { guard, ...snap } = await guardedSnapshot(
      snapshotSession,
      observer,
      lockWaitTimeoutMs,
      async (c) => ({
        requires: await readRequirements(c),
        databaseProperties: await readDatabaseProperties(c),
      }),
    );
    const dumped = await streamDump(plan, pgDump, snap.snapshot, env, deps, {
      lockWaitTimeoutMs,
      guard,
      diagnose: (stderr) => lockWaitFailure(stderr, observer, lockWaitTimeoutMs),
    });
    await guard.verify(dumped.tables);
    const catalog = await snap.read;

    const globals = await storeGlobals(plan, await siblingTool(pgDump, 'pg_dumpall'), env, deps);
    return {
      schemaVersion: SCHEMA_VERSION,
      backupId: plan.backupId,
      status: 'succeeded',
      tool: { pgDumpVersion: pgDump.version, pgDumpMajor: pgDump.major },
      objects: [dumped.object, globals.object],
      tables: rowCounts(dumped.tables, catalog.tables),
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

async function streamDump(
  plan: BackupPlan,
  pgDump: PgToolBinary,
  snapshot: string,
  env: NodeJS.ProcessEnv,
  deps: DumpDeps,
  opts: {
    lockWaitTimeoutMs: number;
    guard: SnapshotGuard;
    diagnose: (stderr: string) => Promise<PgferryError | undefined>;
  },
): Promise<{ object: StoredObject; uncompressedBytes: number; tables: TableDataRows[] }> {
  const args = [
    '--format=custom',
    '--compress=0',
    `--snapshot=${snapshot}`,
    `--lock-wait-timeout=${Math.round(opts.lockWaitTimeoutMs)}`,
    '--no-password',
    // The scope's patterns, each its own argument (no shell): what a partial backup holds.
    ...dumpScopeArgs(plan.scope),
  ];
  const child = spawn(pgDump.path, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  deps.onChild?.(child);
  const stderr = collectTail(child.stderr);
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;

  let lastReport = 0;
  const { flowing, upload, stored } = storeDumpStream(
    plan,
    child.stdout,
    deps.store,
    (progress) => {
      const now = Date.now();
      if (now - lastReport < 1000) return;
      lastReport = now;
      deps.onProgress?.(progress);
    },
    opts.guard,
  );
  try {
    await Promise.all([flowing, upload]);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    if (opts.guard.signal.aborted) throw opts.guard.signal.reason;
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
  const [code, signal] = await exited;
  // pg_dump may write part of its output and then fail: its exit status is the only truth.
  if (code !== 0) {
    const unmatched = unmatchedPattern(stderr(), plan.source.database);
    throw (
      (await opts.diagnose(stderr())) ??
      (unmatched === undefined ? undefined : new PgferryError('DumpFailed', unmatched)) ??
      new PgferryError('DumpFailed', `pg_dump failed (${code ?? signal}): ${stderr() || 'no error output'}`)
    );
  }
  const result = stored();
  deps.onProgress?.({ dumpedBytes: result.uncompressedBytes, storedBytes: result.object.bytes });
  return result;
}

function pgDumpFailure(stderr: string, err: unknown): Error {
  // A store failure is the cause; pg_dump's "broken pipe" that follows it is not.
  if (err instanceof PgferryError) return err;
  if (stderr) return new PgferryError('DumpFailed', `pg_dump failed: ${stderr}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}
