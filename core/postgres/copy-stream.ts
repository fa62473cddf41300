/**
 * A custom-format archive's table data (`pg_dump -Fc -Z0`), loaded as it streams past by this
 * process's own COPY sessions: no pg_restore on the data path. The archive's reader
 * (core/postgres/archive.ts, `ArchiveScanner.dataListener`) hands over each table's COPY text as
 * it reads it; {@link CopyStream} gathers it in pieces of whole lines (a row longer than a piece in
 * pieces of its own, all to one session, one after the other: no buffer grows to hold a row) and
 * deals them to a pool of sessions, each a queue of pieces it writes to its current
 * `COPY … FROM stdin` (pg-copy-streams):
 *
 * - a table's first {@link CopyStreamOptions.spreadBytes} go to one session (the least loaded when
 *   it starts): thousands of small tables pay one COPY each, and the sessions load different
 *   tables at once;
 * - past that, each piece goes to the least loaded session, which starts a COPY of the table
 *   when it has none: a large table is loaded by every session at once.
 *
 * A session loads one table after the other, in the stream's order (the stream holds one table
 * after the other); its COPY of a table ends when it is given a piece of the next. The bytes held
 * in the queues are bounded: past the bound, `ready()` holds the stream back (and pg_dump behind
 * it). No COPY starts before `tablesReady` (the tables exist): the stream waits meanwhile.
 *
 * Each table's restored rows are the sum of its COPY command tags (`COPY n`). The first failure —
 * a session's COPY, a connection, the tables' creation — ends every session (their COPYs rolled
 * back) and fails `ready()` and `finish()` with the server's message.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { errorMessage, PgferryError, type PgferryErrorCode } from '../errors';
import {
  type ArchiveTocEntry,
  archiveEncoding,
  describeEntry,
  type TableDataListener,
  type TableDataRows,
} from './archive';
import { endQuietly } from './connect';
import { quoteIdent, quoteLiteral } from './quote';
import { namesUndecodable } from './server-encodings';

export interface CopyStreamOptions {
  /** How many COPY sessions load at once. */
  sessions: number;
  /** A new session on the target database. */
  connect: () => Promise<Client>;
  /** More settings each session makes (`PGOPTIONS`' pairs, see `sessionSettings`). */
  settings?: readonly [string, string][];
  /** The code of the errors thrown. */
  errorCode?: PgferryErrorCode;
  /** The size of a piece of whole lines (one session's write); 256 KiB by default. */
  pieceBytes?: number;
  /** A table's text beyond this is dealt over every session; 4 MiB by default. */
  spreadBytes?: number;
  /** Bytes queued per session before the stream is held back; 4 MiB by default. */
  queuedBytes?: number;
  /**
   * A table's rows are all loaded: the stream has passed its end and every COPY of its text has
   * ended (each committed). Its quoted, schema-qualified name.
   */
  onTableLoaded?: (table: string) => void;
}

const NEWLINE = 0x0a;
/** Held back at each cut: pg_dump's end marker (`\.` and two empty lines) is never sent as rows. */
const MARKER_ROOM = 8;

/**
 * What each session sets before its first COPY: the settings pg_restore's sessions have
 * (pg_backup_archiver.c, `_doSetFixedOutputState`) — the archive's standard_conforming_strings, an
 * empty search_path, no timeouts, row security off, every XML value accepted — and `settings`. Its
 * client_encoding is UTF8, not the archive's: the statements name the tables in Unicode (the
 * archive's names decoded), and each COPY says the encoding of its rows ({@link copyStatement}).
 */
export function copySessionSetup(
  toc: readonly ArchiveTocEntry[],
  settings: readonly [string, string][] = [],
): string[] {
  return [
    "SET client_encoding = 'UTF8'",
    ...toc
      .filter((e) => e.desc === 'STDSTRINGS' && e.defn)
      .map((e) => (e.defn as string).trim().replace(/;$/, '')),
    "SELECT pg_catalog.set_config('search_path', '', false)",
    'SET statement_timeout = 0',
    'SET lock_timeout = 0',
    'SET idle_in_transaction_session_timeout = 0',
    'SET check_function_bodies = false',
    'SET xmloption = content',
    'SET client_min_messages = warning',
    'SET row_security = off',
    ...settings.map(([name, value]) => `SET ${name} = ${quoteLiteral(value)}`),
  ];
}

