/**
 * One table's data loaded straight from a custom-format archive (`pg_dump -Fc -Z0`) in several COPY
 * sessions of this process: the data block's chunks (see core/postgres/archive.ts) are read where
 * they lie, their COPY text dealt out in pieces of whole lines, in turn, to `sessions` connections
 * (pg-copy-streams). No pg_restore writing a script, no psql per session: the text goes from the
 * archive's file to the servers' sockets with one copy.
 */
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { errorMessage, PgferryError } from '../errors';
import { endQuietly } from './connect';

/** What {@link loadTableData} loads, and how. */
export interface TableDataLoad {
  dumpFile: string;
  /** Where the table's data chunks start (`ArchiveScanner.tableDataOffsets`). */
  offset: number;
  /** The archive's int size (its header's). */
  intSize: number;
  /** The TOC entry's `COPY … FROM stdin;`. */
  copyStmt: string;
  /** Statements each session runs before its COPY (the settings pg_restore's sessions have). */
  setup: string[];
  sessions: number;
  connect: () => Promise<Client>;
  /** The table, for an error message. */
  name: string;
}

/** The text sent to a session at a time, at least (whole lines: up to the last newline in it). */
const PIECE_BYTES = 512 * 1024;
const NEWLINE = 0x0a;
/** Held back at each cut: pg_dump's end marker (`\.` and two empty lines) is never sent as rows. */
const MARKER_ROOM = 8;

/**
 * Loads the table's data in `sessions` COPY sessions, each given every `sessions`-th piece of whole
 * lines (COPY's text format has one row a line; a newline inside a value is escaped). Returns the
 * rows the sessions loaded (their command tags). The first session to fail ends the others (their
 * COPY rolled back) and fails the load with the server's message.
 */
export async function loadTableData(load: TableDataLoad): Promise<number> {
  const clients: Client[] = [];
  let failure: Error | undefined;
  let fail: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = (err) => {
      failure ??= err;
      reject(failure);
    };
  });
  failed.catch(() => undefined);
  try {
    const opened = await Promise.allSettled(
      Array.from({ length: load.sessions }, async () => {
        const client = await load.connect();
        clients.push(client);
        client.on('error', (err) => fail(err));
        if (load.setup.length) await client.query(load.setup.join(';\n'));
        return client;
      }),
    );
    const refused = opened.find((o) => o.status === 'rejected');
    if (refused) throw (refused as PromiseRejectedResult).reason;
    const streams = clients.map((client) => {
      const stream = client.query(copyFrom(load.copyStmt));
      stream.on('error', (err) => fail(err));
      return stream;
    });
    let next = 0;
    const send = async (piece: Buffer) => {
      if (failure) throw failure;
      const sink = streams[next++ % streams.length];
      if (!sink.write(piece)) await Promise.race([onceDrained(sink), failed]);
    };
    await dealArchiveData(load, send);
    await Promise.race([
      Promise.all(
        streams.map(
          (stream) =>
            new Promise<void>((resolve) => {
              stream.end(() => resolve());
            }),
        ),
      ),
      failed,
    ]);
    if (failure) throw failure;
    return streams.reduce((sum, s) => sum + s.rowCount, 0);
  } catch (err) {
    const cause = failure ?? err;
    if (cause instanceof PgferryError) throw cause;
    throw new PgferryError(
      'RestoreFailed',
      `loading ${load.name} in ${load.sessions} sessions failed: ${errorMessage(cause).split('\n')[0]}`,
      { cause },
    );
  } finally {
    await Promise.all(clients.map((client) => endQuietly(client)));
  }
}

function onceDrained(sink: Writable): Promise<void> {
  return new Promise((resolve) => sink.once('drain', resolve));
}

/**
 * Reads the data block at `offset` (chunks: an archive int length, then that many bytes; a zero
 * length ends it) and passes its COPY text to `send` in pieces of whole lines, without pg_dump's
 * end marker. Throws when the block ends early or without the marker.
 */
export async function dealArchiveData(
  load: Pick<TableDataLoad, 'dumpFile' | 'offset' | 'intSize' | 'name'>,
  send: (piece: Buffer) => Promise<void>,
): Promise<void> {
  const intBytes = 1 + load.intSize;
  const header = Buffer.alloc(intBytes);
  let headerHave = 0;
  let remaining = 0; // bytes of the current chunk's body still to read
  let out = Buffer.allocUnsafe(PIECE_BYTES * 2);
  let have = 0;
  let ended = false;
  const cut = async () => {
    const at = have > MARKER_ROOM ? out.lastIndexOf(NEWLINE, have - MARKER_ROOM - 1) : -1;
    if (at < 0) {
      // A line longer than the buffer: a bigger one.
      if (have === out.length) {
        const bigger = Buffer.allocUnsafe(out.length * 2);
        out.copy(bigger, 0, 0, have);
        out = bigger;
      }
      return;
    }
    const piece = out.subarray(0, at + 1);
    const rest = Buffer.allocUnsafe(Math.max(PIECE_BYTES * 2, have - at - 1 + PIECE_BYTES));
    out.copy(rest, 0, at + 1, have);
    have -= at + 1;
    out = rest;
    await send(piece);
  };
  const stream = createReadStream(load.dumpFile, { start: load.offset, highWaterMark: 1024 * 1024 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let pos = 0;
      while (pos < chunk.length && !ended) {
        if (remaining > 0) {
          const n = Math.min(remaining, chunk.length - pos, out.length - have);
          chunk.copy(out, have, pos, pos + n);
          have += n;
          pos += n;
          remaining -= n;
          if (have === out.length) await cut();
          continue;
        }
        const n = Math.min(intBytes - headerHave, chunk.length - pos);
        chunk.copy(header, headerHave, pos, pos + n);
        headerHave += n;
        pos += n;
        if (headerHave < intBytes) continue;
        headerHave = 0;
        let length = 0;
        for (let i = load.intSize; i >= 1; i--) length = length * 256 + header[i];
        if (header[0] !== 0 && length !== 0)
          throw new PgferryError('RestoreFailed', `the data of ${load.name} has a chunk of negative length`);
        if (length === 0) ended = true;
        remaining = length;
        if (have >= PIECE_BYTES) await cut();
      }
      if (ended) break;
    }
  } finally {
    stream.destroy();
  }
  if (!ended) throw new PgferryError('RestoreFailed', `the archive ends inside the data of ${load.name}`);
  // The end marker: `\.` on a line of its own (what was sent ends with a newline), then empty lines.
  let end = have;
  while (end > 0 && out[end - 1] === NEWLINE) end--;
  const marker = end - 2;
  if (
    end === have ||
    marker < 0 ||
    out[marker] !== 0x5c ||
    out[marker + 1] !== 0x2e ||
    (marker > 0 && out[marker - 1] !== NEWLINE)
  ) {
    throw new PgferryError('RestoreFailed', `the data of ${load.name} does not end with COPY's end marker`);
  }
  if (marker > 0) await send(out.subarray(0, marker));
}
