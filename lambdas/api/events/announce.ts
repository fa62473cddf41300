/**
 * What a finished execution announces: the run it was, as the API shows it, made into the
 * run-finished event both hosts emit (api/events.ts) — on AWS put on the default event bus by the
 * announcing state machine (lib/run-events.ts). After a stopped (or timed-out) execution the event
 * carries what the announcer's cleanup of it did and left (`cleanup`).
 */
import { z } from 'zod';
import { type RunCleanup, type RunFinishedEvent, runFinishedEvent } from '../../../api/events';
import { RUN_KINDS, type RunHost, type RunKind } from '../../../api/runs';
import { parsePayload } from '../../../core/contracts';
import { PgferryError } from '../../../core/errors';
import { runId } from '../step-functions-runs';
import { stoppedCleanupOutcome, wasStopped } from './stopped';

/** The part of EventBridge's "Step Functions Execution Status Change" event the announcer is given. */
export const ExecutionChangeSchema = z.object({
  stateMachineArn: z.string().min(1),
  name: z.string().min(1).max(80),
  status: z.string(),
});
export type ExecutionChange = z.infer<typeof ExecutionChangeSchema>;

/**
 * The announcer's Describe step (lib/run-events.ts), given its whole state: the execution's change
 * and, after a stopped one, what its cleanup did (./stopped.ts, `stoppedCleanupOutcome`) — the
 * run's event, with that cleanup in it.
 */
export function describeFinished(
  runs: Pick<RunHost, 'get'>,
  stateMachineArns: Record<RunKind, string>,
  state: unknown,
): Promise<RunFinishedEvent> {
  const change = parsePayload(ExecutionChangeSchema, state, 'execution status change');
  return announce(
    runs,
    stateMachineArns,
    change,
    wasStopped(change.status) ? stoppedCleanupOutcome(state) : undefined,
  );
}

/**
 * The event of the run a finished execution was, with what a cleanup that ran apart from it did.
 * Throws when the execution is of no state machine of the API, or is still running (its status
 * change was not an end).
 */
export async function announce(
  runs: Pick<RunHost, 'get'>,
  stateMachineArns: Record<RunKind, string>,
  change: ExecutionChange,
  cleanup?: RunCleanup,
): Promise<RunFinishedEvent> {
  const kind = RUN_KINDS.find((k) => stateMachineArns[k] === change.stateMachineArn);
  if (!kind) {
    throw new PgferryError(
      'InvalidInput',
      `${change.stateMachineArn} is not one of pgferry's state machines`,
    );
  }
  const id = runId(kind, change.name);
  const run = await runs.get(id);
  if (!run) throw new PgferryError('InvalidInput', `no run ${id}`);
  return runFinishedEvent(run, cleanup);
}
