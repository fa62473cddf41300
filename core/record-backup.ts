import {
  type BackupManifest,
  type BackupPlan,
  DumpResultSchema,
  parsePayload,
  SCHEMA_VERSION,
} from './contracts';
import { PgferryError } from './errors';
import type { BackupStore } from './store';
import { backupPrefix, dumpResultKey, manifestKey } from './store-keys';
import { PGFERRY_VERSION } from './version';

export interface RecordDeps {
  openStore: (url: string) => BackupStore;
  now?: () => Date;
}

/**
 * Makes a backup complete: checks that the runner succeeded and that every object it reported
 * is in the store with its size, then writes the manifest — last, so that a manifest always
 * describes objects that exist.
 */
export async function recordBackup(plan: BackupPlan, deps: RecordDeps): Promise<BackupManifest> {
  const store = deps.openStore(plan.store);
  const raw = await store.getJson(dumpResultKey(plan.database, plan.backupId));
  if (raw === undefined) {
    throw new PgferryError('RecordFailed', `the dump of ${plan.backupId} left no result in the store`);
  }
  const result = parsePayload(DumpResultSchema, raw, 'dump result');
  if (result.backupId !== plan.backupId) {
    throw new PgferryError('RecordFailed', `dump result belongs to ${result.backupId}, not ${plan.backupId}`);
  }
  if (result.status === 'failed') {
    throw new PgferryError('RecordFailed', `the dump failed: ${result.error.message}`);
  }

  const prefix = backupPrefix(plan.database, plan.backupId);
  const stored = new Map<string, number>();
  for await (const entry of store.list(prefix)) stored.set(entry.key.slice(prefix.length), entry.bytes);
  for (const object of result.objects) {
    const bytes = stored.get(object.key);
    if (bytes !== object.bytes) {
      throw new PgferryError(
        'RecordFailed',
        `object ${object.key} is ${bytes === undefined ? 'missing' : `${bytes} bytes, expected ${object.bytes}`}`,
      );
    }
  }

  const finishedAt = deps.now?.() ?? new Date();
  const manifest: BackupManifest = {
    schemaVersion: SCHEMA_VERSION,
    id: plan.backupId,
    database: plan.source.database,
    name: plan.database,
    status: 'complete',
    startedAt: plan.startedAt,
    finishedAt: finishedAt.toISOString(),
    durationSeconds: backupSeconds(plan.startedAt, finishedAt.toISOString()),
    source: { host: plan.source.host, port: plan.source.port, user: plan.source.user },
    server: plan.server,
    tool: { ...result.tool, pgferryVersion: PGFERRY_VERSION },
    format: plan.strategy.format,
    compression: plan.compression,
    // The pg_dumps that ran: the main archive and each side one (the plan's jobs are at most this).
    strategy: { ...plan.strategy, jobs: result.objects.filter((o) => o.kind !== 'globals').length },
    uncompressedBytes: result.uncompressedBytes,
    objects: result.objects,
    tables: result.tables,
    globals: result.globals,
    requires: result.requires,
    databaseProperties: result.databaseProperties,
    ...(plan.lockWaitTimeoutMs === undefined ? {} : { lockWaitTimeoutMs: plan.lockWaitTimeoutMs }),
    ...(plan.scope ? { scope: plan.scope } : {}),
    origin: plan.origin ?? 'manual',
    ...(plan.setId ? { setId: plan.setId } : {}),
  };
  await store.putJson(manifestKey(plan.database, plan.backupId), manifest);
  return manifest;
}

/**
 * A backup's duration, as its manifest records it (`durationSeconds`) and `list`, `show` and the
 * backup command print it: from its preflight's start to the moment its manifest is written —
 * the run, not the command (which adds Node's start and loading the workflow).
 */
export function backupSeconds(startedAt: string, finishedAt: string): number {
  return Math.max(0, (Date.parse(finishedAt) - Date.parse(startedAt)) / 1000);
}
