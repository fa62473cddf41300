/**
 * The dump runner: pg_dump of one database, streamed through compression and SHA-256 into the
 * store, with each table's rows counted from the dump's own COPY data as it streams past, and the
 * server's roles and tablespaces beside it. It reports to the record step through
 * `dump-result.json`.
 *
 * pg_dump takes its snapshot and locks as it always does; pgferry adds no lock of its own on any
 * table. A session exports the snapshot and reads the catalog in it (which tables exist, and the
 * version of each one's `pg_class` row); once pg_dump writes its first byte (it holds all its
 * locks by then) a second session reads the same rows again. A table rewritten or altered after
 * the snapshot (see core/snapshot-guard.ts) makes the attempt worthless: it is removed and the
 * dump starts afresh, up to `DUMP_ATTEMPTS` times, then the backup fails naming the table.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import type { z } from 'zod';
import { COMPRESSOR_CHUNK_BYTES, compressionSuffix, createCompressor } from '../../../core/compression';
import { libpqEnv, resolvePassword } from '../../../core/connection';
import {
  type BackupPlan,
  type DatabaseProperties,
  DEFAULT_LOCK_WAIT_TIMEOUT_MS,
  type DumpResult,
  type GlobalsInfoSchema,
  type Requirements,
  SCHEMA_VERSION,
  type StoredObject,
  type TableRowCount,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { Coalesce, Meter } from '../../../core/metering';
import { ArchiveRowCounter, type TableDataRows } from '../../../core/pg-archive';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../core/pg-binaries';
import { connectPg, serverInfo } from '../../../core/postgres';
import { readCollationRequirements, readDatabaseLocale, readLz4Columns } from '../../../core/requirements';
import {
  changedTables,
  type LockHolder,
  lockHolders,
  type TableChange,
  type TableVersion,
  tableVersions,
} from '../../../core/snapshot-guard';
import type { BackupStore } from '../../../core/store';
import { backupObjectKey, dumpResultKey } from '../../../core/store-keys';
import { uploadOptions } from '../../../core/strategy';
import { toolEnv } from './tool-env';

export interface DumpProgress {
  /** Bytes pg_dump has written so far (uncompressed). */
  dumpedBytes: number;
  /** Bytes stored so far (compressed). */
  storedBytes: number;
}

export interface DumpDeps {
  store: BackupStore;
  env: NodeJS.ProcessEnv;
  onProgress?: (progress: DumpProgress) => void;
  /** Called with each child process started, so a signal handler can stop them. */
  onChild?: (child: ChildProcess) => void;
  /** Called before a dump is started afresh: why, and which attempt failed. */
  onRetry?: (reason: string, attempt: number) => void;
}

export type SucceededDumpResult = Extract<DumpResult, { status: 'succeeded' }>;

export const DUMP_OBJECT = 'dump.pgdump';
const GLOBALS_OBJECT = 'globals.sql';

/** How many dumps a backup makes at most when tables keep changing under its snapshot. */
export const DUMP_ATTEMPTS = 3;

/** Runs the dump; on failure records a failed `dump-result.json` (best effort) and rethrows. */
export async function runDump(plan: BackupPlan, deps: DumpDeps): Promise<SucceededDumpResult> {
  try {
    const result = await dump(plan, deps);
    await deps.store.putJson(dumpResultKey(plan.database, plan.backupId), result);
    return result;
  } catch (err) {
    const failed: DumpResult = {
      schemaVersion: SCHEMA_VERSION,
      backupId: plan.backupId,
      status: 'failed',
      error: { name: (err as Error).name ?? 'Error', message: errorMessage(err) },
      finishedAt: new Date().toISOString(),
    };
    await deps.store.putJson(dumpResultKey(plan.database, plan.backupId), failed).catch(() => undefined);
    throw err;
  }
}

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

async function dump(plan: BackupPlan, deps: DumpDeps): Promise<SucceededDumpResult> {
  const password = await resolvePassword(plan.source, 'source', deps.env);
  for (let attempt = 1; ; attempt++) {
    try {
      return await dumpOnce(plan, deps, password);
    } catch (err) {
      if (!(err instanceof TablesChangedError)) throw err;
      // The attempt's object is gone with its failed upload, or removed here: a fresh dump
      // writes the same key.
      await deps.store.deleteObject(backupObjectKey(plan.database, plan.backupId, dumpObjectKey(plan)));
      if (attempt >= DUMP_ATTEMPTS) throw new TablesChangedError(err.changes, attempt);
      deps.onRetry?.(err.message, attempt);
    }
  }
}

