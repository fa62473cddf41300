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
import { PgferryError, readableCause } from '../../../core/errors';
import type { BackupStore } from '../../../core/store';
import { wasStopped } from '../../../core/workflows';
import { recordRunCleanup } from '../run-cleanup';
import { runId } from '../step-functions-runs';
import { stoppedCleanupOutcome } from './stopped';

/** The part of EventBridge's "Step Functions Execution Status Change" event the announcer is given. */
export const ExecutionChangeSchema = z.object({
  stateMachineArn: z.string().min(1),
  name: z.string().min(1).max(80),
  status: z.string(),
});
export type ExecutionChange = z.infer<typeof ExecutionChangeSchema>;

/** The error Describe returns (`unrecorded`) when the run view's record of a cleanup was not written. */
export const CLEANUP_NOT_RECORDED = 'pgferry.CleanupNotRecorded';

/**
 * What Describe returns: the event, and — when the record of the cleanup for the run view could
 * not be written — why (`unrecorded`, Step Functions' `Error` and `Cause`), on which the announcer
 * fails once the event has gone out (lib/run-events.ts).
 */
export type Described = RunFinishedEvent & { unrecorded?: { Error: string; Cause: string } };

/**
 * The announcer's Describe step (lib/run-events.ts), given its whole state: the execution's change
 * and, after a stopped one, what its cleanup did (./stopped.ts, `stoppedCleanupOutcome`) — the
 * run's event, with that cleanup in it. Given `store`, that cleanup is also written where
 * `GET /v1/runs/{id}` reads it (../run-cleanup.ts), before the event goes out: a pipeline that
 * reads the run on the event sees it. A write that fails does not keep the event back.
 */
export async function describeFinished(
  runs: Pick<RunHost, 'get'>,
  stateMachineArns: Record<RunKind, string>,
  state: unknown,
  store?: Pick<BackupStore, 'putJson'>,
): Promise<Described> {
  const change = parsePayload(ExecutionChangeSchema, state, 'execution status change');
  const cleanup = wasStopped(change.status) ? stoppedCleanupOutcome(state) : undefined;
  const event = await announce(runs, stateMachineArns, change, cleanup);
  if (!store || !event.detail.cleanup) return event;
  try {
    await recordRunCleanup(store, event.detail.id, event.detail.cleanup);
    return event;
  } catch (err) {
    const cause = `the cleanup of run ${event.detail.id} was announced but not recorded for its run view: ${readableCause((err as Error).message) ?? String(err)}`;
    return { ...event, unrecorded: { Error: CLEANUP_NOT_RECORDED, Cause: cause } };
  }
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
