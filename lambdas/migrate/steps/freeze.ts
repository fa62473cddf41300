import type { Client } from 'pg';
import { resolvePassword } from '../../../core/connection';
import type { FreezeResult, MigrateDatabasePlan, MigratePlan } from '../../../core/contracts';
import { errorMessage } from '../../../core/errors';
import { dropOwnIncompleteDatabase, type LeftDatabase } from '../../../core/postgres/admin';
import { connectPg, endQuietly, withClient, withMaintenance } from '../../../core/postgres/connect';
import { schemaTestDatabaseName } from '../../../core/postgres/incomplete-database';
import {
  dropPublicationAndSlot,
  dropSentinel,
  dropSubscription,
  replicationName,
} from '../../../core/postgres/logical-replication';
import {
  allowWrites,
  endOtherSessions,
  freezeDatabase,
  thawDatabase,
  writingSessions,
} from '../../../core/postgres/read-only';
import { endRunSessions, runSessionName } from '../../../core/postgres/run-sessions';

/** How long the cleanup waits for the sessions it ended to be gone, on each server. */
const RUN_SESSIONS_END_MS = 10_000;

/**
 * Freezes the source: `ALTER DATABASE … SET default_transaction_read_only = on` on every database
 * of the plan, so that new sessions can only read, then ends the sessions connected before (which
 * read no freeze and would go on writing after the dump's snapshot): a transaction they had open
 * is rolled back and its client told, and a pool reconnects read-only. Those that had a write
 * transaction open are reported. When one database cannot be frozen, those already frozen are
 * thawed again before the error is thrown.
 */
export async function freezeSource(plan: MigratePlan, env: NodeJS.ProcessEnv): Promise<FreezeResult> {
  const client = await connectSource(plan, env);
  const frozen: MigrateDatabasePlan[] = [];
  try {
    const result: FreezeResult = { frozenAt: new Date().toISOString(), databases: [] };
    for (const db of plan.databases) {
      await freezeDatabase(client, db.source.database);
      frozen.push(db);
      const writing = await writingSessions(client, db.source.database);
      result.databases.push({
        database: db.source.database,
        writingSessions: writing,
        sessionsEnded: await endOtherSessions(client, db.source.database),
      });
    }
    return result;
  } catch (err) {
    await thaw(client, frozen).catch(() => undefined);
    throw err;
  } finally {
    await endQuietly(client);
  }
}

/** Undoes the freeze: each database gets back the setting it had before (or none). */
export async function unfreezeSource(plan: MigratePlan, env: NodeJS.ProcessEnv): Promise<string> {
  const client = await connectSource(plan, env);
  try {
    await thaw(client, plan.databases);
    return new Date().toISOString();
  } finally {
    await endQuietly(client);
  }
}

async function thaw(client: Client, databases: MigrateDatabasePlan[]): Promise<void> {
  const errors: string[] = [];
  for (const db of databases) {
    try {
      await thawDatabase(client, db.source.database, db.readOnlySetting);
    } catch (err) {
      errors.push(`${db.source.database}: ${errorMessage(err)}`);
    }
  }
  if (errors.length) throw new Error(`could not unfreeze ${errors.join('; ')}`);
}

async function connectSource(plan: MigratePlan, env: NodeJS.ProcessEnv): Promise<Client> {
  const password = await resolvePassword(plan.request.source, 'source', env);
  const client = await connectPg(plan.databases[0].source, password);
  // The database may be frozen already: this session's own setting overrides the database's.
  await allowWrites(client);
  return client;
}

/**
 * An online migration's subscription and sentinel (on the target database, if it exists),
 * publication, slot and sentinel (on the source), dropped: nothing to drop is no error.
 */
export async function removeReplication(plan: MigratePlan, env: NodeJS.ProcessEnv): Promise<void> {
  const name = replicationName(plan.migrateId);
  const db = plan.databases[0];
  const targetPassword = await resolvePassword(plan.request.target, 'target', env);
  await withClient(db.target, targetPassword, async (c) => {
    await dropSubscription(c, name);
    await dropSentinel(c, name);
  }).catch((err: unknown) => {
    // No target database: no subscription either.
    if (!(err instanceof Error && /database does not exist/.test(err.message))) throw err;
  });
  const client = await connectSource(plan, env);
  try {
    await dropSentinel(client, name);
    await dropPublicationAndSlot(client, name);
  } finally {
    await endQuietly(client);
  }
}

/**
 * Ends what the migration's runner left running on the `side` server: its sessions (named after
 * the migration), which a runner stopped hard (SIGKILL, a stopped task, a lost host) could not
 * end, and whose server-side work goes on without it — a `CREATE DATABASE` that would then create
 * a target the run never marked incomplete, an index build, an `ANALYZE`, a COPY holding its
 * locks. They are waited for (up to 10 s); returns how many are still there.
 */
export async function endRunnerSessions(
  plan: MigratePlan,
  side: 'source' | 'target',
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const name = runSessionName(plan.migrateId);
  const password = await resolvePassword(plan.request[side], side, env);
  const end = (c: Client) => endRunSessions(c, name, RUN_SESSIONS_END_MS);
  // The target database may not exist (yet, or any more): the server's maintenance database, as
  // the runner created it from.
  const connection = plan.databases[0][side];
  return side === 'target'
    ? withMaintenance(connection, password, end)
    : withClient(connection, password, end);
}

/**
 * Drops what a migration's runner created on the target and could not drop (killed hard): each
 * target database and schema-test scratch database that carries this migration's own incomplete
 * mark. One another run marked, or an unmarked one (a target that existed, a completed one), is
 * left alone. Run after the run's sessions are ended and its subscription dropped (a database
 * with a subscription cannot be dropped). Returns what became of each.
 */
export async function dropRunDatabases(plan: MigratePlan, env: NodeJS.ProcessEnv): Promise<LeftDatabase[]> {
  const password = await resolvePassword(plan.request.target, 'target', env);
  const names = [
    ...plan.databases.map((db) => db.target.database),
    ...plan.databases.map((_, i) => schemaTestDatabaseName(plan.migrateId, i)),
  ];
  return withMaintenance(plan.databases[0].target, password, async (admin) => {
    const results: LeftDatabase[] = [];
    for (const database of names)
      results.push(await dropOwnIncompleteDatabase(admin, database, plan.migrateId));
    return results;
  });
}
