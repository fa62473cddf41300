/**
 * Whole servers, locally: a backup set's three steps (core/backup-set.ts) — list the databases,
 * back each up through the backup workflow with at most `parallel` at once (a Map), record the
 * set — and a set's restore and verification, member by member through their workflows.
 *
 * Why this is not (yet) a state machine of its own: the steps are shaped as one (the first and
 * last are plain functions a Lambda step would call, the middle one a Map over the backup workflow,
 * as the restore's SafetyBackup nests it), but a `server-backup` workflow adds two functions and a
 * state machine to the AWS stack, whose resources are being reorganised for hundreds of databases;
 * the AWS side of servers builds it from these steps.
 */
import { availableParallelism } from 'node:os';
import { describeFailures, listSetDatabases, type MemberResult, recordSet } from '../core/backup-set';
import {
  BackupManifestSchema,
  BackupOutcomeSchema,
  type BackupRequestInput,
  BackupRequestSchema,
  type BackupSetManifest,
  type Compression,
  type Connection,
  parsePayload,
  type RestoreOutcome,
  RestoreOutcomeSchema,
  type RestoreRequest,
  RestoreRequestSchema,
  type SetSelection,
  VerifyOutcomeSchema,
  VerifyRequestSchema,
} from '../core/contracts';
import { withCredentials } from '../core/credentials';
import { errorMessage, PgferryError } from '../core/errors';
import { withClient, withMaintenance } from '../core/postgres/connect';
import { countUserObjects, databaseExists } from '../core/postgres/inspect';
import { openStore } from '../core/store';
import { newBackupId } from '../core/store-keys';
import { preflightRestore } from '../lambdas/restore/preflight/preflight';
import type { LocalRunOptions } from './local-executor';
import { parseOutcome, readDocument } from './outcomes';

