/**
 * Backup sets: the backup of a whole server as steps a workflow can run — `listSetDatabases`
 * (which databases, at run time), each member backed up by the backup workflow (one lease each,
 * origin `set`), then `recordSet` (the set's manifest, written last). Locally the CLI runs them
 * (cli/server-backup.ts); the same three steps are what a state machine of them would call (a
 * Lambda step, a Map with a maximum concurrency over the backup workflow, a Lambda step).
 *
 * Reading sets: `readSets` (one listing of `.sets/`, one read per set) and `resolveSet`.
 */

import type { z } from 'zod';
import { normaliseHost } from './catalog-name';
import type { ServerInfoSchema } from './contracts';
import {
  type BackupManifest,
  type BackupSetManifest,
  BackupSetManifestSchema,
  type Connection,
  SCHEMA_VERSION,
  type SetFailure,
  type SetMember,
  type SetSelection,
} from './contracts';
import { PgferryError } from './errors';
import { withMaintenance } from './postgres/connect';
import { connectableDatabases, serverInfo, systemIdentifier } from './postgres/inspect';
import type { BackupStore } from './store';

type ServerInfo = z.infer<typeof ServerInfoSchema>;

import { assertBackupId, BACKUP_ID_PATTERN, catalogNameOf, SETS_FOLDER, setManifestKey } from './store-keys';

/** `*` any run of characters, `?` one; everything else literal. Case-sensitive, as names are. */
export function globMatches(pattern: string, name: string): boolean {
  const source = Array.from(pattern)
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, 'su').test(name);
}

/**
 * The databases a set takes of `all` (the server's connectable, non-template databases): those
 * matching any `include` pattern (no pattern: every one), less the `exclude`d names. Sorted.
 */
export function selectDatabases(all: readonly string[], selection: SetSelection): string[] {
  const excluded = new Set(selection.exclude);
  return all
    .filter((name) => !excluded.has(name))
    .filter((name) => selection.include.length === 0 || selection.include.some((p) => globMatches(p, name)))
    .sort();
}

/** What the first step found: the server, the databases to back up, and every one it has. */
export interface SetDatabases {
  server: ServerInfo;
  databases: string[];
  /** Every connectable, non-template database of the server, selected or not. */
  all: string[];
}

/**
 * Step one: the databases of `server` (its URL's database is only where to connect; `postgres`,
 * else `template1`) that `selection` takes, read now — a database created since the last run is
 * in this one. Refuses a selection that takes none.
 */
export async function listSetDatabases(
  server: Connection,
  password: string | undefined,
  selection: SetSelection,
): Promise<SetDatabases> {
  return withMaintenance(server, password, async (client) => {
    const info = await serverInfo(client);
    const id = await systemIdentifier(client);
    const all = await connectableDatabases(client);
    const databases = selectDatabases(all, selection);
    if (databases.length === 0) {
      throw new PgferryError(
        'InvalidInput',
        `no database of ${server.host}:${server.port} is selected (it has ${all.length}: ${all.join(', ')}); check --include and --exclude`,
      );
    }
    return { server: id === undefined ? info : { ...info, systemIdentifier: id }, databases, all };
  });
}

/** One member's outcome, as the Map's iteration returns it: its manifest, or its error. */
export type MemberResult =
  | { database: string; manifest: BackupManifest }
  | { database: string; error: { name: string; message: string } };

export interface RecordSetInput {
  setId: string;
  startedAt: string;
  source: Connection;
  server: ServerInfo;
  selection: SetSelection;
  parallel: number;
  results: readonly MemberResult[];
  /** On AWS, the server entry's id (the set manifest's `name`). */
  name?: string;
  /** Databases of the previous set the server no longer has (`disappearedSince`). */
  disappeared?: readonly string[];
}

/**
 * Step three: the set's manifest, written last. Failed when a database failed or no member holds
 * the roles; the complete members are named either way, so they stay usable one by one.
 */
export async function recordSet(
  store: BackupStore,
  input: RecordSetInput,
  now: Date = new Date(),
): Promise<BackupSetManifest> {
  const members: SetMember[] = [];
  const failed: SetFailure[] = [];
  let newest: BackupManifest | undefined;
  for (const result of [...input.results].sort((a, b) => (a.database < b.database ? -1 : 1))) {
    if ('error' in result) {
      failed.push({ database: result.database, error: result.error });
      continue;
    }
    const { manifest } = result;
    members.push({ database: manifest.database, name: catalogNameOf(manifest), backupId: manifest.id });
    if (!newest || manifest.finishedAt > newest.finishedAt) newest = manifest;
  }
  const globalsObject = newest?.objects.find((o) => o.kind === 'globals');
  const manifest: BackupSetManifest = {
    schemaVersion: SCHEMA_VERSION,
    kind: 'backup-set',
    id: input.setId,
    status: failed.length === 0 && globalsObject ? 'complete' : 'failed',
    startedAt: input.startedAt,
    finishedAt: now.toISOString(),
    source: { host: input.source.host, port: input.source.port, user: input.source.user },
    server: input.server,
    selection: input.selection,
    parallel: input.parallel,
    members,
    failed,
    ...(input.name === undefined ? {} : { name: input.name }),
    ...(input.disappeared?.length ? { disappeared: [...input.disappeared] } : {}),
    ...(newest && globalsObject
      ? {
          globals: {
            name: catalogNameOf(newest),
            backupId: newest.id,
            key: globalsObject.key,
            sha256: globalsObject.sha256,
            rolePasswords: newest.globals.rolePasswords,
          },
        }
      : {}),
  };
  await store.putJson(setManifestKey(input.setId), BackupSetManifestSchema.parse(manifest));
  return manifest;
}

