/**
 * A create restore's archive streamed from the store into the database it loads, as it downloads
 * (restore-backup.ts renames that database into place only once the checksum matched):
 *
 *   the store ─> SHA-256 ─> zstd -d ─> the archive's reader ─> its header and TOC ─> a file
 *                                                          └> each table's COPY text ─> `jobs` COPY
 *                                                             sessions (core/postgres/copy-stream.ts)
 *
 * The file (every definition, no data) is what pg_restore reads: the pre-data as soon as it is
 * whole (the COPYs wait for it, their text held in the loader's queues, then the download held
 * back), the sequences' values and the post-data once the stream has ended (restore-backup.ts).
 * A migration loads pg_dump's stream the same way (migrate.ts).
 *
 * So no decompressed copy of the archive is written (a restore needs no disk for it, and on the
 * benchmark's database 1.35 GB less was written and read back), pg_restore never reads the data,
 * and each table's restored rows are its COPYs' command tags, not a `count(*)` that reads every
 * table again. An archive with large objects (not COPY text) is not streamed: {@link
 * NotStreamable}, thrown when its TOC arrives, before anything was written to the database.
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
import { CopyStream, notCopyData } from '../../../core/postgres/copy-stream';
import { DefinitionsFile } from '../../../core/postgres/definitions-file';
import type { BackupStore } from '../../../core/store';
import { backupObjectKey, catalogNameOf } from '../../../core/store-keys';

/** The archive holds data that is not COPY text (large objects): it is restored from a file. */
export class NotStreamable extends Error {}

/**
 * The dump object could not be downloaded, decompressed or read as an archive (its `cause`): the
 * caller tells it as it tells a download's failure.
 */
export class ArchiveUnreadable extends Error {}

/** What {@link streamArchive} loaded. */
export interface StreamedArchive {
  toc: ArchiveTocEntry[];
  /** The rows each TABLE DATA entry's COPYs loaded (their command tags), by dumpId. */
  rows: Map<number, number>;
  /** The archive's header and TOC alone: a valid archive of every definition and no data. */
  definitions: string;
  /**
   * The tables analyzed as their load ended (its last `ANALYZE` may still run): the final
   * `analyzeInParallel` takes it, a failure `abort`s it before the database is dropped.
   */
  analyzed: AnalyzeAsLoaded;
}

export interface StreamArchiveOptions {
  store: BackupStore;
  manifest: BackupManifest;
  /** The backup's dump object. */
  object: StoredObject;
  workDir: string;
  /** COPY sessions. */
  jobs: number;
  /** A table's text beyond this is loaded by every session (`CopyStreamOptions.spreadBytes`). */
  spreadBytes?: number;
  /** A session on the database being loaded (it may wait for the database to exist). */
  connect: () => Promise<Client>;
  /** Settings each COPY session makes (pg_restore's sessions' `PGOPTIONS`). */
  settings: readonly [string, string][];
  /**
   * Creates the tables (the pre-data, from `definitions`) once the TOC has arrived; the COPYs
   * start when it resolves, and its failure fails the load.
   */
  tablesReady: (toc: ArchiveTocEntry[], definitions: string) => Promise<void>;
  /**
   * Judges the object's checksum once it has passed whole (throws when it does not match),
   * before the sessions' COPYs end.
   */
  verify: (sha256: string, bytes: number) => void;
  signal?: AbortSignal;
  onBytes?: (bytes: number) => void;
}

/**
 * Streams the dump object into the database (see the module's comment). Throws the first failure:
 * a session's, the pre-data's, the checksum's; the download's, the decompression's or the
 * archive's as {@link ArchiveUnreadable}; {@link NotStreamable} for an archive with large objects.
 */
export async function streamArchive(opts: StreamArchiveOptions): Promise<StreamedArchive> {
  const { manifest, object, signal } = opts;
  const definitions = path.join(opts.workDir, 'definitions.pgdump');
  const out = new DefinitionsFile(definitions);
  const written = out.written;
  // Its failure stops the load and the download at once (`copy`, declared next, exists by the
  // time it can fail).
  const analyzing = new AbortController();
  const analyzed: AnalyzeAsLoaded = new AnalyzeAsLoaded(opts.connect, {
    errorCode: 'RestoreFailed',
    onFailure: (err) => {
      copy.abort(err);
      analyzing.abort(err);
    },
  });
  const copy = new CopyStream({
    sessions: opts.jobs,
    connect: opts.connect,
    settings: opts.settings,
    spreadBytes: opts.spreadBytes,
    errorCode: 'RestoreFailed',
    onTableLoaded: (table) => analyzed.loaded(table),
  });
  let toc: ArchiveTocEntry[] | undefined;
  let tablesReady: Promise<void> | undefined;
  const reader = new ArchiveRowCounter({
    onToc: (entries) => {
      const other = notCopyData(entries);
      if (other) throw new NotStreamable(other);
      toc = entries;
      tablesReady = written.then(() => opts.tablesReady(entries, definitions));
      tablesReady.catch(() => undefined); // fails the load (start); awaited below
      copy.start(entries, tablesReady);
    },
    onTocBytes: (bytes, last) => out.write(bytes, last),
    tableData: copy,
    ready: () => copy.ready(),
  });
  const meter = new Meter({ sha256: true, onBytes: opts.onBytes });
  const stopped = () => copy.abort(signal?.reason);
  signal?.addEventListener('abort', stopped, { once: true });
  try {
    const body = await opts.store.download(backupObjectKey(catalogNameOf(manifest), manifest.id, object.key));
    await pipeline(body, meter, decompressingStream(object.compression), reader, discard(), {
      signal: signal ? AbortSignal.any([signal, analyzing.signal]) : analyzing.signal,
    });
    if (!toc || !tablesReady || !reader.scanner.complete) throw new Error('the archive ends early');
    opts.verify(meter.digest(), meter.bytes);
    // The stream has ended: the tables whose COPYs end from here on are analyzed at the end (an
    // ANALYZE under way would hold their post-data back).
    analyzed.stop();
    const rows = await copy.finish();
    await tablesReady;
    return { toc, rows, definitions, analyzed };
  } catch (caught) {
    const err = analyzing.signal.aborted && !signal?.aborted ? copy.error : caught;
    // The load's own failure (a session's, the pre-data's), the checksum's, an interruption, as
    // they are; else the object could not be read. (Judged before the abort makes `err` the load's.)
    const asIs =
      err instanceof NotStreamable ||
      err === copy.error ||
      (err instanceof PgferryError && err.code === 'BackupCorrupt') ||
      signal?.aborted;
    copy.abort(err);
    await analyzed.abort();
    // The pre-data's pg_restore ends before the caller drops the database it writes.
    await tablesReady?.catch(() => undefined);
    throw asIs ? err : new ArchiveUnreadable(errorMessage(err), { cause: err });
  } finally {
    signal?.removeEventListener('abort', stopped);
    await out.discard();
    await copy.close();
  }
}

/** A sink that drops what it is given (a stream read for its side effects: its hash, its reader). */
export function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}
