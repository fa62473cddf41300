/**
 * A backup's objects as a backup and a migration both write them: pg_dump's archive streamed into
 * the store (compressed, hashed, its rows counted) under a guarded snapshot, and the server's
 * globals.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import type { z } from 'zod';
import { compressionStages, compressionSuffix } from '../../../core/compression';
import type { BackupPlan, BackupTable, GlobalsInfoSchema, StoredObject } from '../../../core/contracts';
import { PgferryError } from '../../../core/errors';
import { Meter } from '../../../core/metering';
import { dumpGlobals } from '../../../core/postgres/admin';
import {
  ArchiveRowCounter,
  type ArchiveTocEntry,
  type TableDataListener,
  type TableDataRows,
} from '../../../core/postgres/archive';
import type { PgToolBinary } from '../../../core/postgres/binaries';
import { notCopyData } from '../../../core/postgres/copy-stream';
import {
  changedTables,
  exportSnapshot,
  type TableChange,
  type TableVersion,
  tableVersions,
} from '../../../core/postgres/snapshot-guard';
import type { BackupStore } from '../../../core/store';
import { backupObjectKey } from '../../../core/store-keys';
import { uploadOptions } from '../../../core/strategy';
import type { DumpDeps, DumpProgress } from './run';

export const DUMP_OBJECT = 'dump.pgdump';
/** A parallel backup's data-only archives: `table-data-1.pgdump…`, one per side job. */
export const TABLE_DATA_OBJECT_PREFIX = 'table-data-';
export const GLOBALS_OBJECT = 'globals.sql';

/** How many dumps a backup makes at most when tables keep changing under its snapshot. */
export const DUMP_ATTEMPTS = 3;

/**
 * Tables that changed under a dump's snapshot: the dump may hold them without their rows, or not
 * as they were, so it is not kept.
 */
export class TablesChangedError extends PgferryError {
  constructor(
    readonly changes: TableChange[],
    attempts?: number,
  ) {
    super(
      'DumpFailed',
      `${describeChanges(changes)}${
        attempts === undefined
          ? ''
          : `; ${attempts} dumps in a row met such a change: back up when the table is not being altered`
      }`,
    );
  }
}

function describeChanges(changes: TableChange[]): string {
  const shown = changes.slice(0, 3).map((c) => `${c.schema}.${c.name} was ${c.change}`);
  const more = changes.length > 3 ? ` (and ${changes.length - 3} more)` : '';
  const risk = changes.some((c) => c.change === 'rewritten')
    ? 'the dump could hold it without its rows'
    : 'the dump could hold a definition that does not match its data';
  return (
    `${shown.join(', ')}${more} after the dump's snapshot, before pg_dump locked it ` +
    `(a concurrent ALTER TABLE, TRUNCATE, VACUUM FULL or CLUSTER): ${risk}`
  );
}

/** The dump object's key within the backup's folder. */
export function dumpObjectKey(plan: Pick<BackupPlan, 'compression'>): string {
  return `${DUMP_OBJECT}${compressionSuffix(plan.compression)}`;
}

/** The key of side job `job`'s data-only archive (1, 2, …) within the backup's folder. */
export function tableDataObjectKey(plan: Pick<BackupPlan, 'compression'>, job: number): string {
  return `${TABLE_DATA_OBJECT_PREFIX}${job}.pgdump${compressionSuffix(plan.compression)}`;
}

/**
 * A pg_dump's second look at the tables' `pg_class` rows, taken as soon as it writes its first
 * byte (it holds its tables' locks by then, until it exits), and the verdict once its archive is
 * read. Found early — the TOC and the second look both in, before the data has streamed — a change
 * aborts the stream at once (`signal`).
 */
export class SecondLook {
  private readonly abort = new AbortController();
  private recheck: Promise<Map<number, TableVersion>> | undefined;
  readonly signal = this.abort.signal;

  constructor(
    protected readonly atSnapshot: Promise<Map<number, TableVersion>>,
    protected readonly observer: Client,
    /** Each dump's first bytes, for the exporting transaction's count (see `guardedSnapshot`). */
    protected readonly onFirstBytes?: () => void,
  ) {
    // Awaited by the checks; a caller that fails first (pg_dump ended at once) never gets there,
    // and the read's failure must not then end the process as an unhandled rejection.
    atSnapshot.catch(() => undefined);
  }

  /** For the archive reader: pg_dump's first bytes. */
  firstBytes(): void {
    this.onFirstBytes?.();
    this.recheck = tableVersions(this.observer);
    this.recheck.catch(() => undefined);
  }

