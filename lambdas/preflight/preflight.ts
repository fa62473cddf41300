import { resolvePassword } from '../../core/connection';
import { type BackupPlan, type BackupRequest, SCHEMA_VERSION } from '../../core/contracts';
import { connectPg, serverInfo } from '../../core/postgres';
import type { BackupStore } from '../../core/store';
import { newBackupId } from '../../core/store-keys';

export interface PreflightDeps {
  openStore: (url: string) => BackupStore;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
}

/**
 * Checks everything that can be checked before any byte is written — the store accepts writes,
 * the source accepts the login, the server's version is supported — and plans the dump.
 */
export async function preflightBackup(request: BackupRequest, deps: PreflightDeps): Promise<BackupPlan> {
  const now = deps.now?.() ?? new Date();
  const store = deps.openStore(request.store);
  const password = await resolvePassword(request.source, 'source', deps.env);
  const client = await connectPg(request.source, password);
  let server: { version: string; major: number };
  let sizeBytes: number;
  try {
    server = await serverInfo(client);
    const { rows } = await client.query<{ size: string }>(
      'SELECT pg_database_size(current_database()) AS size',
    );
    sizeBytes = Number(rows[0].size);
  } finally {
    await client.end().catch(() => undefined);
  }
  await store.checkWritable();
  return {
    schemaVersion: SCHEMA_VERSION,
    backupId: request.backupId ?? newBackupId(now),
    database: request.source.database,
    store: store.url,
    source: request.source,
    compression: request.compression,
    withRolePasswords: request.withRolePasswords,
    server,
    minPgDumpMajor: server.major,
    sizeBytes,
    strategy: { format: 'custom', jobs: 1 },
    startedAt: now.toISOString(),
  };
}
