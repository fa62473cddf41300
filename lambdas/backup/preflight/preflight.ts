import { backupCatalogName, checkNameBelongsToServer } from '../../../core/catalog-name';
import { resolvePassword } from '../../../core/connection';
import {
  type BackupPlan,
  type BackupRequest,
  DEFAULT_LOCK_WAIT_TIMEOUT_MS,
  SCHEMA_VERSION,
} from '../../../core/contracts';
import { currentDeployment, type Deployment } from '../../../core/deployment';
import { acquireLease, type Lease, type LeaseOwner } from '../../../core/lease';
import { connectPg, endQuietly } from '../../../core/postgres/connect';
import { isScoped } from '../../../core/postgres/dump-scope';
import { databaseSize, freeConnections, serverInfo, systemIdentifier } from '../../../core/postgres/inspect';
import type { BackupStore } from '../../../core/store';
import { BACKUP_ID_PATTERN, backupPrefix, manifestKey, newBackupId } from '../../../core/store-keys';
import { chooseDumpStrategy, dumpJobsWithin, taskCores } from '../../../core/strategy';
import { backupTaskSize } from '../../../core/task-size';

export interface PreflightDeps {
  openStore: (url: string) => BackupStore;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
  /** The process holding the database's lease for the run (the CLI); none on Lambda. */
  leaseOwner?: LeaseOwner;
  /** The workflow execution: a retried preflight of it gets its own lease (and backup id) back. */
  executionId?: string;
  /** Where this runs (on AWS: the configuration's bindings). */
  deployment?: Deployment;
}

/**
 * Checks everything that can be checked before any byte is written — on AWS that the source is
 * a configured login (before its secret is read), the store accepts writes, the source accepts
 * the login, the server's version is supported, and the catalog name's earlier backups came from
 * this server — and plans the dump. Last, it takes the name's lease (one backup under a name at a
 * time): after every check that can fail, so that any later failure goes through the workflow's
 * Cleanup, which releases it.
 */
export async function preflightBackup(request: BackupRequest, deps: PreflightDeps): Promise<BackupPlan> {
  const now = deps.now?.() ?? new Date();
  const deployment = deps.deployment ?? currentDeployment();
  const { name } = backupCatalogName(deployment, request.source, request.name);
  const store = deps.openStore(request.store);
  const password = await resolvePassword(request.source, 'source', deps.env);
  const client = await connectPg(request.source, password);
  let server: BackupPlan['server'];
  let sizeBytes: number;
  let free: number;
  try {
    const info = await serverInfo(client);
    const id = await systemIdentifier(client);
    server = id === undefined ? info : { ...info, systemIdentifier: id };
    sizeBytes = await databaseSize(client);
    free = await freeConnections(client);
  } finally {
    await endQuietly(client);
  }
  // The write probe leaves nothing behind (a missing local store's folder is created: it holds no
  // backup to disagree with). The name's earlier backups are read after it, so that a store that
  // does not exist yet is not an error.
  await store.checkWritable();
  await checkNameBelongsToServer(
    store,
    name,
    { ...request.source, systemIdentifier: server.systemIdentifier },
    deployment,
  );
  const taskSize = backupTaskSize(sizeBytes);
  // A partial backup is one pg_dump (its scope's patterns select what it holds); else the
  // request's jobs (default: one per two of the task's cores, for a database large enough), within
  // the connections the source accepts (a default shrinks to fit, a request is refused).
  const requested = isScoped(request.scope) ? 1 : request.jobs;
  const strategy = chooseDumpStrategy(sizeBytes, taskCores(taskSize, deployment), requested);
  strategy.jobs = dumpJobsWithin(strategy.jobs, free, requested !== undefined);
  if (strategy.jobs === 1) delete strategy.minSideJobBytes;
  const lease = await acquireLease(store, name, request.backupId ?? newBackupId(now), {
    now,
    owner: deps.leaseOwner,
    executionId: deps.executionId,
  });
  const backupId = lease.backupId;
  await removeAbandonedAttempt(store, name, lease.tookOver);
  return {
    schemaVersion: SCHEMA_VERSION,
    backupId,
    database: name,
    store: store.url,
    source: request.source,
    compression: request.compression,
    withRolePasswords: request.withRolePasswords,
    server,
    minPgDumpMajor: server.major,
    sizeBytes,
    strategy,
    taskSize,
    lockWaitTimeoutMs: request.lockWaitTimeoutMs ?? DEFAULT_LOCK_WAIT_TIMEOUT_MS,
    ...(isScoped(request.scope) ? { scope: request.scope } : {}),
    ...(request.origin ? { origin: request.origin } : {}),
    ...(request.setId ? { setId: request.setId } : {}),
    startedAt: now.toISOString(),
  };
}

/**
 * The run whose lease was just taken over died (its process is gone) or outlived its lease
 * without finishing: whatever it stored without a manifest is a half-written attempt that no one
 * will complete or clean up, so it is removed (with its unfinished multipart uploads). A run that
 * died after writing its manifest left a complete backup, which is kept. (Locally the task of a
 * dead CLI stops with it: PGFERRY_STOP_WITH_PARENT.)
 */
async function removeAbandonedAttempt(
  store: BackupStore,
  database: string,
  tookOver: Lease['tookOver'],
): Promise<void> {
  if (!tookOver || !BACKUP_ID_PATTERN.test(tookOver.backupId)) return;
  try {
    const manifest = await store.getJson(manifestKey(database, tookOver.backupId)).catch(() => 'unreadable');
    if (manifest !== undefined) return;
    await store.deletePrefix(backupPrefix(database, tookOver.backupId));
  } catch {
    // Best effort, after the lease is taken: the attempt is never listed, and prune reports it.
  }
}