  /** For the archive reader: the TOC is read, so the dumped tables are known. */
  tocRead(tableOids: number[]): void {
    Promise.all([this.atSnapshot, this.recheck]).then(
      ([before, now]) => {
        if (!now) return;
        const changes = changedTables(before, now, tableOids);
        if (changes.length) this.abort.abort(new TablesChangedError(changes));
      },
      () => undefined,
    );
  }

  /** Throws `TablesChangedError` when a dumped table changed after the snapshot. */
  async verify(dumped: TableDataRows[]): Promise<void> {
    if (this.signal.aborted) throw this.signal.reason;
    if (!this.recheck) throw new PgferryError('DumpFailed', 'pg_dump wrote nothing');
    const changes = changedTables(
      await this.atSnapshot,
      await this.recheck,
      dumped.map((t) => t.oid),
    );
    if (changes.length) throw new TablesChangedError(changes);
  }
}

/**
 * A dump's snapshot guard: the main pg_dump's second look (it locks every table the dump holds),
 * and a look of its own for each of a parallel backup's side dumps.
 */
export class SnapshotGuard extends SecondLook {
  /**
   * A data-only archive's look, at its own pg_dump's first bytes: the main pg_dump may end, and
   * let go of its locks, before this one has imported the snapshot and locked its tables.
   */
  sideDump(): SecondLook {
    return new SecondLook(this.atSnapshot, this.observer, this.onFirstBytes);
  }
}

/**
 * Exports the dump's snapshot on `session` (see `exportSnapshot`), reading in it every table's
 * version and what `read` reads, and the guard that compares those versions with `observer`'s
 * second look. `read` must read the catalog only.
 */
export async function guardedSnapshot<T extends object>(
  session: Client,
  observer: Client,
  lockWaitTimeoutMs: number,
  read: (client: Client) => Promise<T>,
  /** The snapshot to read in, exported elsewhere (an online migration's slot); default: a new one. */
  imported?: string,
  /**
   * pg_dumps that import the snapshot: the exporting transaction ends once each has written its
   * first bytes (by then it has imported the snapshot), not before.
   */
  dumps: number | (() => number) = 1,
): Promise<{
  snapshot: string;
  read: Promise<T & { tables: Map<number, TableVersion> }>;
  guard: SnapshotGuard;
}> {
  const snap = await exportSnapshot(
    session,
    lockWaitTimeoutMs,
    async (c) => ({
      tables: await tableVersions(c),
      ...(await read(c)),
    }),
    imported,
  );
  let waiting: number | undefined;
  const guard = new SnapshotGuard(
    snap.read.then((r) => r.tables),
    observer,
    () => {
      waiting = (waiting ?? (typeof dumps === 'function' ? dumps() : dumps)) - 1;
      if (waiting === 0) snap.release();
    },
  );
  return { snapshot: snap.snapshot, read: snap.read, guard };
}

/**
 * The manifest's row counts: one per table whose data the dump holds, named as the catalog names
 * it (the archive holds names in the database's encoding), in schema and name order.
 */
export function rowCounts(
  dumped: TableDataRows[],
  catalog: Map<number, TableVersion>,
  /** A backup's manifest: each table's data bytes too (see `BackupTableSchema`). */
  withBytes = false,
): BackupTable[] {
  return dumped
    .map((t) => {
      const known = catalog.get(t.oid);
      return {
        schema: known?.schema ?? t.schema,
        name: known?.name ?? t.name,
        rows: t.rows,
        ...(withBytes && t.bytes !== undefined ? { dataBytes: t.bytes } : {}),
      };
    })
    .sort(
      (a, b) =>
        Buffer.compare(Buffer.from(a.schema), Buffer.from(b.schema)) ||
        Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)),
    );
}

/** What the archive reader reports to, when a dump's snapshot is guarded. */
export interface ArchiveWatcher {
  /** Aborts the stream (the upload fails, leaving nothing). */
  signal?: AbortSignal;
  firstBytes?(): void;
  /** The TOC is read: the oids of the tables whose data follows. */
  tocRead?(tableOids: number[]): void;
  /** The archive's header and TOC as they pass (see `ArchiveRowCounter`). */
  tocBytes?(bytes: Buffer, last: boolean): void;
  /** The TOC is read: every entry (a migration's loader needs the COPY statements). */
  toc?(toc: ArchiveTocEntry[]): void;
  /** Each table's COPY text as it passes (see `ArchiveRowCounter`'s `tableData`). */
  tableData?: TableDataListener;
  /** Holds the stream back until it settles (see `ArchiveRowCounter`'s `ready`). */
  ready?(): Promise<void> | undefined;
}

/**
 * A dump's bytes, compressed and hashed into the store as the backup's dump object (a backup's
 * and a migration's archive alike), its rows counted on the way (`core/postgres/archive.ts`). `flowing`
 * (reading, compression and checksum) and `upload` settle apart, so that a caller can tell which
 * side failed; `stored()` describes the object and the tables' rows once both have succeeded.
 */
