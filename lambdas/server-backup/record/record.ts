import { type MemberResult, recordSet } from '../../../core/backup-set';
import { memberCatalogName } from '../../../core/bindings';
import { newestBackupOf } from '../../../core/catalog-name';
import {
  BackupManifestSchema,
  type BackupSetManifest,
  parsePayload,
  type ServerBackupOutcome,
  type ServerSetState,
  type SetMemberResult,
} from '../../../core/contracts';
import type { BackupStore } from '../../../core/store';
import { setManifestKey } from '../../../core/store-keys';

export interface RecordServerSetDeps {
  openStore: (url: string) => BackupStore;
  now?: () => Date;
}

export interface RecordedServerSet {
  manifest: BackupSetManifest;
  outcome: ServerBackupOutcome;
  /** Databases found whose newest complete backup is older than `staleAfterHours` (or none). */
  stale: string[];
}

/**
 * A failed iteration's error, as the member's: a nested execution's failure comes as
 * `States.TaskFailed` with the child's description (JSON with its `error` and `cause`) as Cause.
 */
export function memberError(error: { Error?: string; Cause?: string }): { name: string; message: string } {
  const cause = error.Cause ?? '';
  try {
    const child = JSON.parse(cause) as { error?: unknown; cause?: unknown };
    if (
      typeof child === 'object' &&
      child &&
      (typeof child.error === 'string' || typeof child.cause === 'string')
    ) {
      return {
        name: typeof child.error === 'string' ? child.error : (error.Error ?? 'Error'),
        message: typeof child.cause === 'string' ? child.cause : cause,
      };
    }
  } catch {
    // Not a child's description: the error as it is.
  }
  return { name: error.Error ?? 'Error', message: cause || 'the backup failed' };
}

/**
 * The server backup's last step: reads each member's manifest (the nested executions' outputs
 * name them), writes the set's manifest last (core/backup-set.ts `recordSet`, as the local set
 * does), and counts the databases left without a fresh backup: a failed member whose newest
 * complete backup is older than the request's `staleAfterHours`.
 */
export async function recordServerSet(
  input: { set: ServerSetState['set']; members: readonly SetMemberResult[] },
  deps: RecordServerSetDeps,
): Promise<RecordedServerSet> {
  const now = deps.now?.() ?? new Date();
  const { set } = input;
  const { request } = set;
  const store = deps.openStore(request.store);
  const results: MemberResult[] = [];
  for (const member of input.members) {
    if ('outcome' in member) {
      const raw = await store.getJson(member.outcome.key);
      const manifest = parsePayload(BackupManifestSchema, raw, 'member manifest');
      results.push({ database: manifest.database, manifest });
    } else {
      results.push({ database: member.database, error: memberError(member.error) });
    }
  }
  const manifest = await recordSet(
    store,
    {
      setId: set.setId,
      startedAt: set.startedAt,
      source: request.source,
      server: set.server,
      selection: request.selection,
      parallel: request.parallel,
      results,
      ...(request.name === undefined ? {} : { name: request.name }),
      disappeared: set.disappeared,
    },
    now,
  );
  const maxAgeMs = request.staleAfterHours * 3600 * 1000;
  const stale: string[] = [];
  for (const failure of manifest.failed) {
    const name =
      request.name === undefined ? failure.database : memberCatalogName(request.name, failure.database);
    const newest = await newestBackupOf(store, name);
    if (!newest || now.getTime() - Date.parse(newest.finishedAt) > maxAgeMs) stale.push(failure.database);
  }
  const failed = manifest.failed.map((f) => f.database);
  const outcome: ServerBackupOutcome = {
    kind: 'backup-set',
    setId: manifest.id,
    status: manifest.status,
    manifestKey: setManifestKey(manifest.id),
    members: manifest.members.length,
    failed,
    disappeared: set.disappeared,
    ...(manifest.status === 'failed'
      ? {
          cause: failed.length
            ? `backup set ${manifest.id}: ${failed.length} of ${failed.length + manifest.members.length} databases failed (${failed.join(', ')}); the others are complete`
            : `backup set ${manifest.id}: no member holds the server's roles`,
        }
      : {}),
  };
  return { manifest, outcome, stale };
}
