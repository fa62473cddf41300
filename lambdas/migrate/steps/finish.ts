import {
  type CaughtError,
  DumpResultSchema,
  type MigrateDatabaseResult,
  MigrateDatabaseResultSchema,
  type MigratePlan,
  type MigrateReport,
  type MigrateState,
  parsePayload,
  SCHEMA_VERSION,
  SchemaTestResultSchema,
  schemaTestDecision,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { removeLeftDatabase } from '../../../core/postgres/incomplete-database';
import { replicationName } from '../../../core/postgres/logical-replication';
import { runSessionName } from '../../../core/postgres/run-sessions';
import type { BackupStore } from '../../../core/store';
import {
  backupPrefix,
  dumpResultKey,
  manifestKey,
  migrateReportKey,
  migrateResultKey,
  schemaTestResultKey,
} from '../../../core/store-keys';
import { dropRunDatabases, endRunnerSessions, removeReplication, unfreezeSource } from './freeze';

export interface FinishDeps {
  openStore: (url: string) => BackupStore;
  env: NodeJS.ProcessEnv;
}

const seconds = (from: string, to: string) => Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000);

/** The migrate workflow's state with the plan its job holds. */
export type MigrateRun = MigrateState & { plan: MigratePlan };

/**
 * The last step of a migration that succeeded: unfreezes the source, then writes the report
 * beside every database's backup and returns it, with its key beside the first database's.
 */
export async function finishMigration(
  state: MigrateRun,
  deps: FinishDeps,
): Promise<{ report: MigrateReport; key: string }> {
  const { plan } = state;
  const store = deps.openStore(plan.request.store);
  const { online, unfreezeSourceAfter } = plan.request;
  // Online, the source stays read-only after the cutover unless asked: a write to it now would be lost.
  const unfrozenAt =
    state.freeze || (online && unfreezeSourceAfter) ? await unfreezeSource(plan, deps.env) : undefined;
  const databases: MigrateDatabaseResult[] = [];
  for (const db of plan.databases) {
    const raw = await store.getJson(migrateResultKey(db.backup.database, db.backup.backupId));
    databases.push(parsePayload(MigrateDatabaseResultSchema, raw, 'migrate result'));
  }
  const onlineFrozenAt = databases[0]?.online?.frozenAt;
  const first = plan.databases[0].backup;
  const decision = schemaTestDecision(plan);
  const schemaTest = decision.run
    ? parsePayload(
        SchemaTestResultSchema,
        await store.getJson(schemaTestResultKey(first.database, first.backupId)),
        'schema test',
      )
    : undefined;
  const finishedAt = new Date().toISOString();
  const sum = (f: (r: MigrateDatabaseResult) => number) => databases.reduce((n, r) => n + f(r), 0);
  const timings: Record<string, number> = {};
  if (schemaTest) timings.schemaTest = schemaTest.seconds;
  for (const r of databases) {
    for (const [phase, s] of Object.entries(r.timings)) timings[phase] = (timings[phase] ?? 0) + s;
  }
  if (state.record && state.freeze)
    timings.frozenToRecorded = seconds(state.freeze.frozenAt, state.record.recordedAt);
  timings.total = seconds(plan.startedAt, finishedAt);
  const cutover = plan.request.cutover;
  const report: MigrateReport = {
    schemaVersion: SCHEMA_VERSION,
    kind: 'migrate',
    migrateId: plan.migrateId,
    status: 'passed',
    source: {
      host: plan.request.source.host,
      port: plan.request.source.port,
      serverVersion: plan.sourceServer.version,
    },
    target: {
      host: plan.request.target.host,
      port: plan.request.target.port,
      serverVersion: plan.targetServer.version,
    },
    startedAt: plan.startedAt,
    finishedAt,
    estimate: plan.estimate,
    toastCompression: plan.toastCompression,
    timings,
    ...(state.freeze && unfrozenAt
      ? { writeDowntimeSeconds: seconds(state.freeze.frozenAt, unfrozenAt), freeze: state.freeze }
      : {}),
    // Online: from the freeze to the end of the cutover (the record and the cutover's hooks
    // included), when the target takes the writes.
    ...(onlineFrozenAt
      ? { writeDowntimeSeconds: seconds(onlineFrozenAt, finishedAt), sourceLeftFrozen: !unfrozenAt }
      : {}),
    schemaTest: schemaTest
      ? { ...schemaTest, reason: decision.reason }
      : { status: 'skipped', reason: decision.reason },
    sizes: {
      sourceBytes: sum((r) => r.sourceBytes),
      dumpedBytes: sum((r) => r.dumpedBytes),
      storedBytes: sum((r) => r.storedBytes),
    },
    databases,
    roles: {
      created: [
        ...new Set([...(schemaTest?.roles?.created ?? []), ...databases.flatMap((d) => d.roles.created)]),
      ],
      skippedExisting: databases[0]?.roles.skippedExisting ?? [],
      // Always present: a migration says which login roles it left without a password.
      createdWithoutPassword: [
        ...new Set([
          ...(schemaTest?.roles?.createdWithoutPassword ?? []),
          ...databases.flatMap((d) => d.roles.createdWithoutPassword ?? []),
        ]),
      ],
    },
    cutover: {
      secretUpdated: cutover?.secretArn !== undefined,
      servicesScaled: (cutover?.ecsServices ?? []).map((s) => `${s.cluster}/${s.service}`),
      command: cutover?.command !== undefined,
    },
  };
  for (const db of plan.databases) {
    await store.putJson(migrateReportKey(db.backup.database, db.backup.backupId, plan.migrateId), report);
  }
  return { report, key: migrateReportKey(first.database, first.backupId, plan.migrateId) };
}