/** How many members a set backs up at once by default: the cores, at most 4. */
export function defaultSetParallel(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

export interface ServerBackup {
  source: Connection;
  password: string | undefined;
  store: string;
  selection: SetSelection;
  parallel: number;
  compression: Compression;
  withRolePasswords: boolean;
  lockWaitTimeoutMs?: number;
}

/**
 * Backs up a server as a set: every selected database (listed now) through the backup workflow,
 * `parallel` at once, then the set's manifest, written last. A member that fails is recorded as
 * failed, the others go on; an interruption stops the run before the set is recorded (its
 * complete members stay listed as the backups they are).
 */
export async function runServerBackup(
  backup: ServerBackup,
  options: LocalRunOptions & { onMember?: (result: MemberResult) => void } = {},
): Promise<BackupSetManifest> {
  const started = new Date();
  const setId = newBackupId(started);
  const { server, databases } = await listSetDatabases(backup.source, backup.password, backup.selection);
  const { runBackupWorkflow } = await import('./local-executor');
  const results = await mapLimited(databases, backup.parallel, async (database): Promise<MemberResult> => {
    options.signal?.throwIfAborted();
    const input: BackupRequestInput = {
      source: { ...backup.source, database },
      store: backup.store,
      compression: backup.compression,
      withRolePasswords: backup.withRolePasswords,
      ...(backup.lockWaitTimeoutMs === undefined ? {} : { lockWaitTimeoutMs: backup.lockWaitTimeoutMs }),
      origin: 'set',
      setId,
    };
    const request = parsePayload(BackupRequestSchema, input, 'backup request');
    let result: MemberResult;
    try {
      const output = await runBackupWorkflow(request, {
        ...options,
        credentials: { source: backup.password },
        // Progress of several dumps at once would tear one line: members are reported as they end.
        onProgress: undefined,
        onPhase: undefined,
      });
      const outcome = parseOutcome(BackupOutcomeSchema, output, 'backup');
      result = { database, manifest: await readDocument(outcome, BackupManifestSchema, 'manifest') };
    } catch (err) {
      if (options.signal?.aborted) throw err;
      result = { database, error: { name: (err as Error).name ?? 'Error', message: errorMessage(err) } };
    }
    options.onMember?.(result);
    return result;
  });
  return recordSet(openStore(backup.store), {
    setId,
    startedAt: started.toISOString(),
    source: backup.source,
    server,
    selection: backup.selection,
    parallel: backup.parallel,
    results,
  });
}

/** Runs `fn` over `items`, at most `limit` at once, in order of `items`; results in that order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** A set refused for restore or verification when a database failed: its members go one by one. */
function refuseFailedSet(set: BackupSetManifest, what: 'restore' | 'verify'): void {
  if (set.status === 'complete') return;
  throw new PgferryError(
    'InvalidInput',
    `backup set ${set.id} failed (${describeFailures(set)}): ${what} its complete members one by one, ` +
      `pgferry ${what} --backup <id> --name <name> (pgferry show --set ${set.id} lists them)`,
  );
}

/** The members in restore order: the one holding the set's roles first, then by database name. */
function restoreOrder(set: BackupSetManifest) {
  const first = set.members.filter(
    (m) => m.backupId === set.globals?.backupId && m.name === set.globals?.name,
  );
  return [...first, ...set.members.filter((m) => !first.includes(m))];
}

export interface SetRestore {
  store: string;
  /** The target server; its database is only where to connect first. */
  target: Connection;
  password: string | undefined;
  jobs?: number;
}

export interface SetRestoreResult {
  restored: RestoreOutcome[];
  /** The member whose restore failed, if one did (the later ones were not started). */
  failed?: { database: string; message: string };
}

/**
 * Restores a set into a server: refuses, before any change, when a member's database exists on
 * the target with objects of its own (an empty one — a fresh server's `postgres` — is restored
 * into), or when any member's restore preflight refuses; then restores the member holding the
 * roles first, creating the roles the target lacks (`withGlobals`), then the others, one at a time.
 */
export async function restoreSet(
  set: BackupSetManifest,
  restore: SetRestore,
  options: LocalRunOptions = {},
): Promise<SetRestoreResult> {
  refuseFailedSet(set, 'restore');
  const members = restoreOrder(set);
  const existing = await withMaintenance(restore.target, restore.password, async (client) => {
    const found = new Map<string, number>();
    for (const member of members) {
      if (!(await databaseExists(client, member.database))) continue;
      found.set(
        member.database,
        await withClient(restore.target, restore.password, countUserObjects, member.database),
      );
    }
    return found;
  });
  const occupied = [...existing].filter(([, objects]) => objects > 0);
  if (occupied.length) {
    throw new PgferryError(
      'TargetRefused',
      `the target server already has ${occupied.map(([db, n]) => `${db} (${n} objects)`).join(', ')}: ` +
        'a set restores only into databases that are missing or empty; drop them, or restore other members one by one with pgferry restore --backup',
    );
  }
  const requests: RestoreRequest[] = members.map((member) =>
    parsePayload(
      RestoreRequestSchema,
      {
        store: restore.store,
        backup: member.backupId,
        name: member.name,
        target: { ...restore.target, database: member.database },
        // An empty database of the target (a fresh server's postgres) is restored into.
        mode: existing.has(member.database) ? 'clean' : 'create',
        safetyBackup: false,
        withGlobals: true,
        ...(restore.jobs ? { jobs: restore.jobs } : {}),
      },
      'restore request',
    ),
  );
  // Every member's own checks (versions, extensions, locales, …) before the first is restored.
  const env = withCredentials(process.env, { target: restore.password });
  for (const request of requests) await preflightRestore(request, { openStore, env });

  const { runRestoreWorkflow } = await import('./local-executor');
  const restored: RestoreOutcome[] = [];
  for (const request of requests) {
    try {
      const output = await runRestoreWorkflow(request, {
        ...options,
        credentials: { target: restore.password },
      });
      restored.push(parseOutcome(RestoreOutcomeSchema, output, 'restore'));
    } catch (err) {
      if (options.signal?.aborted) throw err;
      return { restored, failed: { database: request.target.database, message: errorMessage(err) } };
    }
  }
  return { restored };
}

export interface MemberVerification {
  database: string;
  backupId: string;
  status: 'passed' | 'failed';
  message?: string;
}

/** Verifies every member of a set, one after another (each in its own throwaway server). */
export async function verifySet(
  set: BackupSetManifest,
  store: string,
  options: LocalRunOptions = {},
): Promise<MemberVerification[]> {
  refuseFailedSet(set, 'verify');
  const { runVerifyWorkflow } = await import('./local-executor');
  const results: MemberVerification[] = [];
  for (const member of set.members) {
    const request = parsePayload(
      VerifyRequestSchema,
      { store, backup: member.backupId, name: member.name },
      'verify request',
    );
    try {
      // A verification that does not pass fails its workflow: an outcome is a pass.
      parseOutcome(VerifyOutcomeSchema, await runVerifyWorkflow(request, options), 'verify');
      results.push({ database: member.database, backupId: member.backupId, status: 'passed' });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      results.push({
        database: member.database,
        backupId: member.backupId,
        status: 'failed',
        message: errorMessage(err),
      });
    }
  }
  return results;
}
