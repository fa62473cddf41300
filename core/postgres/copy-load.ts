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
  /** Aborted when the restore failed elsewhere: the sessions end, their COPY rolled back. */
  signal?: AbortSignal;
}

const NEWLINE = 0x0a;
/** Held back at each cut: pg_dump's end marker (`\.` and two empty lines) is never sent as rows. */
const MARKER_ROOM = 8;

/**
 * Loads the table's data in `sessions` COPY sessions, each given every `sessions`-th piece of whole
 * lines (COPY's text format has one row a line; a newline inside a value is escaped). Returns the
 * rows the sessions loaded (their command tags). The first session to fail ends the others (their
 * COPY rolled back) and fails the load with the server's message; so does `signal`, aborted.
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
  const { signal } = load;
  const stopped = () =>
    fail(signal?.reason instanceof Error ? signal.reason : new Error('the restore stopped'));
  signal?.addEventListener('abort', stopped, { once: true });
  try {
    signal?.throwIfAborted();
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
    /** The session a row begun in the last piece goes on in. */
    let held: (typeof streams)[number] | undefined;
    const send = async (piece: Buffer[], partial: boolean) => {
      if (failure) throw failure;
      const sink = held ?? streams[next++ % streams.length];
      held = partial ? sink : undefined;
      let ok = true;
      for (const part of piece) ok = sink.write(part);
      if (!ok) await Promise.race([onceDrained(sink), failed]);
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
    signal?.removeEventListener('abort', stopped);
    await Promise.all(clients.map((client) => endQuietly(client)));
  }
}

function onceDrained(sink: Writable): Promise<void> {
  return new Promise((resolve) => sink.once('drain', resolve));
}

/**
 * Reads the data block at `offset` (chunks: an archive int length, then that many bytes; a zero
 * length ends it) and passes its COPY text to `send` in pieces of whole lines (each piece in one or
 * more buffers, for one session), without pg_dump's end marker. Throws when the block ends early or
 * without the marker.
 *
 * pg_dump writes one chunk a row: the chunks' bodies are moved together inside each buffer read
 * (`copyWithin`, no allocation), and a piece is one buffer's text up to its last newline, the
 * line it ends inside carried to the next piece — each byte is copied once. A buffer with no line
 * end in it lies inside one row (a long value): it is sent as it is, `partial` (the row goes on in
 * the next piece, which must go to the same session), so that no row is ever held whole.
 */
export async function dealArchiveData(
  load: Pick<TableDataLoad, 'dumpFile' | 'offset' | 'intSize' | 'name'>,
  send: (piece: Buffer[], partial: boolean) => Promise<void>,
): Promise<void> {
  const { intSize } = load;
  const intBytes = 1 + intSize;
  const header = Buffer.alloc(intBytes);
  let headerHave = 0;
  let remaining = 0; // bytes of the current chunk's body still to read
  let ended = false;
  /** Text read but not sent: whole buffers' tails (the start of a line), in order. */
  let carry: Buffer[] = [];
  let carryBytes = 0;
  /** The last piece sent ended inside a row. */
  let open = false;
  const stream = createReadStream(load.dumpFile, { start: load.offset, highWaterMark: 1024 * 1024 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let pos = 0;
      let text = 0; // the buffer's text is moved to chunk[0, text)
      while (pos < chunk.length) {
        if (remaining > 0) {
          const n = Math.min(remaining, chunk.length - pos);
          if (text !== pos) chunk.copyWithin(text, pos, pos + n);
          text += n;
          pos += n;
          remaining -= n;
          continue;
        }
        let length: number;
        if (headerHave === 0 && pos + intBytes <= chunk.length) {
          length = 0;
          for (let i = intSize; i >= 1; i--) length = length * 256 + chunk[pos + i];
          if (chunk[pos] !== 0 && length !== 0) throw negative(load.name);
          pos += intBytes;
        } else {
          const n = Math.min(intBytes - headerHave, chunk.length - pos);
          chunk.copy(header, headerHave, pos, pos + n);
          headerHave += n;
          pos += n;
          if (headerHave < intBytes) continue;
          headerHave = 0;
          length = 0;
          for (let i = intSize; i >= 1; i--) length = length * 256 + header[i];
          if (header[0] !== 0 && length !== 0) throw negative(load.name);
        }
        if (length === 0) {
          ended = true;
          break;
        }
        remaining = length;
      }
      if (ended) {
        if (text > 0) carry.push(chunk.subarray(0, text));
        carryBytes += text;
        break;
      }
      // Up to the buffer's last newline, leaving room for the end marker to be held back whole.
      const cut = text > MARKER_ROOM ? chunk.lastIndexOf(NEWLINE, text - MARKER_ROOM - 1) : -1;
      if (cut < 0) {
        if (text <= MARKER_ROOM) {
          if (text > 0) carry.push(chunk.subarray(0, text));
          carryBytes += text;
          continue;
        }
        // Inside a row all the way (but maybe its last bytes): sent on, the row left open.
        const piece = [...carry, chunk.subarray(0, text - MARKER_ROOM)];
        carry = [chunk.subarray(text - MARKER_ROOM, text)];
        carryBytes = MARKER_ROOM;
        open = true;
        await send(piece, true);
        continue;
      }
      const piece = [...carry, chunk.subarray(0, cut + 1)];
      carry = cut + 1 < text ? [chunk.subarray(cut + 1, text)] : [];
      carryBytes = text - cut - 1;
      open = false;
      await send(piece, false);
    }
  } finally {
    stream.destroy();
  }
  if (!ended) throw new PgferryError('RestoreFailed', `the archive ends inside the data of ${load.name}`);
  const out = Buffer.concat(carry, carryBytes);
  // The end marker: `\.` on a line of its own (what was sent ends with a newline), then empty lines.
  let end = out.length;
  while (end > 0 && out[end - 1] === NEWLINE) end--;
  const marker = end - 2;
  if (
    end === out.length ||
    marker < 0 ||
    out[marker] !== 0x5c ||
    out[marker + 1] !== 0x2e ||
    (marker > 0 ? out[marker - 1] !== NEWLINE : open)
  ) {
    throw new PgferryError('RestoreFailed', `the data of ${load.name} does not end with COPY's end marker`);
  }
  if (marker > 0) await send([out.subarray(0, marker)], false);
}

function negative(name: string): PgferryError {
  return new PgferryError('RestoreFailed', `the data of ${name} has a chunk of negative length`);
}