export function storeDumpStream(
  plan: BackupPlan,
  input: Readable,
  store: BackupStore,
  onProgress?: (progress: DumpProgress) => void,
  watcher: ArchiveWatcher = {},
  /** Which object: the dump (default) or a parallel backup's data-only archive. */
  as: Pick<StoredObject, 'key' | 'kind'> = { key: dumpObjectKey(plan), kind: 'dump' },
): {
  flowing: Promise<void>;
  upload: Promise<void>;
  stored: () => { object: StoredObject; uncompressedBytes: number; tables: TableDataRows[] };
} {
  const { key, kind } = as;
  const counter = new ArchiveRowCounter({
    onFirstBytes: () => watcher.firstBytes?.(),
    onToc: (toc) => {
      watcher.tocRead?.(toc.filter((e) => e.desc === 'TABLE DATA' && e.hadDumper).map((e) => e.oid));
      watcher.toc?.(toc);
    },
    ...(watcher.tocBytes
      ? { onTocBytes: (bytes: Buffer, last: boolean) => watcher.tocBytes?.(bytes, last) }
      : {}),
    tableData: watcher.tableData,
    ready: watcher.ready && (() => watcher.ready?.()),
  });
  const raw = new Meter();
  const hashed = new Meter({
    sha256: true,
    onBytes: (storedBytes) => onProgress?.({ dumpedBytes: raw.bytes, storedBytes }),
  });
  return {
    flowing: pipeline(
      input,
      counter,
      raw,
      ...compressionStages(plan.compression),
      hashed,
      ...(watcher.signal ? [{ signal: watcher.signal }] : []),
    ),
    upload: store.upload(backupObjectKey(plan.database, plan.backupId, key), hashed, uploadOptions(plan)),
    stored: () => ({
      object: {
        key,
        kind,
        bytes: hashed.bytes,
        sha256: hashed.digest(),
        compression: plan.compression,
        // What a restore sizes its disk by, before it downloads anything (core/task-size.ts).
        definitionsBytes: counter.scanner.tocEnd ?? 0,
        largeObjects: notCopyData(counter.scanner.toc) !== undefined,
      },
      uncompressedBytes: raw.bytes,
      tables: counter.scanner.tables(),
    }),
  };
}

/** What `pg_dumpall --globals-only` printed (`dumpGlobals`): the roles and tablespaces of a server. */
export type GlobalsDump = Awaited<ReturnType<typeof dumpGlobals>>;

/**
 * Roles and tablespaces (`pg_dumpall --globals-only`). Role passwords only when asked for; where
 * the user cannot read pg_authid (managed services), falls back to none and says so.
 */
export async function storeGlobals(
  plan: BackupPlan,
  pgDumpall: PgToolBinary,
  env: NodeJS.ProcessEnv,
  deps: Pick<DumpDeps, 'store' | 'onChild'>,
): Promise<{ object: StoredObject; info: z.infer<typeof GlobalsInfoSchema> }> {
  const out = await dumpGlobals(pgDumpall, plan.source.database, {
    withRolePasswords: plan.withRolePasswords,
    env,
    onChild: deps.onChild,
  });
  return archiveGlobals(plan, out, deps);
}

/**
 * Stores `out`, what `dumpGlobals` printed for `plan` (its source's server, its
 * `withRolePasswords`), as the backup's globals: a migration dumps them once, for the target's
 * roles and for its archived backup.
 */
export async function archiveGlobals(
  plan: BackupPlan,
  out: GlobalsDump,
  deps: Pick<DumpDeps, 'store'>,
): Promise<{ object: StoredObject; info: z.infer<typeof GlobalsInfoSchema> }> {
  const info: z.infer<typeof GlobalsInfoSchema> = out.rolePasswordsOmitted
    ? { rolePasswords: false, note: 'role passwords omitted: this user may not read pg_authid' }
    : { rolePasswords: plan.withRolePasswords };
  if (out.code !== 0) {
    throw new PgferryError(
      'DumpFailed',
      `pg_dumpall --globals-only failed: ${out.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  }
  const meter = new Meter({ sha256: true });
  await deps.store.upload(
    backupObjectKey(plan.database, plan.backupId, GLOBALS_OBJECT),
    Readable.from([out.stdout]).pipe(meter),
    { contentType: 'application/sql' },
  );
  return {
    object: {
      key: GLOBALS_OBJECT,
      kind: 'globals',
      bytes: meter.bytes,
      sha256: meter.digest(),
      compression: { codec: 'none' },
    },
    info,
  };
}