/**
 * The statement a session loads a TABLE DATA entry's rows with: pg_dump's `COPY … FROM stdin;`,
 * sent in UTF-8 by a session of {@link copySessionSetup}, with the archive's `encoding` named when
 * it is another: the rows stay the archive's bytes, which the server reads in that encoding (as
 * pg_restore's sessions, whose client_encoding it is).
 */
export function copyStatement(
  copyStmt: string,
  encoding: string | undefined,
  code: PgferryErrorCode = 'RestoreFailed',
): string {
  if (encoding === undefined || encoding === 'UTF8') return copyStmt;
  const from = /\s+FROM stdin;\s*$/.exec(copyStmt);
  if (!from) throw new PgferryError(code, `a COPY statement not of pg_dump's form: ${copyStmt.trim()}`);
  return `${copyStmt.slice(0, from.index)} FROM stdin WITH (ENCODING ${quoteLiteral(encoding)});`;
}

/**
 * Why this archive's data cannot be loaded by {@link CopyStream} (data that is not a table's COPY
 * text: large objects), or undefined.
 */
export function notCopyData(toc: readonly ArchiveTocEntry[]): string | undefined {
  const other = toc.find((e) => e.hadDumper && !(e.desc === 'TABLE DATA' && e.copyStmt));
  return other ? `${other.desc ?? 'an entry'} ${other.tag ?? other.dumpId} is not COPY data` : undefined;
}

/**
 * Why this process's COPY sessions cannot name this archive's tables and columns: its encoding has
 * no exact decoder here (`namesUndecodable`), or an entry's name is not exactly decodable from it
 * (see core/postgres/server-encodings.ts). Undefined when every name was read exactly; pg_restore
 * loads the others, sending the names' bytes as they are.
 */
export function namesNotExact(toc: readonly ArchiveTocEntry[]): string | undefined {
  const encoding = archiveEncoding(toc);
  const undecodable = namesUndecodable(encoding);
  if (undecodable) return undecodable;
  const entry = toc.find((e) => e.undecodable);
  return entry
    ? `${describeEntry(entry)} has a name with no exact Unicode equivalent in its encoding ${encoding ?? 'UTF8'}`
    : undefined;
}

/** One table of the stream: its text not yet dealt, and what its sessions loaded. */
interface TableLoad {
  dumpId: number;
  name: string;
  copyStmt: string;
  /** Bytes of its text dealt so far. */
  sent: number;
  /** The session its first pieces go to. */
  home: Session | undefined;
  /** Rows loaded, from the command tags of its COPYs that have ended. */
  rows: number;
  /** Pieces dealt whose COPY has not ended yet. */
  unfinished: number;
  /** The stream has passed its end. */
  ended: boolean;
  /** `onTableLoaded` was told. */
  told: boolean;
}

interface Piece {
  table: TableLoad;
  bytes: Buffer;
  /** The batch the piece lies in, to be a batch again once the piece is sent. */
  batch?: Buffer;
}

/** A session's COPY of a table: the pieces written to it. */
interface Copy {
  table: TableLoad;
  stream: ReturnType<typeof copyFrom>;
  /** Settled once the server has ended it (its rows committed), or it failed. */
  ended: Promise<void>;
  pieces: number;
}

interface Session {
  index: number;
  queue: Piece[];
  queued: number;
  /** Wakes the session's worker waiting for a piece (or for the end). */
  wake: (() => void) | undefined;
  closed: boolean;
}

/**
 * Loads the table data of the archive it listens to (see the module's comment). Call `start`
 * with the TOC before any data arrives, give `ready` to the stream (`ArchiveRowCounter`), then
 * `finish` once the stream has ended; `close` in any case.
 */
export class CopyStream implements TableDataListener {
  private readonly pieceBytes: number;
  private readonly spreadBytes: number;
  private readonly limit: number;
  private readonly code: PgferryErrorCode;
  private readonly sessions: Session[];
  /** The sessions connected, each as soon as its connect resolves. */
  private readonly clients: Client[] = [];
  /** Every session's connect, settled or not: `close` waits for those still connecting. */
  private readonly connecting: Promise<unknown>[] = [];
  private readonly tables = new Map<number, TableLoad>();
  private entries = new Map<number, ArchiveTocEntry>();
  /** The archive's encoding, its rows' (the COPYs name it). */
  private encoding: string | undefined;
  /** The table being read and its text not yet cut into a piece: batch[0, batchLength). */
  private current: TableLoad | undefined;
  private batch: Buffer;
  private batchLength = 0;
  /**
   * The session that was dealt the start of a row the batch could not hold: it is dealt the rest
   * of that row too, so that its COPY receives the row whole (no other session's rows inside it).
   */
  private rowSession: Session | undefined;
  private readonly batchCapacity: number;
  /**
   * Batches whose pieces have been sent, to be batches again: the text passes through a few
   * buffers rather than a new one per piece, whose garbage collection cost ~0.3 CPU s per 540 MB.
   */
  private readonly spare: Buffer[] = [];
  private queued = 0;
  private next = 0;
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private workers: Promise<void>[] | undefined;
  /** `tablesReady` has resolved. */
  private tablesCreated = false;
  private failure: Error | undefined;
  private readonly failed: Promise<never>;
  private rejectFailed: (err: Error) => void = () => undefined;