/** The dump object's key within the backup's folder. */
export function dumpObjectKey(plan: Pick<BackupPlan, 'compression'>): string {
  return `${DUMP_OBJECT}${compressionSuffix(plan.compression)}`;
}

async function dumpOnce(
  plan: BackupPlan,
  deps: DumpDeps,
  password: string | undefined,
): Promise<SucceededDumpResult> {
  const lockWaitTimeoutMs = plan.lockWaitTimeoutMs ?? DEFAULT_LOCK_WAIT_TIMEOUT_MS;
  const observer = await openObserver(plan.source, password, lockWaitTimeoutMs);
  let snapshotSession: Client | undefined;
  try {
    const server = await serverInfo(observer);
    const pgDump = await choosePgTool('pg_dump', server.major, server.version, deps.env);
    const env = { ...toolEnv(deps.env), ...libpqEnv(plan.source, password) };
    snapshotSession = await connectPg(plan.source, password);
    const snap = await exportSnapshot(snapshotSession, lockWaitTimeoutMs, async (c) => ({
      tables: await tableVersions(c),
      requires: await requirements(c),
      databaseProperties: await readDatabaseProperties(c),
    }));
    const guard = new SnapshotGuard(
      snap.read.then((r) => r.tables),
      observer,
      snap.release,
    );
    const dumped = await streamDump(plan, pgDump, snap.snapshot, env, deps, {
      lockWaitTimeoutMs,
      guard,
      diagnose: (stderr) => lockWaitFailure(stderr, observer, lockWaitTimeoutMs),
    });
    await guard.verify(dumped.tables);
    const catalog = await snap.read;

    const globals = await storeGlobals(plan, await siblingTool(pgDump, 'pg_dumpall'), env, deps);
    return {
      schemaVersion: SCHEMA_VERSION,
      backupId: plan.backupId,
      status: 'succeeded',
      tool: { pgDumpVersion: pgDump.version, pgDumpMajor: pgDump.major },
      objects: [dumped.object, globals.object],
      tables: rowCounts(dumped.tables, catalog.tables),
      globals: globals.info,
      requires: catalog.requires,
      databaseProperties: catalog.databaseProperties,
      uncompressedBytes: dumped.uncompressedBytes,
      finishedAt: new Date().toISOString(),
    };
  } finally {
    await snapshotSession?.end().catch(() => undefined);
    await observer.end().catch(() => undefined);
  }
}

/**
 * A session for reads outside the dump's snapshot (the second look at the catalog, and who holds
 * a lock pg_dump waits for), opened before pg_dump starts so that it answers at once.
 */
export async function openObserver(
  source: BackupPlan['source'],
  password: string | undefined,
  lockWaitTimeoutMs: number,
): Promise<Client> {
  const client = await connectPg(source, password);
  await client.query(`SET lock_timeout = ${Math.round(lockWaitTimeoutMs)}`);
  return client;
}

/**
 * Begins the dump's snapshot on `client` — REPEATABLE READ, READ ONLY, exported for pg_dump —
 * and starts `read` in it, without waiting: pg_dump is to start at once, for the time between the
 * snapshot and pg_dump's locks is when a rewrite can cost a table its rows. `read` must read the
 * catalog only: the session then holds no lock on any table, so it can neither block DDL nor be
 * blocked by it (waits on the catalog itself end after the lock wait timeout). `release` ends the
 * snapshot's transaction once `read` is done; call it when pg_dump has imported the snapshot.
 */
export async function exportSnapshot<T>(
  client: Client,
  lockWaitTimeoutMs: number,
  read: (client: Client) => Promise<T>,
): Promise<{ snapshot: string; read: Promise<T>; release: () => void }> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
  await client.query(`SET LOCAL lock_timeout = ${Math.round(lockWaitTimeoutMs)}`);
  const { rows } = await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot');
  const reading = read(client);
  reading.catch(() => undefined); // awaited by the caller; a failure must not go unhandled meanwhile
  let released = false;
  return {
    snapshot: rows[0].snapshot,
    read: reading,
    release: () => {
      if (released) return;
      released = true;
      reading.then(() => client.query('COMMIT')).catch(() => undefined);
    },
  };
}

/**
 * The second look at the tables' `pg_class` rows, taken as soon as pg_dump writes its first byte
 * (it holds every table lock by then, until it exits), and the verdict once the dump is read.
 * Found early — the TOC and the second look both in, before the data has streamed — a change
 * aborts the stream at once (`signal`).
 */
