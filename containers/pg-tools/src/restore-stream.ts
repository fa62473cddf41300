/**
 * A create restore's archives streamed from the store into the database they load, as they
 * download (restore-backup.ts renames that database into place only once every checksum matched):
 *
 *   the store ─> SHA-256 ─> zstd -d ─> the archive's reader ─> its header and TOC ─> a file
 *                                                          └> each table's COPY text ─> COPY
 *                                                             sessions (core/postgres/copy-stream.ts)
 *
 * A backup's objects stream at once, each through a pipeline of its own: the dump object (the main
 * archive: every definition, and the data of the tables no other object holds) and a parallel
 * backup's `table-data` objects (`backup --jobs`: data-only archives of the other tables). The
 * COPY sessions (`jobs`) are shared among them by their bytes, at least one each (`dataJobShares`),
 * so that each archive's tables load beside the others'.
 *
 * The main archive's header and TOC go to the file (every definition, no data), which is what
 * pg_restore reads: the pre-data as soon as it is whole (every archive's COPYs wait for it, their
 * text held in the loaders' queues, then the downloads held back), the sequences' values and the
 * post-data once every stream has ended (restore-backup.ts). A side archive gives only its tables'
 * COPY text: the rest of its TOC (the settings, and the values of its tables' own sequences) the
 * main archive holds too, dumped in the same snapshot ({@link notInMain} checks it).
 * A migration loads pg_dump's stream the same way (migrate/copy.ts).
 *
 * So no decompressed copy of an archive is written (a restore needs no disk for it, and on the
 * benchmark's database 1.35 GB less was written and read back), pg_restore never reads the data,
 * and each table's restored rows are its COPYs' command tags, not a `count(*)` that reads every
 * table again. Each object's checksum is judged once it has passed whole, before its COPYs end; the
 * first failure of any stream (a session's, the pre-data's, a checksum's, a download's, an
 * interruption) stops them all. An archive with large objects (not COPY text), or whose names are not
 * decoded exactly from its encoding (SQL_ASCII's, for one: `namesNotExact`), is not streamed:
 * {@link NotStreamable}, thrown when the main archive's TOC arrives, before anything was written to
 * the database.
 */
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { decompressingStream } from '../../../core/compression';
import type { BackupManifest, StoredObject } from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { Meter } from '../../../core/metering';
import { AnalyzeAsLoaded } from '../../../core/postgres/admin';
import { ArchiveRowCounter, type ArchiveTocEntry } from '../../../core/postgres/archive';
import { CopyStream, namesNotExact, notCopyData } from '../../../core/postgres/copy-stream';
import { DefinitionsFile } from '../../../core/postgres/definitions-file';
import { dataJobShares } from '../../../core/postgres/tools';
import type { BackupStore } from '../../../core/store';
import { backupObjectKey, catalogNameOf } from '../../../core/store-keys';

/** The archive holds data that is not COPY text (large objects): it is restored from a file. */
export class NotStreamable extends Error {}

/**
 * Bytes of COPY text queued per session before the download is held back (CopyStream's default is
 * 4 MiB, which a migration keeps). 2 MiB kept the runner's peak 5 MiB lower (a restore of a 3.9 GB
 * database: 142 MiB against 147–148, the goal being under 150), for 0.1–0.25 s more on a 6 s
 * restore of one large table, `wide` (benchmark.md, "The streamed restore's peak memory").
 */
const RESTORE_QUEUED_BYTES = 2 * 1024 * 1024;

/**
 * An object could not be downloaded, decompressed or read as an archive (its `cause`): the caller
 * tells it as it tells a download's failure.
 */
export class ArchiveUnreadable extends Error {
  constructor(
    readonly object: StoredObject,
    cause: unknown,
  ) {
    super(errorMessage(cause), { cause });
  }
}

/** What {@link streamArchives} loaded. */
export interface StreamedArchive {
  /** The main archive's TOC. */
  toc: ArchiveTocEntry[];
  /** The rows each table's COPYs loaded (their command tags), by {@link tableKey}. */
  rows: Map<string, number>;
  /** The main archive's header and TOC alone: a valid archive of every definition and no data. */
  definitions: string;
  /**
   * The tables analyzed as their load ended (its last `ANALYZE` may still run): the final
   * `analyzeInParallel` takes it, a failure `abort`s it before the database is dropped.
   */
  analyzed: AnalyzeAsLoaded;
}

/** A table's key in {@link StreamedArchive.rows}. */
export function tableKey(schema: string, name: string): string {
  return JSON.stringify([schema, name]);
}