  constructor(private readonly opts: CopyStreamOptions) {
    this.pieceBytes = opts.pieceBytes ?? 256 * 1024;
    this.spreadBytes = opts.spreadBytes ?? 4 * 1024 * 1024;
    this.limit = Math.max(1, opts.sessions) * (opts.queuedBytes ?? 4 * 1024 * 1024);
    this.code = opts.errorCode ?? 'RestoreFailed';
    this.batchCapacity = this.pieceBytes + 64 * 1024;
    this.batch = Buffer.allocUnsafe(this.batchCapacity);
    this.sessions = Array.from({ length: Math.max(1, opts.sessions) }, (_, index) => ({
      index,
      queue: [],
      queued: 0,
      wake: undefined,
      closed: false,
    }));
    this.failed = new Promise<never>((_, reject) => {
      this.rejectFailed = reject;
    });
    this.failed.catch(() => undefined);
  }

  /**
   * The TOC is read: the sessions connect and make their settings; they start loading once
   * `tablesReady` resolves (its rejection fails the load).
   */
  start(toc: readonly ArchiveTocEntry[], tablesReady: Promise<void>): void {
    if (this.workers) throw new Error('CopyStream.start called twice');
    const other = notCopyData(toc) ?? namesNotExact(toc);
    if (other) throw new PgferryError(this.code, `the archive's data cannot be loaded by COPY: ${other}`);
    this.entries = new Map(toc.map((e) => [e.dumpId, e]));
    this.encoding = archiveEncoding(toc);
    const setup = copySessionSetup(toc, this.opts.settings).join(';\n');
    tablesReady.then(
      () => {
        // A table with no rows may have passed before the tables existed.
        this.tablesCreated = true;
        for (const table of this.tables.values()) this.loadedYet(table);
      },
      (err: unknown) => this.fail(err),
    );
    this.workers = this.sessions.map((session) =>
      this.work(session, setup, tablesReady).catch((err: unknown) => this.fail(err)),
    );
  }

  /** Undefined while the queues have room; else a promise that resolves once they have. */
  ready(): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (this.queued <= this.limit) return undefined;
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  data(table: TableDataRows, buf: Buffer, ranges: Float64Array, count: number): void {
    if (this.failure) return;
    if (this.current?.dumpId !== table.dumpId) this.current = this.tableLoad(table);
    const load = this.current;
    const last = 2 * count;
    for (let r = 0; r < last; r += 2) {
      // The rows that leave the batch short of a piece, in a loop of their own (pg_dump's chunk a row).
      const batch = this.batch;
      let length = this.batchLength;
      for (; r < last && length + ranges[r + 1] - ranges[r] < this.pieceBytes; r += 2) {
        length += buf.copy(batch, length, ranges[r], ranges[r + 1]);
      }
      this.batchLength = length;
      if (r < last) this.add(load, buf, ranges[r], ranges[r + 1]);
    }
  }

  end(table: TableDataRows): void {
    if (this.failure) return;
    const load = this.current?.dumpId === table.dumpId ? this.current : this.tableLoad(table);
    this.current = undefined;
    // The end marker: `\.` on a line of its own, then empty lines (the scanner checked it).
    const batch = this.batch;
    let end = this.batchLength;
    while (end > 0 && batch[end - 1] === NEWLINE) end--;
    const marker = end - 2;
    if (
      marker < 0 ||
      batch[marker] !== 0x5c ||
      batch[marker + 1] !== 0x2e ||
      (marker > 0 ? batch[marker - 1] !== NEWLINE : this.rowSession !== undefined)
    ) {
      throw new PgferryError(this.code, `the data of ${load.name} does not end with COPY's end marker`);
    }
    this.batchLength = marker;
    if (marker > 0) this.deal(load, ...this.takePiece(marker));
    this.batchLength = 0;
    load.ended = true;
    this.loadedYet(load);
  }

