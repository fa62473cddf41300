import { MigrateRequestSchema, type MigrateState, parsePayload } from '../../core/contracts';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { preflightMigrate } from './preflight';

const logger = createLogger('pgferry-migrate-preflight');

/** Step Functions task: validates the execution input, checks both servers, plans the migration. */
export async function handler(event: unknown): Promise<MigrateState> {
  const request = parsePayload(MigrateRequestSchema, event, 'migrate request');
  const plan = await preflightMigrate(request, { openStore, env: process.env });
  logger.info('planned', {
    migrateId: plan.migrateId,
    databases: plan.databases.map((d) => d.source.database),
    sourceVersion: plan.sourceServer.version,
    targetVersion: plan.targetServer.version,
    estimate: plan.estimate,
  });
  return { plan, job: JSON.stringify(plan) };
}