export interface StreamArchivesOptions {
  store: BackupStore;
  manifest: BackupManifest;
  /** The backup's dump object first, then its `table-data` objects. */
  objects: readonly StoredObject[];
  workDir: string;
  /** COPY sessions, shared among the objects by their bytes (at least one each). */
  jobs: number;
  /** A table's text beyond this is loaded by every session (`CopyStreamOptions.spreadBytes`). */
  spreadBytes?: number;
  /** A session on the database being loaded (it may wait for the database to exist). */
  connect: () => Promise<Client>;
  /** Settings each COPY session makes (pg_restore's sessions' `PGOPTIONS`). */
  settings: readonly [string, string][];
  /**
   * Creates the tables (the pre-data, from `definitions`) once the main archive's TOC has
   * arrived; every stream's COPYs start when it resolves, and its failure fails the load.
   */
  tablesReady: (toc: ArchiveTocEntry[], definitions: string) => Promise<void>;
  /**
   * Judges an object's checksum once it has passed whole (throws when it does not match), before
   * its sessions' COPYs end.
   */
  verify: (object: StoredObject, sha256: string, bytes: number) => void;
  signal?: AbortSignal;
  /** The bytes downloaded so far, of every object. */
  onBytes?: (bytes: number) => void;
}

/**
 * Streams the objects into the database at once (see the module's comment). Throws the first
 * failure: a session's, the pre-data's, a checksum's; a download's, a decompression's or an
 * archive's as {@link ArchiveUnreadable}; {@link NotStreamable} for an archive with large objects;
 * the signal's reason once it aborts.
 */
export async function streamArchives(opts: StreamArchivesOptions): Promise<StreamedArchive> {
  const { objects, signal } = opts;
  const definitions = path.join(opts.workDir, 'definitions.pgdump');
  const out = new DefinitionsFile(definitions);
  const written = out.written;
  // The first failure of any stream (or of the ANALYZEs) stops them all.
  const stop = new AbortController();
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
    stop.abort(error);
  };
  const analyzed = new AnalyzeAsLoaded(opts.connect, { errorCode: 'RestoreFailed', onFailure: fail });
  // The main archive's TOC and pre-data, which every stream's COPYs wait for.
  let tablesReady: Promise<void> | undefined;
  let preDataStarted: (toc: ArchiveTocEntry[], tablesReady: Promise<void>) => void = () => undefined;
  const preData = new Promise<ArchiveTocEntry[]>((resolve, reject) => {
    preDataStarted = (toc, started) => started.then(() => resolve(toc), reject);
    stop.signal.addEventListener('abort', () => reject(stop.signal.reason), { once: true });
  });
  preData.catch(() => undefined); // fails the loads (CopyStream.start)
  const downloaded = objects.map(() => 0);
  let streaming = objects.length;
  const shares = dataJobShares(
    objects.map((o) => o.bytes),
    opts.jobs,
  );
  const loads = objects.map((object, i) =>
    streamObject({
      opts,
      object,
      main: i === 0,
      sessions: shares[i],
      stopping: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal,
      fail,
      analyzed,
      onToc:
        i === 0
          ? (toc) => {
              tablesReady = written.then(() => opts.tablesReady(toc, definitions));
              tablesReady.catch(() => undefined); // fails the loads; awaited below
              preDataStarted(toc, tablesReady);
              return tablesReady;
            }
          : (toc) => preData.then((main) => holdsNoMore(main, toc, object)),
      onTocBytes: i === 0 ? (bytes, last) => out.write(bytes, last) : undefined,
      onBytes: (bytes) => {
        downloaded[i] = bytes;
        opts.onBytes?.(downloaded.reduce((sum, b) => sum + b, 0));
      },
      // Every stream has ended: the tables whose COPYs end from here on are analyzed at the end
      // (an ANALYZE under way would hold their post-data back).
      onEnded: () => {
        if (--streaming === 0) analyzed.stop();
      },
    }),
  );
  try {
    const settled = await Promise.allSettled(loads);
    if (signal?.aborted) throw signal.reason;
    const rejected = settled.find((s) => s.status === 'rejected');
    if (rejected) throw failure ? failure.error : rejected.reason;
    const loaded = settled.map((s) => (s as PromiseFulfilledResult<ObjectLoad>).value);
    await tablesReady;
    const rows = new Map<string, number>();
    for (const load of loaded) {
      for (const [key, n] of load.rows) rows.set(key, (rows.get(key) ?? 0) + n);
    }
    return { toc: loaded[0].toc, rows, definitions, analyzed };
  } catch (err) {
    await analyzed.abort();
    // A definitions file not yet whole is abandoned, so that no pre-data starts; one under way
    // ends before the caller drops the database it writes.
    await out.discard();
    await tablesReady?.catch(() => undefined);
    throw err;
  }
}

/** One object's load: its TOC and the rows each of its tables' COPYs loaded, by {@link tableKey}. */
interface ObjectLoad {
  toc: ArchiveTocEntry[];
  rows: Map<string, number>;
}

