/**
 * The copy's parts (the pipeline in index.ts): the dump's bytes archived into the store with its
 * definitions kept in a local file, the COPY sessions that load the tables' data into the target,
 * and the definitions file's pre-data and sequences restored into the target.
 */
import type { Readable } from 'node:stream';
import type { Client } from 'pg';
import type { MigrateDatabasePlan, StoredObject } from '../../../../core/contracts';
import { errorMessage, PgferryError } from '../../../../core/errors';
import { AnalyzeAsLoaded } from '../../../../core/postgres/admin';
import type { ArchiveTocEntry, TableDataRows } from '../../../../core/postgres/archive';
import { type HeldTable, holdAutovacuum, releaseAutovacuum } from '../../../../core/postgres/autovacuum-hold';
import { connectPg, withClient } from '../../../../core/postgres/connect';
import { CopyStream } from '../../../../core/postgres/copy-stream';
import { DefinitionsFile } from '../../../../core/postgres/definitions-file';
import { largeObjectsPerTransaction } from '../../../../core/postgres/large-objects';
import { loadSessionOptions } from '../../../../core/postgres/restore-session';
import { lockWaitFailure, untranslatableRead } from '../../../../core/postgres/snapshot-guard';
import {
  firstError,
  pgRestorePreData,
  runTool,
  sequenceSetList,
  sessionSettings,
} from '../../../../core/postgres/tools';
import { throttled } from '../../../../core/task-progress';
import { type ArchiveWatcher, type SnapshotGuard, storeDumpStream } from '../backup-archive';
import type { DumpProgress, RestoreProgress } from '../run';
import { type Context, dbnameArg, restoreEnv } from './context';
import { streamDumpIntoRestore } from './dump-stream';

/**
 * The copy (the phase `data`): pg_dump's stream, at `snapshot`, archived into the store and loaded
 * into the target — by `loader`'s COPY sessions, or without one by pg_restore's data section — its
 * pre-data restored from the definitions file once that is whole, then (the copy path) the
 * sequences' values. Returns the archive and the rows each table's COPYs loaded (by TABLE DATA
 * dumpId; none without a loader).
 */
export async function copyData(
  ctx: Context,
  db: MigrateDatabasePlan,
  {
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
    writing,
    autovacuum,
  }: {
    progress: RestoreProgress;
    /** The snapshot pg_dump imports, and what was read in it (its failure names the cause). */
    snapshot: { snapshot: string; read: Promise<unknown> };
    guard: SnapshotGuard;
    /** The source's observer session, which tells a lock pg_dump waited for. */
    observer: Client;
    /** Whether the source database has large objects (see `hasLargeObjects`). */
    largeObjects: boolean;
    definitionsFile: string;
    /** The dump's size estimate, once it has arrived (see `dumpSizeAsRead`). */
    estimate: () => number | undefined;
    /** The copy path's loader (`copyStream`); without one, pg_restore loads the data. */
    loader: { copy: CopyStream; analyzed: AnalyzeAsLoaded } | undefined;
    /** The target database created and the roles with it: the pre-data waits for both. */
    targetReady: Promise<void>;
    /** Work started beside the phase (the pre-data) goes here: settled before a failure drops the target. */
    pending: Promise<unknown>[];
    /** Called as the pre-data starts: from then on the target holds more than an empty database. */
    writing: () => void;
    autovacuum: AutovacuumHold;
  },
): Promise<{ archived: Archived; restoredRows: Map<number, number> | undefined }> {
  let archived: Archived | undefined;
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
  const copy = loader?.copy;
  // Interrupted, the sessions stop too: pg_dump may have ended long before the last COPY does.
  const interrupted = () => {
    copy?.abort(ctx.deps.signal?.reason);
    void loader?.analyzed.abort();
  };
  ctx.deps.signal?.addEventListener('abort', interrupted, { once: true });
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
          writing();
          const t0 = Date.now();
          await restorePreData(ctx, db, definitionsFile, toc);
          progress.timings.preData = (Date.now() - t0) / 1000;
        })
        .then(() => autovacuum.hold());
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
          restoreArgs: ['--section=data', '--exit-on-error', '--no-password', dbnameArg(db.target.database)],
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
      loader?.analyzed.stop();
      restoredRows = await copy.finish();
      // The sequences' values (SEQUENCE SET, the data section's other entries) from the
      // definitions file: pg_restore restores only the entries listed.
      await restoreSequences(ctx, db, definitionsFile, archived?.toc ?? []);
    });
  } finally {
    ctx.deps.signal?.removeEventListener('abort', interrupted);
    await copy?.close();
  }
  if (!archived) throw new PgferryError('DumpFailed', 'the dump was not archived');
  return { archived, restoredRows };
}

/** What `archive` stored: the archived backup, and what its TOC and data held. */
type Archived = Awaited<ReturnType<typeof archive>>;

/**
 * Autovacuum held off the target's tables from their creation (the pre-data) until they are
 * analyzed and checked (core/postgres/autovacuum-hold.ts): what the hold set, until released.
 */
export class AutovacuumHold {
  private held: HeldTable[] | undefined;

  constructor(
    private readonly ctx: Context,
    private readonly db: MigrateDatabasePlan,
    private readonly progress: RestoreProgress,
  ) {}

  /** Holds it off the tables the pre-data created. */
  async hold(): Promise<void> {
    const t0 = Date.now();
    this.held = await withClient(this.db.target, this.ctx.targetPassword, holdAutovacuum);
    this.progress.timings.holdAutovacuum = (Date.now() - t0) / 1000;
  }

  /** Gives the tables their options back; nothing when none are held. */
  async release(): Promise<void> {
    const tables = this.held;
    if (!tables) return;
    await this.progress.timed('releaseAutovacuum', () =>
      withClient(this.db.target, this.ctx.targetPassword, (target) =>
        releaseAutovacuum(target, tables),
      ).catch((err: unknown) => {
        throw new PgferryError(
          'MigrateFailed',
          `resetting the autovacuum_enabled option the migration set on ${tables.length} tables of the target while it loaded them failed: ${errorMessage(err)}`,
          { cause: err },
        );
      }),
    );
    this.held = undefined;
  }
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
