/**
 * Catalog names: what backups are filed under, and the rule that a name belongs to one server.
 *
 * A backup's folder, its `latest`, its retention and its freshness alarm are those of its catalog
 * name: on AWS the configured database id (the schedules' input and the alarms' dimension),
 * locally `--name`, by default the database's name. A database name alone is not enough: two
 * servers both have an `app`, and a backup of the wrong one filed as `app` would become the real
 * `app`'s `latest`, count in its retention and reset its alarm. So a backup whose server is not the
 * one the name's earlier backups came from is refused, before anything is written.
 *
 * What identifies a server (`sameServer`):
 * - its system identifier (`pg_control_system()`), where both sides could read it: PostgreSQL's
 *   own identity of a cluster, set by initdb and shared by its physical replicas and snapshot
 *   restores. Equal identifiers are the same server whatever the address (a replica, a DNS alias,
 *   an endpoint that moved).
 * - otherwise its address: the host as DNS compares it (no case, no trailing dot, the loopback
 *   names as one) and the port. That is what the configuration and the user name, and it stays
 *   the same across a major-version upgrade in place (which makes a new cluster, so a new
 *   identifier: RDS upgrades do).
 * - except a loopback address or a socket folder, which names a different server on each machine:
 *   there, different identifiers mean different servers (another laptop's `localhost:5432/app`).
 */
import type { DatabaseBinding } from './bindings';
import { newestFirst } from './catalog';
import { type BackupManifest, BackupManifestSchema, type Connection } from './contracts';
import type { Deployment } from './deployment';
import { PgferryError } from './errors';
import { allowedLogin, checkFiledUnder, filedUnder } from './login-policy';
import type { BackupStore } from './store';
import {
  assertCatalogName,
  BACKUP_ID_PATTERN,
  catalogNameOf,
  databaseSegment,
  MANIFEST_FILE,
  MAX_CATALOG_NAME_BYTES,
} from './store-keys';

/** A server as backups record it: its address and, where readable, its system identifier. */
export interface ServerIdentity {
  host: string;
  port: number;
  systemIdentifier?: string;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '0:0:0:0:0:0:0:1']);

/** The host as DNS compares it; every loopback name as `localhost`. */
export function normaliseHost(host: string): string {
  const lower = host
    .toLowerCase()
    .replace(/\.$/, '')
    .replace(/^\[(.*)\]$/, '$1');
  return LOOPBACK.has(lower) || /^127\./.test(lower) ? 'localhost' : lower;
}

/** A loopback address or a unix socket folder: a different server on every machine. */
function machineLocal(host: string): boolean {
  return normaliseHost(host) === 'localhost' || host.startsWith('/');
}

/** Whether `a` and `b` are the same server (see the module's comment). */
export function sameServer(a: ServerIdentity, b: ServerIdentity): boolean {
  const bothKnown = a.systemIdentifier !== undefined && b.systemIdentifier !== undefined;
  if (bothKnown && a.systemIdentifier === b.systemIdentifier) return true;
  if (normaliseHost(a.host) !== normaliseHost(b.host) || a.port !== b.port) return false;
  return !(bothKnown && machineLocal(a.host));
}

function describeServer(server: ServerIdentity): string {
  const id = server.systemIdentifier ? ` (system identifier ${server.systemIdentifier})` : '';
  return `${server.host}:${server.port}${id}`;
}

/**
 * The catalog name a backup of `source` is filed under: on AWS its configured id — a server
 * entry's member `<id>.<database>` — (a request naming another is refused), locally the name asked for, else the database's name.
 */
export function backupCatalogName(
  deployment: Deployment,
  source: Connection,
  requested: string | undefined,
): { name: string; binding?: DatabaseBinding } {
  const binding = allowedLogin(deployment, source, 'backup');
  if (binding) {
    if (requested !== undefined) checkFiledUnder(binding, requested, source.database);
    return { name: filedUnder(binding, source.database), binding };
  }
  const name = requested ?? source.database;
  assertCatalogName(name);
  return { name };
}