/** How many of the newest sets `previousSet` reads looking for the server's. */
const PREVIOUS_SET_LOOKBACK = 50;

/**
 * The newest set of the same server: the same server entry (`name`) on AWS; locally, an unnamed
 * set of the same host and port. Reads at most the `PREVIOUS_SET_LOOKBACK` newest sets.
 */
export async function previousSet(
  store: BackupStore,
  name: string | undefined,
  source: { host: string; port: number },
): Promise<BackupSetManifest | undefined> {
  const ids = new Set<string>();
  for await (const entry of store.list(SETS_FOLDER)) {
    const [id, file] = entry.key.slice(SETS_FOLDER.length).split('/');
    if (file === 'manifest.json' && BACKUP_ID_PATTERN.test(id)) ids.add(id);
  }
  const newestFirst = [...ids].sort().reverse().slice(0, PREVIOUS_SET_LOOKBACK);
  const host = normaliseHost(source.host);
  for (const id of newestFirst) {
    const read = await readSet(store, id);
    if (!('manifest' in read)) continue;
    const set = read.manifest;
    const same =
      name !== undefined
        ? set.name === name
        : set.name === undefined &&
          normaliseHost(set.source.host) === host &&
          set.source.port === source.port;
    if (same) return set;
  }
  return undefined;
}

/**
 * The databases `previous` found (members and failures) that the server no longer has (`all`,
 * its databases now, selected or not): dropped, renamed, or no longer connectable. A database
 * only excluded since is still on the server, so it has not disappeared.
 */
export function disappearedSince(previous: BackupSetManifest | undefined, all: readonly string[]): string[] {
  if (!previous) return [];
  const now = new Set(all);
  const found = [...previous.members.map((m) => m.database), ...previous.failed.map((f) => f.database)];
  return [...new Set(found)].filter((database) => !now.has(database)).sort();
}

/** A set folder whose manifest cannot be used: named, never skipped quietly. */
export interface UnreadableSet {
  id: string;
  problem: string;
}

/** Every set of the store with a manifest, newest first, and those whose manifest is unreadable. */
export async function readSets(
  store: BackupStore,
): Promise<{ sets: BackupSetManifest[]; unreadable: UnreadableSet[] }> {
  const ids = new Set<string>();
  for await (const entry of store.list(SETS_FOLDER)) {
    const [id, file] = entry.key.slice(SETS_FOLDER.length).split('/');
    if (file === 'manifest.json' && BACKUP_ID_PATTERN.test(id)) ids.add(id);
  }
  const sets: BackupSetManifest[] = [];
  const unreadable: UnreadableSet[] = [];
  await Promise.all(
    [...ids].map(async (id) => {
      const read = await readSet(store, id);
      if ('manifest' in read) sets.push(read.manifest);
      else if ('problem' in read) unreadable.push({ id, problem: read.problem });
    }),
  );
  sets.sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
  return { sets, unreadable };
}

async function readSet(
  store: BackupStore,
  id: string,
): Promise<{ manifest: BackupSetManifest } | { problem: string } | { missing: true }> {
  let raw: unknown;
  try {
    raw = await store.getJson(setManifestKey(id));
  } catch (err) {
    if (err instanceof SyntaxError) return { problem: 'its manifest is not valid JSON' };
    throw err;
  }
  if (raw === undefined) return { missing: true };
  const parsed = BackupSetManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    return {
      problem: `its manifest is not a set manifest (${issue.path.join('.') || '(root)'}: ${issue.message})`,
    };
  }
  if (parsed.data.id !== id) return { problem: `its manifest describes another set (${parsed.data.id})` };
  return { manifest: parsed.data };
}

/**
 * The set `ref` names: an id, or `latest` — the newest *complete* set (a failed set is named by
 * its id, for its members are restored one by one).
 */
export async function resolveSet(store: BackupStore, ref: string): Promise<BackupSetManifest> {
  if (ref === 'latest') {
    const { sets } = await readSets(store);
    const complete = sets.find((s) => s.status === 'complete');
    if (complete) return complete;
    throw new PgferryError(
      'BackupNotFound',
      sets.length
        ? `no complete backup set in ${store.url} (the newest, ${sets[0].id}, failed: ${describeFailures(sets[0])})`
        : `no backup set in ${store.url}: make one with pgferry backup --all-databases`,
    );
  }
  assertBackupId(ref);
  const read = await readSet(store, ref);
  if ('manifest' in read) return read.manifest;
  if ('problem' in read)
    throw new PgferryError('BackupNotFound', `backup set ${ref} is unreadable: ${read.problem}`);
  throw new PgferryError('BackupNotFound', `backup set ${ref} not found in ${store.url}`);
}

/** `shop (lock timeout: …), crm (…)`, or why a set with no failed database failed. */
export function describeFailures(set: BackupSetManifest): string {
  if (set.failed.length === 0) return set.globals ? 'nothing failed' : 'no member holds the roles';
  return set.failed.map((f) => `${f.database} (${f.error.message})`).join('; ');
}