  /**
   * Once the stream has ended: every session's last COPY ended, each table's rows (by its TABLE
   * DATA entry's dumpId) as its COPYs' command tags sum them.
   */
  async finish(): Promise<Map<number, number>> {
    if (!this.workers)
      throw this.failure ?? new PgferryError(this.code, 'the archive had no table of contents');
    for (const session of this.sessions) {
      session.closed = true;
      session.wake?.();
    }
    await Promise.race([Promise.all(this.workers), this.failed]);
    if (this.failure) throw this.failure;
    return new Map([...this.tables.values()].map((t) => [t.dumpId, t.rows]));
  }

  /** The load's failure (a session's, the tables' creation, an abort), once it failed. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Stops the load (its sessions end, their COPYs rolled back); the reason is the error. */
  abort(reason: unknown): void {
    this.fail(reason);
  }

  /** Ends every session, those still connecting once they have connected (or failed to). */
  async close(): Promise<void> {
    await Promise.allSettled(this.connecting);
    await Promise.all(this.clients.map((c) => endQuietly(c)));
  }

  private tableLoad(table: TableDataRows): TableLoad {
    const entry = this.entries.get(table.dumpId);
    const name = `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
    if (!entry?.copyStmt) throw new PgferryError(this.code, `no COPY statement for the data of ${name}`);
    const load = {
      dumpId: table.dumpId,
      name,
      copyStmt: copyStatement(entry.copyStmt, this.encoding, this.code),
      sent: 0,
      home: undefined,
      rows: 0,
      unfinished: 0,
      ended: false,
      told: false,
    };
    this.tables.set(table.dumpId, load);
    return load;
  }

  /**
   * Adds buf[start, end) to the batch, cut into a piece whenever it holds a piece's bytes. A row
   * longer than the batch is dealt in pieces of its own as it passes ({@link cutRow}): the batch
   * never grows, whatever the longest row (a bytea value of hundreds of MB is twice as much text).
   */
  private add(load: TableLoad, buf: Buffer, start: number, end: number): void {
    while (start < end) {
      if (this.batchLength === this.batch.length) {
        this.cut(load);
        if (this.batchLength === this.batch.length) this.cutRow(load);
      }
      const length = Math.min(end - start, this.batch.length - this.batchLength);
      buf.copy(this.batch, this.batchLength, start, start + length);
      this.batchLength += length;
      start += length;
      if (this.batchLength >= this.pieceBytes) this.cut(load);
    }
  }

  /** Deals the batch's whole lines but the last few bytes (where the end marker may begin). */
  private cut(load: TableLoad): void {
    if (this.batchLength <= MARKER_ROOM) return;
    const cut = this.batch.lastIndexOf(NEWLINE, this.batchLength - MARKER_ROOM - 1);
    if (cut < 0) return;
    this.deal(load, ...this.takePiece(cut + 1));
  }

  /**
   * A full batch with no line end in it (but maybe in its last few bytes) is part of one row: dealt
   * as it is, but those bytes, to the session that is to have the rest of the row
   * ({@link rowSession}), in order, before anything else of the stream.
   */
  private cutRow(load: TableLoad): void {
    this.rowSession = this.deal(load, ...this.takePiece(this.batchLength - MARKER_ROOM));
  }

  /**
   * The batch's first `bytes` as a piece: a large piece is the batch itself (its rest moved to a
   * new batch: each byte is copied once), a small one (the end of a small table) a copy of its
   * own, so that a queue of small tables' pieces does not hold a batch each.
   */
  private takePiece(bytes: number): [Buffer, Buffer?] {
    const rest = this.batchLength - bytes;
    if (bytes < this.pieceBytes / 4) {
      const piece = Buffer.allocUnsafe(bytes);
      this.batch.copy(piece, 0, 0, bytes);
      this.batch.copyWithin(0, bytes, this.batchLength);
      this.batchLength = rest;
      return [piece];
    }
    const full = this.batch;
    this.batch = this.spare.pop() ?? Buffer.allocUnsafe(this.batchCapacity);
    full.copy(this.batch, 0, bytes, this.batchLength);
    this.batchLength = rest;
    return [full.subarray(0, bytes), full];
  }

  /** Queues a piece to a session, which it returns. */
  private deal(load: TableLoad, bytes: Buffer, batch?: Buffer): Session {
    const session =
      this.rowSession ?? (load.home && load.sent < this.spreadBytes ? load.home : this.leastLoaded());
    // Any row begun in another piece ends in this one (but for `cutRow`'s, which sets it again).
    this.rowSession = undefined;
    load.home ??= session;
    load.sent += bytes.length;
    load.unfinished++;
    session.queue.push({ table: load, bytes, batch });
    session.queued += bytes.length;
    this.queued += bytes.length;
    session.wake?.();
    return session;
  }

  /** The session with the fewest bytes queued; among equals, the one after the last chosen. */
  private leastLoaded(): Session {
    const n = this.sessions.length;
    let best = this.sessions[this.next % n];
    for (let k = 1; k < n; k++) {
      const s = this.sessions[(this.next + k) % n];
      if (s.queued < best.queued) best = s;
    }
    this.next = best.index + 1;
    return best;
  }

  /** One session: connected and set up, then its queue's pieces written to its COPYs in order. */
  private async work(session: Session, setup: string, tablesReady: Promise<void>): Promise<void> {
    const connected = this.opts.connect().then((c) => {
      this.clients.push(c);
      return c;
    });
    this.connecting.push(connected);
    const client = await connected;
    client.on('error', (err) => this.fail(err));
    if (this.failure) {
      // Connected after the failure, which ended the sessions connected then: ended here.
      void endQuietly(client);
      throw this.failure;
    }
    await client.query(setup);
    await Promise.race([tablesReady, this.failed]);
    let copy: Copy | undefined;
    // The batches of the pieces written, free once the client's socket has handed all it was
    // given to the kernel (its 'drain', or nothing left after a write) and the COPY stream holds
    // none back (before the server accepts the COPY, it does).
    const socket = (client as unknown as { connection: { stream: Writable } }).connection.stream;
    let sent: Buffer[] = [];
    const recycle = () => {
      if (!sent.length || socket.writableLength > 0 || copy?.stream.writableLength) return;
      // As many as the queues hold (their bound) and the sessions are sending.
      const room = Math.ceil(this.limit / this.batchCapacity) + 2 * this.sessions.length - this.spare.length;
      if (room > 0) this.spare.push(...sent.slice(0, room));
      sent = [];
    };
    socket.on('drain', recycle);
    for (;;) {
      if (this.failure) throw this.failure;
      const piece = session.queue.shift();
      if (!piece) {
        if (session.closed) break;
        await new Promise<void>((resolve) => {
          session.wake = resolve;
        });
        session.wake = undefined;
        continue;
      }
      if (copy?.table !== piece.table) {
        // The next COPY once this one has ended (a client runs one statement at a time).
        if (copy) await this.endCopy(copy);
        copy = this.startCopy(client, piece.table);
      }
      const flowing = copy.stream.write(piece.bytes);
      copy.pieces++;
      if (piece.batch) sent.push(piece.batch);
      if (!flowing) await Promise.race([once(copy.stream, 'drain'), this.failed]);
      recycle();
      session.queued -= piece.bytes.length;
      this.queued -= piece.bytes.length;
      if (this.queued <= this.limit / 2) this.release();
    }
    if (copy) await this.endCopy(copy);
  }

  private startCopy(client: Client, table: TableLoad): Copy {
    const stream = client.query(copyFrom(table.copyStmt));
    const copy: Copy = { table, stream, ended: Promise.resolve(), pieces: 0 };
    copy.ended = new Promise<void>((resolve, reject) => {
      stream.on('finish', resolve);
      stream.on('error', reject);
    }).then(
      () => {
        table.rows += stream.rowCount;
        table.unfinished -= copy.pieces;
        this.loadedYet(table);
      },
      (err: unknown) => this.fail(err, table),
    );
    return copy;
  }

  /** Tells `onTableLoaded` once the table's rows are all loaded. */
  private loadedYet(table: TableLoad): void {
    if (!table.ended || table.unfinished > 0 || table.told || !this.tablesCreated || this.failure) return;
    table.told = true;
    this.opts.onTableLoaded?.(table.name);
  }

  private async endCopy(copy: Copy): Promise<void> {
    copy.stream.end();
    await Promise.race([copy.ended, this.failed]);
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
  }

  private fail(err: unknown, table?: TableLoad): void {
    if (this.failure) return;
    this.failure =
      err instanceof PgferryError
        ? err
        : new PgferryError(
            this.code,
            `loading ${table ? `the data of ${table.name}` : 'the data'} failed: ${errorMessage(err).split('\n')[0]}`,
            { cause: err },
          );
    this.rejectFailed(this.failure);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(this.failure);
    for (const session of this.sessions) session.wake?.();
    // Ended sessions roll their COPYs back; the caller's close() waits for them.
    for (const client of this.clients) void endQuietly(client);
  }
}
