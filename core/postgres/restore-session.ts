/**
 * The session settings of the connections that load a dump into a target (restore, verify,
 * migrate): what makes a bulk load fast without changing what is loaded.
 */
import type { Client } from 'pg';
import type { ToastCompression } from '../contracts';
import { offersLz4 } from './requirements';

/**
 * Fast bulk load, safe to lose on a crash (the restore fails and says so): no wait for WAL flushes
 * at each commit. The index builds' sort memory (`maintenance_work_mem`) is the server's own, as
 * `pg_restore`'s sessions get it: pgferry set 512 MB until 2026-12-04, and with it a large btree
 * build's sort cost up to twice the CPU it costs with PostgreSQL's default 64 MB (measured,
 * PostgreSQL 15: a primary key on 15 M integers 5.0 server CPU seconds with 32 or 64 MB, 9.5–12.4
 * with 512 MB, 10.0 with 1 GB; eight indexes on 2 M rows 13.3 with 64 MB against 15.9–19.2 with
 * 512 MB). It is not forced lower either: GIN and pgvector's HNSW builds are faster with more
 * memory, and a server's owner who set it larger chose it for the builds they have. See
 * docs/benchmark.md, "Index builds' sort memory".
 */
const BULK_LOAD_OPTIONS = ['synchronous_commit=off'];

/**
 * What the load's sessions compress TOASTed values with, given what was asked for: `lz4` where the
 * target server offers it (PostgreSQL 14 and later, built with lz4 — as every common package is),
 * else the server's own default. The values are the same either way; lz4 compresses them several
 * times faster than pglz, the default, which measured on the benchmark's database as 13 of the
 * restore's 46 CPU seconds. Columns with a compression method of their own keep it: pg_dump sets
 * it in the table's definition.
 */
export async function chooseToastCompression(
  target: Client,
  wanted: ToastCompression,
): Promise<ToastCompression> {
  if (wanted === 'server-default') return wanted;
  return (await offersLz4(target)) ? 'lz4' : 'server-default';
}

/** `PGOPTIONS` for pg_restore's (and psql's) sessions on the target. */
export function loadSessionOptions(toastCompression: ToastCompression): string {
  const settings =
    toastCompression === 'lz4' ? [...BULK_LOAD_OPTIONS, 'default_toast_compression=lz4'] : BULK_LOAD_OPTIONS;
  return settings.map((s) => `-c ${s}`).join(' ');
}
