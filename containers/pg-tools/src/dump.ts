/**
 * The dump runner: pg_dump of one database, streamed through compression and SHA-256 into the
 * store, with per-table row counts taken in the same snapshot, and the server's roles and
 * tablespaces beside it. It reports to the record step through `dump-result.json`.
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
  type DumpResult,
  type GlobalsInfoSchema,
  type Requirements,
  SCHEMA_VERSION,
  type StoredObject,
  type TableRowCount,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { Coalesce, Meter } from '../../../core/metering';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../core/pg-binaries';
import { connectPg, quoteIdent, serverInfo } from '../../../core/postgres';
import { readCollationRequirements, readDatabaseLocale, readLz4Columns } from '../../../core/requirements';
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
}

export type SucceededDumpResult = Extract<DumpResult, { status: 'succeeded' }>;

export const DUMP_OBJECT = 'dump.pgdump';
const GLOBALS_OBJECT = 'globals.sql';

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

async function dump(plan: BackupPlan, deps: DumpDeps): Promise<SucceededDumpResult> {
  const password = await resolvePassword(plan.source, 'source', deps.env);
  const client = await connectPg(plan.source, password);
  try {
    // The snapshot pins what pg_dump sees; counting rows in it makes the counts match the dump.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const server = await serverInfo(client);
    const { rows } = await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot');
    const snapshot = rows[0].snapshot;
    const pgDump = await choosePgTool('pg_dump', server.major, server.version, deps.env);
    const env = { ...toolEnv(deps.env), ...libpqEnv(plan.source, password) };

    const [dumpObject, tables, requires, databaseProperties] = await Promise.all([
      streamDump(plan, pgDump, snapshot, env, deps),
      countRows(client),
      requirements(client),
      readDatabaseProperties(client),
    ]);
    await client.query('COMMIT');

    const globals = await storeGlobals(plan, await siblingTool(pgDump, 'pg_dumpall'), env, deps);
    return {
      schemaVersion: SCHEMA_VERSION,
      backupId: plan.backupId,
      status: 'succeeded',
      tool: { pgDumpVersion: pgDump.version, pgDumpMajor: pgDump.major },
      objects: [dumpObject.object, globals.object],
      tables,
      globals: globals.info,
      requires,
      databaseProperties,
      uncompressedBytes: dumpObject.uncompressedBytes,
      finishedAt: new Date().toISOString(),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function streamDump(
  plan: BackupPlan,
  pgDump: PgToolBinary,
  snapshot: string,
  env: NodeJS.ProcessEnv,
  deps: DumpDeps,
): Promise<{ object: StoredObject; uncompressedBytes: number }> {
  const args = ['--format=custom', '--compress=0', `--snapshot=${snapshot}`, '--no-password'];
  const child = spawn(pgDump.path, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  deps.onChild?.(child);
  const stderr = collectTail(child.stderr);
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;

  let lastReport = 0;
  const { flowing, upload, stored } = storeDumpStream(plan, child.stdout, deps.store, (progress) => {
    const now = Date.now();
    if (now - lastReport < 1000) return;
    lastReport = now;
    deps.onProgress?.(progress);
  });
  try {
    await Promise.all([flowing, upload]);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    // When the store failed (full, unwritable), that is the cause, whichever side broke first.
    const storeFailure = await upload.then(
      () => undefined,
      (e: unknown) => e,
    );
    throw pgDumpFailure(stderr(), storeFailure ?? err);
  }
  const [code, signal] = await exited;
  // pg_dump may write part of its output and then fail: its exit status is the only truth.
  if (code !== 0) {
    throw new PgferryError(
      'DumpFailed',
      `pg_dump failed (${code ?? signal}): ${stderr() || 'no error output'}`,
    );
  }
  const result = stored();
  deps.onProgress?.({ dumpedBytes: result.uncompressedBytes, storedBytes: result.object.bytes });
  return result;
}

/**
 * A dump's bytes, compressed and hashed into the store as the backup's dump object (a backup's
 * and a migration's archive alike). `flowing` (compression and checksum) and `upload` settle
 * apart, so that a caller can tell which side failed; `stored()` describes the object once both
 * have succeeded.
 */
export function storeDumpStream(
  plan: BackupPlan,
  input: Readable,
  store: BackupStore,
  onProgress?: (progress: DumpProgress) => void,
): {
  flowing: Promise<void>;
  upload: Promise<void>;
  stored: () => { object: StoredObject; uncompressedBytes: number };
} {
  const key = `${DUMP_OBJECT}${compressionSuffix(plan.compression)}`;
  const raw = new Meter();
  const hashed = new Meter({
    sha256: true,
    onBytes: (storedBytes) => onProgress?.({ dumpedBytes: raw.bytes, storedBytes }),
  });
  return {
    flowing: pipeline(
      input,
      raw,
      new Coalesce(COMPRESSOR_CHUNK_BYTES),
      createCompressor(plan.compression),
      hashed,
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
    }),
  };
}

function pgDumpFailure(stderr: string, err: unknown): Error {
  // A store failure is the cause; pg_dump's "broken pipe" that follows it is not.
  if (err instanceof PgferryError) return err;
  if (stderr) return new PgferryError('DumpFailed', `pg_dump failed: ${stderr}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Keeps the end of what a child wrote to stderr, for error messages: three lines from its first
 * error (which says why, e.g. the server's message), else its last three lines.
 */
export function collectTail(stream: Readable, maxChars = 4000): () => string {
  let text = '';
  stream.on('data', (d: Buffer) => {
    text = (text + d.toString()).slice(-maxChars);
  });
  return () => {
    const lines = text
      .trim()
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => line.trim());
    const firstError = lines.findIndex((line) => /\berror\b/i.test(line));
    return (firstError < 0 ? lines.slice(-3) : lines.slice(firstError, firstError + 3)).join(' | ');
  };
}

/** Row counts of every user table (leaf partitions included), in the dump's snapshot. */
export async function countRows(client: Client): Promise<TableRowCount[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(`
    SELECT n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2`);
  const counts: TableRowCount[] = [];
  for (const t of rows) {
    const { rows: r } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM ONLY ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`,
    );
    counts.push({ schema: t.schema, name: t.name, rows: Number(r[0].n) });
  }
  return counts;
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