/**
 * One object's pipeline: the store ─> SHA-256 ─> decompression ─> the archive's reader ─> its own
 * {@link CopyStream} of `sessions`. It stops when `stopping` aborts; its own failure is given to
 * `fail` (as it is, or as {@link ArchiveUnreadable}) before anything is awaited.
 */
async function streamObject(load: {
  opts: StreamArchivesOptions;
  object: StoredObject;
  /** The dump object (the main archive): its TOC decides whether the backup streams at all. */
  main: boolean;
  sessions: number;
  stopping: AbortSignal;
  fail: (error: unknown) => void;
  analyzed: AnalyzeAsLoaded;
  /** The TOC has arrived: the promise the COPYs wait for (the tables exist). */
  onToc: (toc: ArchiveTocEntry[]) => Promise<void>;
  /** The header's and TOC's bytes, `last` with the last of them. */
  onTocBytes?: (bytes: Buffer, last: boolean) => void;
  onBytes: (bytes: number) => void;
  /** The object has passed whole and its checksum matched. */
  onEnded: () => void;
}): Promise<ObjectLoad> {
  const { opts, object, stopping } = load;
  const copy = new CopyStream({
    sessions: load.sessions,
    connect: opts.connect,
    settings: opts.settings,
    spreadBytes: opts.spreadBytes,
    queuedBytes: RESTORE_QUEUED_BYTES,
    errorCode: 'RestoreFailed',
    onTableLoaded: (table) => load.analyzed.loaded(table),
  });
  let toc: ArchiveTocEntry[] | undefined;
  const reader = new ArchiveRowCounter({
    onToc: (entries) => {
      // A side archive's names are in the main archive's encoding: where they are not exact (a
      // SQL_ASCII backup), the main archive's TOC says so too, before anything is written.
      const other = notCopyData(entries) ?? namesNotExact(entries);
      if (other) throw new NotStreamable(other);
      toc = entries;
      const ready = load.onToc(entries);
      ready.catch(() => undefined); // the COPYs' (copy.start), and the load's failure
      copy.start(entries, ready);
    },
    onTocBytes: (bytes, last) => load.onTocBytes?.(bytes, last),
    tableData: copy,
    ready: () => copy.ready(),
  });
  const meter = new Meter({ sha256: true, onBytes: load.onBytes });
  const stopped = () => copy.abort(stopping.reason);
  stopping.addEventListener('abort', stopped, { once: true });
  try {
    const body = await opts.store.download(
      backupObjectKey(catalogNameOf(opts.manifest), opts.manifest.id, object.key),
    );
    await pipeline(body, meter, decompressingStream(object.compression), reader, discard(), {
      signal: stopping,
    });
    if (!toc || !reader.scanner.complete) throw new Error('the archive ends early');
    opts.verify(object, meter.digest(), meter.bytes);
    load.onEnded();
    const loaded = await copy.finish();
    const entries = toc;
    const rows = new Map(
      entries
        .filter((e) => e.desc === 'TABLE DATA' && loaded.has(e.dumpId))
        .map((e) => [tableKey(e.namespace ?? '', e.tag ?? ''), loaded.get(e.dumpId) ?? 0]),
    );
    return { toc: entries, rows };
  } catch (caught) {
    // Stopped (another stream's failure, an interruption): that is the restore's error, not this.
    if (stopping.aborted) throw caught;
    // The load's own failure (a session's, the pre-data's), the checksum's, as they are; else the
    // object could not be read.
    const asIs =
      caught instanceof NotStreamable ||
      caught === copy.error ||
      (caught instanceof PgferryError && caught.code === 'BackupCorrupt');
    const err = asIs ? caught : new ArchiveUnreadable(object, caught);
    load.fail(err);
    throw err;
  } finally {
    stopping.removeEventListener('abort', stopped);
    await copy.close();
  }
}

/**
 * Throws unless the side archive (`side`, of `object`) holds nothing but its tables' data that the
 * main archive (`main`) does not: its settings and its tables' sequences' values are the main
 * archive's too (the main pg_dump leaves out only the moved tables' data, in the same snapshot), so
 * only its data is restored. Run before any of its COPYs.
 */
function holdsNoMore(
  main: readonly ArchiveTocEntry[],
  side: readonly ArchiveTocEntry[],
  object: StoredObject,
): void {
  const key = (e: ArchiveTocEntry) => JSON.stringify([e.desc, e.namespace ?? '', e.tag ?? '']);
  const held = new Set(main.map(key));
  const lost = side.find((e) => e.desc !== 'TABLE DATA' && !held.has(key(e)));
  if (!lost) return;
  throw new PgferryError(
    'RestoreFailed',
    `${object.key} holds ${lost.desc} ${lost.namespace ? `${lost.namespace}.` : ''}${lost.tag ?? lost.dumpId}, ` +
      "which the backup's dump object does not: a streamed restore would leave it out",
  );
}

/** A sink that drops what it is given (a stream read for its side effects: its hash, its reader). */
export function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}