export interface MigrationFailure {
  error: string;
  /** The failure's message, followed by what the cleanup did and what it could not do. */
  cause: string;
  unfrozen: boolean;
  deletedObjects: number;
  /**
   * Of what `cause` adds, what the cleanup did (a database it dropped); after a stopped migration
   * the run's event carries it (lambdas/api/events/stopped.ts).
   */
  notes: string[];
  /**
   * Of what `cause` adds, what the cleanup left behind (a database, a replication slot, a frozen
   * source, the run's sessions, an incomplete backup), each naming it and what to do; after a
   * stopped migration the run's event carries it and the announcer fails on it (lib/run-events.ts).
   */
  left: string[];
}

/**
 * After any failure: ends the run's sessions left on either server (`endRunnerSessions`), drops
 * its replication (online), drops the target and scratch databases that carry this migration's own
 * incomplete mark (`dropRunDatabases`: a runner killed hard could not), unfreezes the source (always, when the migration was to freeze it: the settings go back to what preflight
 * saw), removes the objects of archived backups that are not complete, so no incomplete backup is
 * ever listed (complete ones are kept), and names the failure — the runner's own error when it
 * left one (on AWS a failed task's cause is ECS's task description) — and what it could not
 * remove (`left`).
 */
export async function cleanupMigration(
  state: MigrateRun,
  caught: CaughtError,
  deps: FinishDeps,
): Promise<MigrationFailure> {
  const { plan } = state;
  const store = deps.openStore(plan.request.store);
  let runnerError: { name: string; message: string } | undefined;
  const first = plan.databases[0].backup;
  const schemaTest = SchemaTestResultSchema.safeParse(
    await store.getJson(schemaTestResultKey(first.database, first.backupId)).catch(() => undefined),
  );
  if (schemaTest.success && schemaTest.data.status === 'failed') {
    runnerError = {
      name: 'Pgferry.SchemaTestFailed',
      message: schemaTest.data.error ?? 'the schema test failed',
    };
  }
  let deletedObjects = 0;
  for (const db of plan.databases) {
    const result = DumpResultSchema.safeParse(
      await store.getJson(dumpResultKey(db.backup.database, db.backup.backupId)).catch(() => undefined),
    );
    if (!runnerError && result.success && result.data.status === 'failed') runnerError = result.data.error;
  }
  let unfrozen = false;
  /** The cause's clauses, in order: what it did (`done`) and what it could not do (`left`). */
  const clauses: string[] = [];
  const done: string[] = [];
  const left: string[] = [];
  /** A note of what the cleanup could not remove: said in the cause, and listed in `left`. */
  const leave = (note: string) => {
    clauses.push(note);
    left.push(note);
  };
  // First, so that nothing the runner left running (a CREATE DATABASE, a COPY) goes on beside
  // what follows, or after it.
  for (const side of ['target', 'source'] as const) {
    try {
      const remaining = await endRunnerSessions(plan, side, deps.env);
      if (remaining) {
        leave(
          `${remaining} session(s) of the run (application_name '${runSessionName(plan.migrateId)}') are still on the ${side} server`,
        );
      }
    } catch (err) {
      // A server that cannot be reached (often what the run failed on) has nothing to end from here.
      if (!(err instanceof PgferryError && err.code === 'SourceUnreachable')) {
        leave(`could not end the run's sessions on the ${side} server: ${errorMessage(err)}`);
      }
    }
  }
  if (plan.request.online) {
    // The task drops them itself; this covers a task that was killed or crashed.
    try {
      await removeReplication(plan, deps.env);
    } catch (err) {
      const name = replicationName(plan.migrateId);
      const { host, port } = plan.request.source;
      leave(
        `THE REPLICATION SLOT ${name} MAY BE LEFT ON THE SOURCE SERVER ${host}:${port}: ${errorMessage(err)}; ` +
          `remove it, in database ${plan.databases[0].source.database}, with ` +
          `SELECT pg_drop_replication_slot('${name}'); DROP PUBLICATION IF EXISTS ${name};`,
      );
    }
  }
  // After the replication is removed: a database with a subscription cannot be dropped.
  try {
    for (const database of await dropRunDatabases(plan, deps.env)) {
      if (database.fate === 'dropped') {
        const note = `the database ${database.database} it left incomplete was dropped`;
        clauses.push(note);
        done.push(note);
      }
      if (database.fate === 'not dropped') {
        leave(
          `the database ${database.database} it left incomplete could not be dropped (${database.error}): ` +
            removeLeftDatabase(database.database, plan.targetServer.major, database.sessions),
        );
      }
    }
  } catch (err) {
    if (!(err instanceof PgferryError && err.code === 'SourceUnreachable')) {
      leave(`could not look for the databases the run left on the target: ${errorMessage(err)}`);
    }
  }
  if (plan.request.freezeSource || plan.request.online) {
    try {
      await unfreezeSource(plan, deps.env);
      unfrozen = true;
    } catch (err) {
      leave(`THE SOURCE IS STILL READ-ONLY: ${errorMessage(err)}`);
    }
  }
  for (const db of plan.databases) {
    try {
      // A backup the record step completed (the failure came later, e.g. in the cutover) is kept.
      if ((await store.getJson(manifestKey(db.backup.database, db.backup.backupId))) !== undefined) continue;
      deletedObjects += await store.deletePrefix(backupPrefix(db.backup.database, db.backup.backupId));
    } catch (err) {
      leave(`could not remove the incomplete backup ${db.backup.backupId}: ${errorMessage(err)}`);
    }
  }
  const cause = runnerError?.message ?? caught.Cause ?? caught.Error;
  return {
    error: runnerError?.name ?? caught.Error,
    cause: clauses.length ? `${cause} (${clauses.join('; ')})` : cause,
    unfrozen,
    deletedObjects,
    notes: done,
    left,
  };
}

/** Guards the local-only cutover command on Lambda. */
export function refuseCommandOnLambda(): never {
  throw new PgferryError('InvalidInput', 'cutover.command runs only locally (pgferry migrate --on-cutover)');
}
