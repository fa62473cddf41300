import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { localTargetName, requestedName } from '../../../core/catalog-name';
import { createDecompressor, DEFAULT_COMPRESSION } from '../../../core/compression';
import { describeConnection, resolvePassword } from '../../../core/connection';
import {
  type BackupManifest,
  type RestorePlan,
  type RestoreRequest,
  SCHEMA_VERSION,
} from '../../../core/contracts';
import { currentDeployment, type Deployment } from '../../../core/deployment';
import { errorMessage, PgferryError } from '../../../core/errors';
import { createLogger } from '../../../core/logging';
import { allowedLogin } from '../../../core/login-policy';
import { roleNames } from '../../../core/postgres/admin';
import type { ArchiveTocEntry } from '../../../core/postgres/archive';
import {
  droppedByClean,
  readArchiveToc,
  type SelectableEntry,
  unselectedName,
} from '../../../core/postgres/archive-toc';
import { connectMaintenance, endQuietly, withClient } from '../../../core/postgres/connect';
import { dropBlockers, refuseBlockedCleanRestore } from '../../../core/postgres/drop-dependents';
import {
  describeIncompleteDatabase,
  dropDatabaseCommand,
  readIncompleteMark,
  restoringName,
} from '../../../core/postgres/incomplete-database';
import {
  availableExtensions,
  countUserTables,
  databaseExists,
  serverInfo,
} from '../../../core/postgres/inspect';
import { quoteIdent } from '../../../core/postgres/quote';
import {
  describeArchive,
  describeLocale,
  downgradeRisks,
  missingForBackup,
  restoreMajor,
} from '../../../core/postgres/requirements';
import { chooseToastCompression } from '../../../core/postgres/restore-session';
import { unmatchableSelection } from '../../../core/postgres/server-encodings';
import { otherSessions, refuseConnectedSessions } from '../../../core/postgres/target-sessions';
import { checkObjectsPresent, resolveBackup } from '../../../core/resolve-backup';
import type { BackupStore } from '../../../core/store';
import { backupObjectKey, newBackupId } from '../../../core/store-keys';
import { defaultJobs } from '../../../core/strategy';
import { checkRestoreDisk, restoreDiskUse, restoreTaskSize } from '../../../core/task-size';

const logger = createLogger('pgferry-restore-preflight');

