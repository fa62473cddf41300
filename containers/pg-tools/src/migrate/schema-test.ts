/**
 * The schema test: each database's schema, no data, restored into a scratch database on the target
 * server and dropped again, before a migration moves any data.
 */
import type { MigratePlan, SchemaTestResult } from '../../../../core/contracts';
import { errorMessage, PgferryError } from '../../../../core/errors';
import { schemaTestDatabaseName } from '../../../../core/postgres/incomplete-database';
import {
  LockWaitTimeoutError,
  lockWaitFailure,
  openObserver,
} from '../../../../core/postgres/snapshot-guard';
import { schemaTestResultKey } from '../../../../core/store-keys';
import { interruption, stopIfInterrupted } from '../run';
import { context, dbnameArg, type MigrateDeps } from './context';
import { streamDumpIntoRestore } from './dump-stream';
import { applyRoles, createDatabase, dropDatabase, dumpSourceGlobals } from './target';

/**
 * Restores each database's schema (no data) into a scratch database on the target server, then
 * drops it: a schema the target cannot take stops the migration before any data moves. The roles
 * the schema needs are created first (missing ones only), as the migration would.
 */
export async function runSchemaTest(plan: MigratePlan, deps: MigrateDeps): Promise<SchemaTestResult> {
  const started = Date.now();
  const first = plan.databases[0].backup;
  const key = schemaTestResultKey(first.database, first.backupId);
  const result: SchemaTestResult = { status: 'passed', seconds: 0, databases: [] };
  try {
    const ctx = await context(plan, deps);
    result.roles = await applyRoles(ctx, await dumpSourceGlobals(ctx));
    for (const [i, db] of plan.databases.entries()) {
      const scratch = schemaTestDatabaseName(plan.migrateId, i);
      const entry = { database: db.source.database, scratchDatabase: scratch, dropped: false };
      result.databases.push(entry);
      deps.onPhase?.(`schemaTest ${db.source.database}`);
      const scratchTarget = { ...db.target, database: scratch };
      stopIfInterrupted(deps.signal);
      await createDatabase(ctx, scratchTarget, db, 'schema test');
      const failure = await streamDumpIntoRestore(ctx, {
        dumpArgs: [
          '--format=custom',
          '--compress=0',
          '--schema-only',
          `--lock-wait-timeout=${ctx.lockWaitTimeoutMs}`,
          '--no-password',
        ],
        source: db.source,
        restoreArgs: ['--exit-on-error', '--no-password', dbnameArg(scratch)],
        target: scratchTarget,
        diagnose: (stderr) =>
          lockWaitFailure(
            stderr,
            () => openObserver(db.source, ctx.sourcePassword, ctx.lockWaitTimeoutMs),
            ctx.lockWaitTimeoutMs,
          ),
      }).then(
        () => undefined,
        (err: unknown) => err,
      );
      entry.dropped = await dropDatabase(ctx, scratchTarget).then(
        () => true,
        () => false,
      );
      if (failure !== undefined && deps.signal?.aborted) {
        const stopped = interruption(deps.signal);
        stopped.message += ` (the scratch database ${scratch} was ${entry.dropped ? 'dropped' : 'left behind: drop it'})`;
        throw stopped;
      }
      if (failure instanceof LockWaitTimeoutError) {
        throw new PgferryError(
          failure.code,
          `${failure.message}; no data was moved (the scratch database ${scratch} was ` +
            `${entry.dropped ? 'dropped' : 'left behind: drop it'})`,
          { cause: failure },
        );
      }
      if (failure !== undefined) {
        throw new PgferryError(
          'SchemaTestFailed',
          `the schema of ${db.source.database} does not restore on the target (PostgreSQL ${plan.targetServer.version}): ` +
            `${errorMessage(failure)}; no data was moved (the scratch database ${scratch} was ` +
            `${entry.dropped ? 'dropped' : 'left behind: drop it'})`,
          { cause: failure },
        );
      }
    }
    result.seconds = (Date.now() - started) / 1000;
    await deps.store.putJson(key, result);
    return result;
  } catch (err) {
    const failed = {
      ...result,
      status: 'failed',
      seconds: (Date.now() - started) / 1000,
      error: errorMessage(err),
    };
    await deps.store.putJson(key, failed).catch(() => undefined);
    throw err;
  }
}
