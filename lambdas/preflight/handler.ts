import { z } from 'zod';
import {
  BackupRequestSchema,
  type BackupState,
  parseExecutionInput,
  parsePayload,
} from '../../core/contracts';
import { leaseOwnerFor } from '../../core/lease';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { preflightBackup } from './preflight';

const logger = createLogger('pgferry-preflight');
/** Locally, the CLI process holds the lease (and a crashed one's is taken over); on Lambda, none. */
const leaseOwner = leaseOwnerFor(process.env);

/** The execution's input, and the execution's id (from the context object). */
const PreflightInputSchema = z.object({ request: z.unknown(), executionId: z.string().min(1) }).strict();

/** Step Functions task: validates the execution input and plans the backup. */
export async function handler(event: unknown): Promise<BackupState> {
  const input = parsePayload(PreflightInputSchema, event, 'preflight input');
  const request = parseExecutionInput(BackupRequestSchema, input.request, 'backup request');
  const plan = await preflightBackup(request, {
    openStore,
    env: process.env,
    leaseOwner,
    executionId: input.executionId,
  });
  logger.info('planned', {
    backupId: plan.backupId,
    database: plan.database,
    serverVersion: plan.server.version,
    sizeBytes: plan.sizeBytes,
  });
  return { plan, job: JSON.stringify(plan) };
}