export interface RestorePreflightDeps {
  openStore: (url: string) => BackupStore;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Where this runs (on AWS: the configuration's bindings). */
  deployment?: Deployment;
}

/**
 * Everything that can refuse a restore, checked before the target is touched: on AWS that the
 * target is a configured target and its login is bound to it (before its secret is read); the
 * backup is complete, its `--schema`/`--table` names can be matched exactly with its archive's
 * (`unmatchableSelection`, by the database's encoding) and each selects something of it
 * (`refuseEmptySelection`), and its objects are all there, and what the restore writes of them fits the
 * task's disk (`restoreDiskUse`: a streamed create restore, its definitions alone); the target is
 * reachable, not older than the source or the pg_dump that wrote the archive (unless allowed), not
 * the backup's own source (unless forced); the database exists or not as the mode expects; every
 * extension and role the dump needs is available; the server can create the database with the
 * source's encoding and locale and offers the collations and lz4 its objects use. A database
 * pgferry left incomplete is named with the command that removes it. In clean mode, before the
 * safety backup and the download: no other session is connected to the target database (unless
 * `terminateConnections`), and nothing in it that is not in the backup depends on what pg_restore
 * will drop (read from the archive's table of contents, at the start of the stored dump). (The
 * objects' checksums are verified by the runner as it downloads them, also before the target is
 * touched.)
 */
export async function preflightRestore(
  request: RestoreRequest,
  deps: RestorePreflightDeps,
): Promise<RestorePlan> {
  const now = deps.now?.() ?? new Date();
  const deployment = deps.deployment ?? currentDeployment();
  const targetBinding = allowedLogin(deployment, request.target, 'restore-target');
  const store = deps.openStore(request.store);
  const manifest = await resolveBackup(store, request.backup, requestedName(request));
  const unmatchable = unmatchableSelection(manifest.requires?.encoding, request);
  if (unmatchable !== undefined) throw new PgferryError('InvalidInput', unmatchable);
  await checkObjectsPresent(store, manifest);
  // The archive's TOC, read (once) by the checks that need it.
  let tocRead: Promise<ArchiveTocEntry[] | undefined> | undefined;
  const backupToc = () => {
    tocRead ??= readBackupToc(store, manifest);
    return tocRead;
  };
  await refuseEmptySelection(request, manifest, store.url, backupToc);
  const diskUse = restoreDiskUse(manifest, request);
  await checkRestoreDisk({ id: manifest.id, use: diskUse, withLocalServer: false }, deployment, deps.env);

  const target = request.target;
  const password = await resolvePassword(target, 'target', deps.env);
  const client = await connectMaintenance(target, password);
  let plan: RestorePlan;
  try {
    const server = await serverInfo(client);
    const warnings = checkServerMajor(server, manifest, request.allowDowngrade);
    if (isSourceOfBackup(request, manifest) && !request.force) {
      refuse(
        `the target ${describeConnection(target)} is the database this backup was taken from; pass --force to restore over it`,
      );
    }
    await checkTargetDatabase(client, request, password, server.major);
    await checkExtensions(client, manifest);
    await checkRoles(client, request, manifest);
    await checkBackupNeeds(client, server, request, manifest);
    plan = {
      schemaVersion: SCHEMA_VERSION,
      restoreId: newBackupId(now),
      request,
      manifest,
      targetServer: server,
      jobs: request.jobs ?? defaultJobs(deps.env),
      toastCompression: await chooseToastCompression(client, request.toastCompression),
      taskSize: restoreTaskSize(diskUse, false),
      ...(request.mode === 'clean' && request.safetyBackup
        ? {
            safetyBackup: {
              // Filed under the target's own name, never the source's: it must not become the
              // source's latest nor count in its retention.
              name: targetBinding?.id ?? localTargetName(target),
              source: target,
              store: request.store,
              compression: DEFAULT_COMPRESSION,
              withRolePasswords: false,
              origin: 'safety',
            },
          }
        : {}),
      ...(warnings.length ? { warnings } : {}),
      startedAt: now.toISOString(),
    };
  } finally {
    await endQuietly(client);
  }
  // Once the maintenance session has ended: restoring into `postgres`, it would be one of the
  // target database's other sessions, which a clean restore refuses.
  if (request.mode === 'clean') await checkCleanTarget(await backupToc(), request, password);
  return plan;
}

/**
 * Refuses a `--schema` or `--table` name that selects nothing of the backup (`unselectedName`):
 * pg_restore's `-n`/`-t` would restore nothing and succeed. The manifest's tables (those whose rows
 * the backup holds) settle the common case without reading anything; a name they do not hold — a
 * view, a sequence, a table without data, a schema of no table, or a typo — is looked up in the
 * archive's TOC. When that cannot be read here (an lz4 dump where the lz4 tool is missing), the
 * runner refuses the same after the download, before anything is restored.
 */
async function refuseEmptySelection(
  request: RestoreRequest,
  manifest: BackupManifest,
  storeUrl: string,
  backupToc: () => Promise<ArchiveTocEntry[] | undefined>,
): Promise<void> {
  if (!request.schemas.length && !request.tables.length) return;
  const backup = { id: manifest.id, store: storeUrl };
  const tables: SelectableEntry[] = manifest.tables.map((t) => ({
    desc: 'TABLE',
    tag: t.name,
    namespace: t.schema,
  }));
  if (unselectedName(tables, request, backup) === undefined) return;
  const toc = await backupToc();
  const unselected = toc && unselectedName(toc, request, backup);
  if (unselected) throw new PgferryError('InvalidInput', unselected);
}

function refuse(message: string): never {
  throw new PgferryError('TargetRefused', message);
}

/**
 * A target older than the backup's source, or than the pg_dump that wrote its archive, is
 * refused unless `allowDowngrade`; then what will likely fail is returned as warnings.
 */
function checkServerMajor(
  server: { version: string; major: number },
  manifest: BackupManifest,
  allowDowngrade: boolean,
): string[] {
  const needed = restoreMajor(manifest);
  if (server.major >= needed) return [];
  const risks = downgradeRisks(manifest, server.major);
  if (!allowDowngrade) {
    refuse(
      `the target runs PostgreSQL ${server.version} (major ${server.major}), older than this backup needs ` +
        `(${needed}): its archive was written by ${describeArchive(manifest)}; ${risks[0]}. ` +
        `Restore into a PostgreSQL ${needed} or newer server, or pass --allow-downgrade to try anyway`,
    );
  }
  const warnings = [
    `restoring into PostgreSQL ${server.version}, older than this backup needs (${needed}; its archive was written by ` +
      `${describeArchive(manifest)}): ${risks.join('; ')}`,
  ];
  logger.warn('downgrade', { warnings });
  return warnings;
}

/**
 * The target server must be able to create the database as the source's was (encoding, locale,
 * provider) and hold what its objects need (collations, lz4): one line naming what it lacks.
 */
async function checkBackupNeeds(
  client: Client,
  server: { version: string },
  request: RestoreRequest,
  manifest: BackupManifest,
): Promise<void> {
  const missing = await missingForBackup(client, manifest, { createsDatabase: request.mode === 'create' });
  if (missing.length) {
    const locale = manifest.requires?.locale;
    const what = locale ? ` (${describeLocale(manifest.requires?.encoding ?? '?', locale)})` : '';
    refuse(
      `the target server (PostgreSQL ${server.version}) cannot restore backup ${manifest.id} of ${manifest.database}${what}: ` +
        `it lacks ${missing.join('; ')}; nothing was downloaded or created`,
    );
  }
}

function isSourceOfBackup(request: RestoreRequest, manifest: BackupManifest): boolean {
  const local = (host: string) =>
    ['localhost', '127.0.0.1', '::1'].includes(host) ? 'localhost' : host.toLowerCase();
  return (
    local(request.target.host) === local(manifest.source.host) &&
    request.target.port === manifest.source.port &&
    request.target.database === manifest.database
  );
}

async function checkTargetDatabase(
  client: Client,
  request: RestoreRequest,
  password: string | undefined,
  serverMajor: number,
): Promise<void> {
  const name = request.target.database;
  const exists = await databaseExists(client, name);
  const incomplete = exists ? await readIncompleteMark(client, name) : undefined;
  if (incomplete) refuse(describeIncompleteDatabase(name, incomplete, serverMajor));
  if (request.mode === 'create' && exists) {
    refuse(
      `the target database ${name} already exists; choose another name, or use --mode clean to replace its contents`,
    );
  }
  if (request.mode === 'create') {
    // The database a create restore loads into before renaming it (restore-backup.ts): one of
    // another restore into the same target, running or left by a run killed too hard to drop it.
    const loading = restoringName(name);
    if (await databaseExists(client, loading)) {
      const run = await readIncompleteMark(client, loading);
      refuse(
        run
          ? describeIncompleteDatabase(loading, run, serverMajor, name)
          : `the database ${quoteIdent(loading)}, which a restore into ${quoteIdent(name)} loads before renaming it into place, ` +
              `already exists: once no restore into ${quoteIdent(name)} is running, remove it with ` +
              `${dropDatabaseCommand(loading, serverMajor)} and run again`,
      );
    }
  }
  if (request.mode === 'clean') {
    if (!exists) refuse(`the target database ${name} does not exist; use --mode create`);
    const tables = await withClient(request.target, password, countUserTables);
    if (tables > 0 && !request.force) {
      refuse(`the target database ${name} has ${tables} user tables; pass --force to replace them`);
    }
  }
}

async function checkExtensions(client: Client, manifest: BackupManifest): Promise<void> {
  const needed = manifest.requires?.extensions ?? [];
  if (needed.length === 0) return;
  const available = await availableExtensions(client);
  const missing = needed.filter((e) => !available.has(e.name));
  if (missing.length) {
    refuse(
      `the target server does not offer extension${missing.length > 1 ? 's' : ''} the backup needs: ` +
        missing.map((e) => `${e.name} ${e.version}`).join(', '),
    );
  }
}

async function checkRoles(client: Client, request: RestoreRequest, manifest: BackupManifest): Promise<void> {
  const existing = await roleNames(client);
  if (request.role !== undefined && !existing.has(request.role)) {
    refuse(`--role ${quoteIdent(request.role)} does not exist on the target`);
  }
  if (request.withGlobals || (request.noOwner && request.noAcl)) return;
  const missing = (manifest.requires?.roles ?? []).filter((r) => !existing.has(r));
  if (missing.length) {
    refuse(
      `roles that own or are granted objects in the backup do not exist on the target: ${missing.join(', ')}; ` +
        'pass --with-globals to create them, or --no-owner --no-acl to restore without them',
    );
  }
}

/**
 * A clean restore must not wait on other sessions, nor stop midway on a DROP that objects outside
 * the backup depend on: both refused here, before the safety backup and the download. The archive's
 * objects come from the TOC at the start of the stored dump; when it cannot be read here (an lz4
 * dump where the lz4 tool is missing), the runner checks the same after the download, before
 * anything is dropped. With `terminateConnections` the sessions are ended by the runner instead.
 */
async function checkCleanTarget(
  toc: ArchiveTocEntry[] | undefined,
  request: RestoreRequest,
  password: string | undefined,
): Promise<void> {
  await withClient(request.target, password, async (target) => {
    const done = 'nothing was changed or downloaded';
    if (toc) {
      const blockers = await dropBlockers(target, droppedByClean(toc, request));
      if (blockers.length) refuseBlockedCleanRestore(request.target.database, blockers, done);
    }
    const sessions = await otherSessions(target, request.target.database);
    if (sessions.length && !request.terminateConnections) {
      refuseConnectedSessions(request.target.database, sessions, done);
    }
  });
}

/** The TOC of the backup's archive, read from the start of its stored dump; undefined when it cannot be. */
export async function readBackupToc(
  store: BackupStore,
  manifest: BackupManifest,
): Promise<ArchiveTocEntry[] | undefined> {
  const dump = manifest.objects.find((o) => o.kind === 'dump');
  if (!dump) return undefined;
  try {
    const body = await store.download(backupObjectKey(manifest.database, manifest.id, dump.key));
    const decompressed = createDecompressor(dump.compression);
    // Ends (prematurely) once the TOC is read: only the first bytes are transferred. Its end is
    // not waited for: with the zstd decompressor destroyed and input still to come, that end
    // sometimes never came (Node 22.23; why, not found), and about one clean restore in ten hung
    // here until the state's 120 s timeout (test/integration/lambdas/restore/preflight/preflight.test.ts).
    pipeline(body, decompressed).catch(() => undefined);
    try {
      return await readArchiveToc(decompressed);
    } finally {
      body.destroy();
      decompressed.destroy();
    }
  } catch (err) {
    logger.warn('archive TOC unreadable in preflight; the runner checks after the download', {
      error: errorMessage(err),
    });
    return undefined;
  }
}
