import { parsePayload, type RestoreCleanup, RestoreStateSchema } from '../../../core/contracts';
import { type Credentials, credentialsFromEnv, withCredentials } from '../../../core/credentials';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { cleanupRestore } from './cleanup';

const logger = createLogger('pgferry-restore-cleanup');

/** The Lambda function's entry: passwords from the connections' secrets (or IAM), else from its environment. */
export const handler = (event: unknown): Promise<RestoreCleanup> =>
  handle(event, credentialsFromEnv(process.env));

/**
 * Step Functions task, after a failed restore task (before RestoreRecord): ends the run's sessions
 * on the target and drops the database the run created and marked, when its runner was killed
 * too hard to. Its result (`RestoreCleanup`) goes into the failure RestoreRecord names. The
 * announcer runs it too, after a stopped or timed-out restore (lib/run-events.ts), with the same
 * state. The target's password, where its connection names no secret, is `credentials.target`.
 */
export async function handle(event: unknown, credentials: Credentials): Promise<RestoreCleanup> {
  const state = parsePayload(RestoreStateSchema, event, 'restore state');
  const result = await cleanupRestore(state, { openStore, env: withCredentials(process.env, credentials) });
  logger.warn('cleaned up after a failed restore', { restoreId: state.restoreId, ...result });
  return result;
}
