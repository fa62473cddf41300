/**
 * Whole servers, locally: a backup set's three steps (core/backup-set.ts) — list the databases,
 * back each up through the backup workflow with at most `parallel` at once (a Map), record the
 * set — and a set's restore and verification, member by member through their workflows.
 *
 * The backup runs the server-backup state machine (lib/server-backup-workflow.ts) through the
 * local executor: the same definition a server entry's schedule starts on AWS.
 */
import { availableParallelism } from 'node:os';
import { describeFailures } from '../core/backup-set';
import {
  BackupOutcomeSchema,
  type BackupSetManifest,
  BackupSetManifestSchema,
  type Compression,
  type Connection,
  parsePayload,
  type RestoreOutcome,
  RestoreOutcomeSchema,
  type RestoreRequest,
  RestoreRequestSchema,
  ServerBackupOutcomeSchema,
  ServerBackupRequestSchema,
  type SetSelection,
  VerifyOutcomeSchema,
  VerifyRequestSchema,
} from '../core/contracts';
import { withCredentials } from '../core/credentials';
import { errorMessage, PgferryError } from '../core/errors';
import { withClient, withMaintenance } from '../core/postgres/connect';
import { countUserObjects, databaseExists } from '../core/postgres/inspect';
import { openStore } from '../core/store';
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

/** A member as it ends: its backup's id, or its error. */
export type MemberEnded =
  | { database: string; backupId: string }
  | { database: string; error: { name: string; message: string } };

/**
 * Backs up a server as a set through the server-backup workflow's own definition (the ASL the
 * AWS stack deploys, run by the local executor): every selected database (listed now) through
 * the backup workflow, `parallel` at once (the Map's maximum concurrency), then the set's
 * manifest, written last. A member that fails is recorded as failed, the others go on; an
 * interruption stops the run before the set is recorded (its complete members stay listed as the
 * backups they are).
 */
export async function runServerBackup(
  backup: ServerBackup,
  options: LocalRunOptions & { onMember?: (result: MemberEnded) => void } = {},
): Promise<BackupSetManifest> {
  const request = parsePayload(
    ServerBackupRequestSchema,
    {
      source: backup.source,
      store: backup.store,
      selection: backup.selection,
      parallel: backup.parallel,
      compression: backup.compression,
      withRolePasswords: backup.withRolePasswords,
      ...(backup.lockWaitTimeoutMs === undefined ? {} : { lockWaitTimeoutMs: backup.lockWaitTimeoutMs }),
    },
    'server backup request',
  );
  const { runServerBackupWorkflow } = await import('./local-executor');
  const output = await runServerBackupWorkflow(request, {
    ...options,
    credentials: { source: backup.password },
    onMember: ({ database, outcome, error }) => {
      if (error) {
        options.onMember?.({
          database,
          error: { name: error.name ?? 'Error', message: errorMessage(error) },
        });
      } else {
        options.onMember?.({
          database,
          backupId: parseOutcome(BackupOutcomeSchema, outcome, 'backup').backupId,
        });
      }
    },
  });
  const outcome = parsePayload(ServerBackupOutcomeSchema, output, 'server backup outcome');
  return readDocument(
    { store: backup.store, key: outcome.manifestKey },
    BackupSetManifestSchema,
    'set manifest',
  );
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
