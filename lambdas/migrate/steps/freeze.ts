import type { Client } from 'pg';
import { resolvePassword } from '../../../core/connection';
import type { FreezeResult, MigrateDatabasePlan, MigratePlan } from '../../../core/contracts';
import { errorMessage } from '../../../core/errors';
import { connectPg } from '../../../core/postgres/connect';
import { quoteIdent } from '../../../core/postgres/quote';

const SETTING = 'default_transaction_read_only';

/**
 * Freezes the source: `ALTER DATABASE … SET default_transaction_read_only = on` on every database
 * of the plan, so that new sessions can only read; sessions with a write transaction open are
 * reported (they keep writing until they reconnect). When one database cannot be frozen, those
 * already frozen are thawed again before the error is thrown.
 */
export async function freezeSource(plan: MigratePlan, env: NodeJS.ProcessEnv): Promise<FreezeResult> {
  const client = await connectSource(plan, env);
  const frozen: MigrateDatabasePlan[] = [];
  try {
    const result: FreezeResult = { frozenAt: new Date().toISOString(), databases: [] };
    for (const db of plan.databases) {
      await client.query(`ALTER DATABASE ${quoteIdent(db.source.database)} SET ${SETTING} = on`);
      frozen.push(db);
      const { rows } = await client.query<{
        pid: number;
        user: string | null;
        application: string | null;
        transactionStart: string | null;
      }>(
        `SELECT pid, usename AS user, application_name AS application, xact_start::text AS "transactionStart"
         FROM pg_stat_activity
         WHERE datname = $1 AND backend_xid IS NOT NULL AND pid <> pg_backend_pid() ORDER BY pid`,
        [db.source.database],
      );
      result.databases.push({ database: db.source.database, writingSessions: rows });
    }
    return result;
  } catch (err) {
    await thaw(client, frozen).catch(() => undefined);
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Undoes the freeze: each database gets back the setting it had before (or none). */
export async function unfreezeSource(plan: MigratePlan, env: NodeJS.ProcessEnv): Promise<string> {
  const client = await connectSource(plan, env);
  try {
    await thaw(client, plan.databases);
    return new Date().toISOString();
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function thaw(client: Client, databases: MigrateDatabasePlan[]): Promise<void> {
  const errors: string[] = [];
  for (const db of databases) {
    const name = quoteIdent(db.source.database);
    try {
      await client.query(
        db.readOnlySetting === null
          ? `ALTER DATABASE ${name} RESET ${SETTING}`
          : `ALTER DATABASE ${name} SET ${SETTING} = ${db.readOnlySetting === 'on' ? 'on' : 'off'}`,
      );
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
  await client.query(`SET ${SETTING} = off`);
  return client;
}
