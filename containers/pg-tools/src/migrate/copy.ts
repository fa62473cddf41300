/**
 * The copy's parts (the pipeline in index.ts): the dump's bytes archived into the store with its
 * definitions kept in a local file, the COPY sessions that load the tables' data into the target,
 * and the definitions file's pre-data and sequences restored into the target.
 */
import type { Readable } from 'node:stream';
import type { Client } from 'pg';
import type { MigrateDatabasePlan, StoredObject } from '../../../../core/contracts';
import { PgferryError } from '../../../../core/errors';
import { AnalyzeAsLoaded } from '../../../../core/postgres/admin';
import type { ArchiveTocEntry, TableDataRows } from '../../../../core/postgres/archive';
import { connectPg } from '../../../../core/postgres/connect';
import { CopyStream } from '../../../../core/postgres/copy-stream';
import { DefinitionsFile } from '../../../../core/postgres/definitions-file';
import { loadSessionOptions } from '../../../../core/postgres/restore-session';
import {
  firstError,
  pgRestorePreData,
  runTool,
  sequenceSetList,
  sessionSettings,
} from '../../../../core/postgres/tools';
import { throttled } from '../../../../core/task-progress';
import { type ArchiveWatcher, type SnapshotGuard, storeDumpStream } from '../backup-archive';
import type { DumpProgress } from '../run';
import { type Context, dbnameArg, restoreEnv } from './context';

/**
 * The dump's bytes, compressed and hashed into the store exactly as a backup stores them, its rows
 * counted on the way; its header and TOC (every definition, no data) also go to `definitionsFile`
 * for the post-data restore.
 */
export async function archive(
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

/** Whether the database has large objects (their data is in the dump, and is not COPY text). */
export async function hasLargeObjects(client: Client): Promise<boolean> {
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
export function copyStream(
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
export async function restorePreData(
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

/** The TOC's SEQUENCE SET entries (each sequence's value) restored from the definitions file. */
export async function restoreSequences(
  ctx: Context,
  db: MigrateDatabasePlan,
  definitionsFile: string,
  toc: readonly ArchiveTocEntry[],
): Promise<void> {
  const list = await sequenceSetList(definitionsFile, toc);
  if (list) await restoreDefinitions(ctx, db, definitionsFile, [`--use-list=${list}`]);
}