export class SnapshotGuard {
  private readonly abort = new AbortController();
  private recheck: Promise<Map<number, TableVersion>> | undefined;
  readonly signal = this.abort.signal;

  constructor(
    private readonly atSnapshot: Promise<Map<number, TableVersion>>,
    private readonly observer: Client,
    private readonly onFirstBytes?: () => void,
  ) {}

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
 * The manifest's row counts: one per table whose data the dump holds, named as the catalog names
 * it (the archive holds names in the database's encoding), in schema and name order.
 */
export function rowCounts(dumped: TableDataRows[], catalog: Map<number, TableVersion>): TableRowCount[] {
  return dumped
    .map((t) => {
      const known = catalog.get(t.oid);
      return { schema: known?.schema ?? t.schema, name: known?.name ?? t.name, rows: t.rows };
    })
    .sort(
      (a, b) =>
        Buffer.compare(Buffer.from(a.schema), Buffer.from(b.schema)) ||
        Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)),
    );
}

async function streamDump(
  plan: BackupPlan,
  pgDump: PgToolBinary,
  snapshot: string,
  env: NodeJS.ProcessEnv,
  deps: DumpDeps,
  opts: {
    lockWaitTimeoutMs: number;
    guard: SnapshotGuard;
    diagnose: (stderr: string) => Promise<PgferryError | undefined>;
  },
): Promise<{ object: StoredObject; uncompressedBytes: number; tables: TableDataRows[] }> {
  const args = [
    '--format=custom',
    '--compress=0',
    `--snapshot=${snapshot}`,
    `--lock-wait-timeout=${Math.round(opts.lockWaitTimeoutMs)}`,
    '--no-password',
  ];
  const child = spawn(pgDump.path, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  deps.onChild?.(child);
  const stderr = collectTail(child.stderr);
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;

  let lastReport = 0;
  const { flowing, upload, stored } = storeDumpStream(
    plan,
    child.stdout,
    deps.store,
    (progress) => {
      const now = Date.now();
      if (now - lastReport < 1000) return;
      lastReport = now;
      deps.onProgress?.(progress);
    },
    opts.guard,
  );
  try {
    await Promise.all([flowing, upload]);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    if (opts.guard.signal.aborted) throw opts.guard.signal.reason;
    // When the store failed (full, unwritable), that is the cause, whichever side broke first.
    const storeFailure = await upload.then(
      () => undefined,
      (e: unknown) => e,
    );
    throw (
      (storeFailure === undefined ? await opts.diagnose(stderr()) : undefined) ??
      pgDumpFailure(stderr(), storeFailure ?? err)
    );
  }
  const [code, signal] = await exited;
  // pg_dump may write part of its output and then fail: its exit status is the only truth.
  if (code !== 0) {
    throw (
      (await opts.diagnose(stderr())) ??
      new PgferryError('DumpFailed', `pg_dump failed (${code ?? signal}): ${stderr() || 'no error output'}`)
    );
  }
  const result = stored();
  deps.onProgress?.({ dumpedBytes: result.uncompressedBytes, storedBytes: result.object.bytes });
  return result;
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
}

/**
 * A dump's bytes, compressed and hashed into the store as the backup's dump object (a backup's
 * and a migration's archive alike), its rows counted on the way (`core/pg-archive.ts`). `flowing`
 * (reading, compression and checksum) and `upload` settle apart, so that a caller can tell which
 * side failed; `stored()` describes the object and the tables' rows once both have succeeded.
 */
export function storeDumpStream(
  plan: BackupPlan,
  input: Readable,
  store: BackupStore,
  onProgress?: (progress: DumpProgress) => void,
  watcher: ArchiveWatcher = {},
): {
  flowing: Promise<void>;
  upload: Promise<void>;
  stored: () => { object: StoredObject; uncompressedBytes: number; tables: TableDataRows[] };
} {
  const key = dumpObjectKey(plan);
  const counter = new ArchiveRowCounter({
    onFirstBytes: () => watcher.firstBytes?.(),
    onToc: (toc) =>
      watcher.tocRead?.(toc.filter((e) => e.desc === 'TABLE DATA' && e.hadDumper).map((e) => e.oid)),
    ...(watcher.tocBytes
      ? { onTocBytes: (bytes: Buffer, last: boolean) => watcher.tocBytes?.(bytes, last) }
      : {}),
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
      new Coalesce(COMPRESSOR_CHUNK_BYTES),
      createCompressor(plan.compression),
      hashed,
      ...(watcher.signal ? [{ signal: watcher.signal }] : []),
    ),
    upload: store.upload(backupObjectKey(plan.database, plan.backupId, key), hashed, uploadOptions(plan)),
    stored: () => ({
      object: {
        key,
        kind: 'dump',
        bytes: hashed.bytes,
        sha256: hashed.digest(),
        compression: plan.compression,
      },
      uncompressedBytes: raw.bytes,
      tables: counter.scanner.tables(),
    }),
  };
}

function pgDumpFailure(stderr: string, err: unknown): Error {
  // A store failure is the cause; pg_dump's "broken pipe" that follows it is not.
  if (err instanceof PgferryError) return err;
  if (stderr) return new PgferryError('DumpFailed', `pg_dump failed: ${stderr}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/** pg_dump gave up waiting for a lock: its `--lock-wait-timeout` cancelled the LOCK TABLE. */
export function isLockWaitTimeout(stderr: string): boolean {
  return /canceling statement due to (statement|lock) timeout/i.test(stderr);
}

/** A tool could not get a table lock within the lock wait timeout; the message names the holders. */
export class LockWaitTimeoutError extends PgferryError {}

/**
 * When pg_dump failed because it could not get a lock within the lock wait timeout: an error
 * naming the tables and who holds (or is queued ahead for) their locks now, at the moment of the
 * failure, read through `observer` (a session of the same database). Undefined for any other
 * failure.
 */
export async function lockWaitFailure(
  stderr: string,
  observer: Client | (() => Promise<Client>),
  lockWaitTimeoutMs: number,
  tool = 'pg_dump',
): Promise<PgferryError | undefined> {
  if (!isLockWaitTimeout(stderr)) return undefined;
  const within = `within ${formatMilliseconds(lockWaitTimeoutMs)} (--lock-wait-timeout)`;
  const holders = await readLockHolders(observer);
  if (holders.length === 0) {
    return new LockWaitTimeoutError(
      'DumpFailed',
      `${tool} could not lock its tables ${within}; whoever held the lock has let go since: ${stderr}`,
    );
  }
  const tables = [...new Set(holders.map((h) => `${h.schema}.${h.table}`))];
  return new LockWaitTimeoutError(
    'DumpFailed',
    `${tool} could not lock ${tables.join(', ')} ${within}: ${holders.map(describeHolder).join('; ')}`,
  );
}

async function readLockHolders(observer: Client | (() => Promise<Client>)): Promise<LockHolder[]> {
  if (typeof observer !== 'function') return lockHolders(observer).catch(() => []);
  const client = await observer().catch(() => undefined);
  if (!client) return [];
  try {
    return await lockHolders(client).catch(() => []);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function describeHolder(h: LockHolder): string {
  const details = [
    `user ${h.user ?? '?'}`,
    `application ${JSON.stringify(h.application ?? '')}`,
    h.state ?? 'state unknown',
    ...(h.transactionStart ? [`transaction started ${h.transactionStart}`] : []),
    ...(h.queryStart ? [`last query started ${h.queryStart}`] : []),
  ];
  const how = h.status === 'held' ? 'held' : 'awaited (queued ahead of pg_dump)';
  return `ACCESS EXCLUSIVE lock on ${h.schema}.${h.table} ${how} by pid ${h.pid} (${details.join(', ')})`;
}

/** `2s`, `5min`, `1500ms`: a duration as the user would have written it. */
export function formatMilliseconds(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}min`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * Keeps what a child wrote to stderr, for error messages: three lines from its first error (which
 * say why, e.g. the server's message and its HINT), else its last three lines. Each line is cut
 * at `maxLineChars` (pg_dump quotes whole queries, e.g. a LOCK TABLE of thousands of tables), and
 * only the first and the last lines of a long output are kept.
 */
export function collectTail(stream: Readable, maxLineChars = 400, keepLines = 50): () => string {
  const head: string[] = [];
  const tail: string[] = [];
  let partial = '';
  let cut = false;
  const add = (line: string) => {
    const text = line.trim();
    if (!text) return;
    if (head.length < keepLines) head.push(text);
    else {
      tail.push(text);
      if (tail.length > keepLines) tail.shift();
    }
  };
  stream.on('data', (d: Buffer) => {
    const lines = d.toString().split('\n');
    for (let i = 0; i < lines.length; i++) {
      const last = i === lines.length - 1;
      if (!cut) {
        partial += lines[i];
        if (partial.length > maxLineChars) {
          partial = `${partial.slice(0, maxLineChars)}…`;
          cut = true;
        }
      }
      if (!last) {
        add(partial);
        partial = '';
        cut = false;
      }
    }
  });
  return () => {
    const lines = [...head, ...tail, ...(partial.trim() ? [partial.trim()] : [])];
    const firstError = lines.findIndex((line) => /\berror\b/i.test(line));
    return (firstError < 0 ? lines.slice(-3) : lines.slice(firstError, firstError + 3)).join(' | ');
  };
}

/**
 * What a target must offer to restore this database: its encoding and locale, extensions, roles,
 * collations and lz4 (see core/requirements.ts).
 */
export async function requirements(client: Client): Promise<Requirements> {
  const { encoding, locale } = await readDatabaseLocale(client);
  const extensions = await client.query<{ name: string; version: string }>(
    "SELECT extname AS name, extversion AS version FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
  );
  // Owners of, and roles granted privileges on, the database's objects (not the system's).
  const roles = await client.query<{ role: string }>(`
    WITH objects AS (
      SELECT relowner AS owner, relacl AS acl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      UNION ALL SELECT nspowner, nspacl FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_%'
      UNION ALL SELECT proowner, proacl FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      UNION ALL SELECT typowner, typacl FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      UNION ALL SELECT lomowner, lomacl FROM pg_largeobject_metadata
      UNION ALL SELECT datdba, datacl FROM pg_database WHERE datname = current_database()
    ), oids AS (
      SELECT owner AS oid FROM objects
      UNION SELECT (aclexplode(acl)).grantee FROM objects WHERE acl IS NOT NULL
    )
    SELECT rolname AS role FROM pg_roles WHERE oid IN (SELECT oid FROM oids) ORDER BY 1`);
  return {
    encoding,
    extensions: extensions.rows,
    roles: roles.rows.map((r) => r.role),
    locale,
    collations: await readCollationRequirements(client),
    lz4Columns: await readLz4Columns(client),
  };
}

/** Owner, comment, settings and grants of the database itself. */
export async function readDatabaseProperties(client: Client): Promise<DatabaseProperties> {
  const { rows } = await client.query<{ owner: string; comment: string | null; acl: boolean }>(`
    SELECT pg_get_userbyid(datdba) AS owner, shobj_description(oid, 'pg_database') AS comment,
           datacl IS NOT NULL AS acl
    FROM pg_database WHERE datname = current_database()`);
  const settings = await client.query<{ role: string | null; setting: string }>(`
    SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END AS role, c.setting
    FROM pg_db_role_setting s, unnest(s.setconfig) AS c(setting)
    WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY 1 NULLS FIRST, 2`);
  const grants = await client.query<{ grantee: string; privilege: string; grantable: boolean }>(`
    SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee,
           a.privilege_type AS privilege, a.is_grantable AS grantable
    FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database() ORDER BY 1, 2`);
  return {
    owner: rows[0].owner,
    comment: rows[0].comment,
    settings: settings.rows,
    grants: rows[0].acl ? grants.rows : null,
  };
}

/**
 * Roles and tablespaces (`pg_dumpall --globals-only`). Role passwords only when asked for; where
 * the user cannot read pg_authid (managed services), falls back to none and says so.
 */
export async function storeGlobals(
  plan: BackupPlan,
  pgDumpall: PgToolBinary,
  env: NodeJS.ProcessEnv,
  deps: DumpDeps,
): Promise<{ object: StoredObject; info: z.infer<typeof GlobalsInfoSchema> }> {
  const base = ['--globals-only', '--no-password', '-l', plan.source.database];
  let info: z.infer<typeof GlobalsInfoSchema> = { rolePasswords: plan.withRolePasswords };
  let out = await runCapture(
    pgDumpall,
    plan.withRolePasswords ? base : [...base, '--no-role-passwords'],
    env,
    deps,
  );
  if (out.code !== 0 && plan.withRolePasswords && /permission denied|pg_authid/i.test(out.stderr)) {
    out = await runCapture(pgDumpall, [...base, '--no-role-passwords'], env, deps);
    info = { rolePasswords: false, note: 'role passwords omitted: this user may not read pg_authid' };
  }
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

export async function runCapture(
  tool: PgToolBinary,
  args: string[],
  env: NodeJS.ProcessEnv,
  deps: DumpDeps,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn(tool.path, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  deps.onChild?.(child);
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout: Buffer.concat(chunks), stderr };
}