/**
 * Locally, the catalog name of a restore's safety backup (a backup of the target before it is
 * replaced): the target database with its server, `<database>@<host>:<port>`, so that it can never
 * be filed under the source's name (the target's database often has the same name) and become
 * its `latest`. On AWS it is the target's configured id.
 */
export function localTargetName(target: Connection): string {
  const name = `${target.database}@${normaliseHost(target.host)}:${target.port}`;
  if (Buffer.byteLength(name, 'utf8') <= MAX_CATALOG_NAME_BYTES) return name;
  // A very long host: keep the database and as much of the address as fits.
  const keep = Array.from(name);
  while (Buffer.byteLength(keep.join(''), 'utf8') > MAX_CATALOG_NAME_BYTES) keep.splice(-2, 1);
  return keep.join('');
}

/**
 * The newest complete backup filed under `name` (its manifest), or `undefined` when there is
 * none. Folders whose manifest is missing or unreadable are passed over: they describe no server.
 */
export async function newestBackupOf(store: BackupStore, name: string): Promise<BackupManifest | undefined> {
  const prefix = `${databaseSegment(name)}/`;
  const ids: string[] = [];
  for await (const entry of store.list(prefix)) {
    const [id, file] = entry.key.slice(prefix.length).split('/');
    if (file === MANIFEST_FILE && BACKUP_ID_PATTERN.test(id)) ids.push(id);
  }
  const manifests: BackupManifest[] = [];
  for (const id of ids.sort().reverse()) {
    const raw = await store.getJson(`${prefix}${id}/${MANIFEST_FILE}`).catch(() => undefined);
    const parsed = BackupManifestSchema.safeParse(raw);
    if (parsed.success && catalogNameOf(parsed.data) === name) {
      manifests.push(parsed.data);
      // Ids sort by time; the first few readable ones decide (startedAt may differ slightly).
      if (manifests.length === 3) break;
    }
  }
  return manifests.sort(newestFirst)[0];
}

/**
 * Refuses to file a backup of `source` under `name` when the name's newest backup came from
 * another server, naming what to do instead: `--name` locally, a new id on AWS.
 */
export async function checkNameBelongsToServer(
  store: BackupStore,
  name: string,
  source: ServerIdentity & { database: string },
  deployment: Deployment,
): Promise<void> {
  const newest = await newestBackupOf(store, name);
  if (!newest) return;
  const earlier: ServerIdentity = {
    host: newest.source.host,
    port: newest.source.port,
    systemIdentifier: newest.server.systemIdentifier,
  };
  if (sameServer(earlier, source)) return;
  const what =
    `the backups filed under ${JSON.stringify(name)} in ${store.url} come from ${describeServer(earlier)} ` +
    `(the newest: ${newest.id}); ${source.database} at ${describeServer(source)} is another server`;
  throw new PgferryError(
    'InvalidInput',
    deployment.onAws
      ? `${what}: give that database a new id in the configuration (its backups are filed under its id) and deploy; nothing was written`
      : `${what}: file its backups under a name of their own with --name (for example --name ${suggestName(source)}); nothing was written`,
  );
}

function suggestName(source: { database: string; host: string; port: number }): string {
  const host = normaliseHost(source.host)
    .split('.')[0]
    .replace(/[^A-Za-z0-9_-]/g, '-');
  return `${source.database}-${host}-${source.port}`.replace(/[^A-Za-z0-9_.-]/g, '-');
}

/**
 * The catalog name a restore or verify request names: `name`, or its earlier spelling `database`
 * (kept so that older inputs and scripts work); both, differing, is refused.
 */
export function requestedName(request: { name?: string; database?: string }): string | undefined {
  if (request.name !== undefined && request.database !== undefined && request.name !== request.database) {
    throw new PgferryError(
      'InvalidInput',
      `name ${JSON.stringify(request.name)} and database ${JSON.stringify(request.database)} differ: database is name's earlier spelling; give one`,
    );
  }
  return request.name ?? request.database;
}
