/**
 * Creating an archive's large objects in batches. pg_dump up to 16 writes one `BLOB` entry per
 * large object in the pre-data section: `SELECT pg_catalog.lo_create('<oid>');`, and pg_restore
 * adds `ALTER LARGE OBJECT <oid> OWNER TO <owner>;` (unless `--no-owner`), each statement its own
 * transaction and round trip: on 30,000 objects 6 s of a 12 s restore, the server committing. This
 * process creates them `max_locks_per_transaction` objects (64 by default, at most
 * {@link LARGE_OBJECTS_PER_TRANSACTION}) to a simple query, one transaction each — every `ALTER
 * LARGE OBJECT` holds a lock to its transaction's end, so one transaction for all would exhaust
 * the server's lock table: the batch's `lo_create`s in one statement (one row back: a result per
 * object cost this process ~2.5 KB of short-lived heap each, which a restore of many objects let
 * pile up), then pg_restore's `ALTER LARGE OBJECT … OWNER` of each — before pg_restore restores the
 * rest of the pre-data without them. Their data (`BLOBS`), privileges (`ACL`) and comments stay
 * pg_restore's: they come after, on objects that exist. pg_dump 17's `BLOB METADATA` entries
 * (1,000 objects each, in the data section, restored in parallel by pg_restore) are not touched.
 */
import type { Client } from 'pg';
import { errorMessage, PgferryError } from '../errors';
import type { ArchiveTocEntry } from './archive';
import { endQuietly } from './connect';
import { quoteIdent } from './quote';

/**
 * The most large objects created in one transaction (pg_upgrade's `--transaction-size` for
 * pg_restore 17); fewer where the server's `max_locks_per_transaction` is lower (64 by default).
 */
export const LARGE_OBJECTS_PER_TRANSACTION = 1000;

/**
 * How many large objects `client`'s server takes in one transaction: its lock table holds
 * `max_locks_per_transaction` locks per session on average, and a batch of no more (each
 * `ALTER LARGE OBJECT` holds one to its transaction's end) always fits, whatever else runs; at
 * most {@link LARGE_OBJECTS_PER_TRANSACTION}.
 */
export async function largeObjectsPerTransaction(client: Client): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    "SELECT current_setting('max_locks_per_transaction')::int AS n",
  );
  return Math.max(1, Math.min(LARGE_OBJECTS_PER_TRANSACTION, rows[0].n));
}

/** A `BLOB` line of `pg_restore --list`: `<dumpId>; <tableoid> <oid> BLOB - <oid> <owner>`. */
const BLOB_LINE = /^\d+; \d+ \d+ BLOB - /;

/** The `--list` lines that are pg_dump ≤ 16's `BLOB` entries (one large object each). */
export function isLargeObjectLine(line: string): boolean {
  return BLOB_LINE.test(line);
}

/**
 * Creates the large objects of the TOC's `BLOB` entries `ids` (their owners too, with
 * `withOwners`), in batches, in a session of `connect` set up with `setup` (pg_restore's session
 * settings and `--role`). Throws `RestoreFailed` with the server's message.
 */
export async function createLargeObjects(
  toc: readonly ArchiveTocEntry[],
  ids: ArrayLike<number>,
  opts: {
    connect: () => Promise<Client>;
    setup: string[];
    withOwners: boolean;
    signal?: AbortSignal;
  },
): Promise<void> {
  // `ids` come in the TOC's order (pg_restore lists it so): each found walking on from the last,
  // with no map of the whole TOC held meanwhile (an entry per large object); else looked up.
  let at = 0;
  const entryOf = (id: number): ArchiveTocEntry | undefined => {
    for (let i = at; i < toc.length; i++) {
      if (toc[i].dumpId === id) {
        at = i + 1;
        return toc[i];
      }
    }
    return toc.find((e) => e.dumpId === id);
  };
  /** The batch's objects: their oids, and their owners' statements. */
  const batch = (from: number, to: number): string => {
    const oids: string[] = [];
    const owners: string[] = [];
    for (let i = from; i < to; i++) {
      const id = ids[i];
      const entry = entryOf(id);
      const oid = entry?.tag ?? '';
      if (entry?.desc !== 'BLOB' || !/^\d+$/.test(oid)) {
        throw new Error(`createLargeObjects: entry ${id} is not a large object's BLOB entry`);
      }
      oids.push(oid);
      // As pg_restore: an owner for an entry that names one and can be dropped (`_printTocEntry`).
      if (opts.withOwners && entry.owner && entry.dropped) {
        owners.push(`ALTER LARGE OBJECT ${oid} OWNER TO ${quoteIdent(entry.owner)};`);
      }
    }
    return [
      `SELECT pg_catalog.count(pg_catalog.lo_create(o)) FROM pg_catalog.unnest('{${oids.join(',')}}'::pg_catalog.oid[]) AS o;`,
      ...owners,
    ].join('\n');
  };
  let client: Client | undefined;
  try {
    client = await opts.connect();
    if (opts.setup.length) await client.query(opts.setup.join(';\n'));
    const perTransaction = await largeObjectsPerTransaction(client);
    for (let i = 0; i < ids.length; i += perTransaction) {
      opts.signal?.throwIfAborted();
      // A simple query of several statements runs as one transaction.
      await client.query(batch(i, Math.min(i + perTransaction, ids.length)));
    }
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new PgferryError(
      'RestoreFailed',
      `creating the archive's large objects failed: ${errorMessage(err).split('\n')[0]}`,
      { cause: err },
    );
  } finally {
    await endQuietly(client);
  }
}
