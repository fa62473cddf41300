/**
 * The cleanup of a stopped execution. Step Functions skips a workflow's Catch steps when its
 * execution is stopped (StopExecution: the API's cancel, the console's Stop) or times out, so the
 * announcing state machine (lib/run-events.ts) runs them itself: this plans what it runs, from
 * the execution's input and history alone.
 *
 * - **The task**: the pg-tools task the execution was running, to stop (ECS StopTask: its runner
 *   cleans up what it made, as on any SIGTERM) and to wait for before anything else.
 * - **Lambda steps still running**: a stopped execution does not stop them, and their effects
 *   (a lease taken, a source frozen) must be seen by the cleanup, so it waits until each has
 *   surely ended (`waitSeconds`: its scheduled time plus its timeout) and plans again.
 * - **backup**: the workflow's Cleanup function (the Catch's), given the attempt's store, name and
 *   id: it removes the attempt's objects and releases the lease. They come from the last state's
 *   input that holds them; a backup stopped in Preflight has none, and its lease (naming this
 *   execution) says which attempt Preflight began. A backup whose manifest exists completed (its
 *   Record ran to its end) and is kept.
 * - **migrate**: MigrateCleanup (the Catch's), given the state the stopped state was given, as the
 *   Catch would give it; then the cutover's services scaled back up, as the failure path does.
 *   A migration stopped in its preflight has changed nothing.
 * - **restore**: RestoreCleanup (the Catch's), after the task has stopped (its runner drops the
 *   new database on SIGTERM; the cleanup ends the run's sessions and drops what a runner killed
 *   before it could — SIGKILL once ECS's stopTimeout has passed — left marked as this restore's),
 *   given the state the stopped state was given, with the stop as its error (the task's own, when
 *   the Catch had given it). Only for a restore stopped in its task, or in RestoreCleanup itself
 *   (run again: it finds nothing, or what a cut-off cleanup left); stopped in its preflight or
 *   safety backup it has put nothing on the target, and in RestoreRecord its task succeeded
 *   (nothing completed is undone) or its cleanup has run. A clean restore's nested safety backup
 *   is stopped by Step Functions with its parent, and is cleaned up as a stopped backup of its own.
 * - **verify**: only the task (stopped, its runner removes the throwaway server).
 *
 * What that cleanup did and left (`stoppedCleanupOutcome`, read from the announcer's state when it
 * describes the run) is in the run's event (`cleanup`: api/events.ts).
 */
import type { DescribeExecutionCommandOutput, HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import type { RunCleanup } from '../../../api/events';
import type { RunKind } from '../../../api/runs';
import { backupCatalogName } from '../../../core/catalog-name';
import {
  BackupRequestSchema,
  BackupStateSchema,
  type CaughtError,
  CaughtErrorSchema,
  CutoverSchema,
  type MigrateState,
  MigrateStateSchema,
  RestoreCleanupSchema,
  type RestoreState,
  RestoreStateSchema,
} from '../../../core/contracts';
import type { Deployment } from '../../../core/deployment';
import { readableCause } from '../../../core/errors';
import { currentLease } from '../../../core/lease';
import type { BackupStore } from '../../../core/store';
import { manifestKey } from '../../../core/store-keys';
import { LEFT_BEHIND_ERRORS, RESTORE_STATES } from '../../../core/workflows';
import { historyEvents, parseJson } from '../step-functions-runs';

/** What the announcer runs after a stopped execution (lib/run-events.ts). */
export interface StoppedCleanup {
  kind: RunKind;
  /**
   * Seconds until every Lambda step that was running when the execution stopped has ended; the
   * announcer waits that long, then plans again. 0: nothing is left running but the task.
   */
  waitSeconds: number;
  /** The pg-tools task the execution was running: stopped, and waited for. */
  task?: { cluster: string; taskArn: string };
  /** The backup workflow's Cleanup function's input: the attempt, and why it ended. */
  backup?: { store: string; database: string; backupId: string; error: CaughtError };
  /** MigrateCleanup's state: the stopped state's input, with the stop as its error. */
  migrate?: MigrateState;
  /** RestoreCleanup's state: the stopped task's (or cleanup's) input, with an error (the stop's). */
  restore?: RestoreState;
}

/** Past a Lambda step's timeout, before it is taken as ended. */
const SETTLE_MARGIN_SECONDS = 10;

/** The Task events that end a task. */
const TASK_ENDS = new Set([
  'TaskSucceeded',
  'TaskFailed',
  'TaskTimedOut',
  'TaskStartFailed',
  'TaskSubmitFailed',
]);

/** The history of an execution, oldest first, with its inputs and outputs (which hold no secret). */
export async function executionHistory(
  sfn: Pick<SFNClient, 'send'>,
  executionArn: string,
): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  for await (const event of historyEvents(sfn, {
    executionArn,
    maxResults: 1000,
    includeExecutionData: true,
  }))
    events.push(event);
  return events;
}

interface OpenTask {
  scheduled: HistoryEvent;
  submittedOutput?: string;
}

/** The Task steps begun and not ended when the history stops: Lambda invocations, ECS tasks. */
export function openTasks(events: readonly HistoryEvent[]): OpenTask[] {
  const open = new Map<number, OpenTask>();
  const rootOf = new Map<number, number>();
  for (const event of events) {
    const id = event.id ?? 0;
    if (event.type === 'TaskScheduled') {
      open.set(id, { scheduled: event });
      rootOf.set(id, id);
      continue;
    }
    if (
      !event.type?.startsWith('Task') ||
      event.type.endsWith('StateEntered') ||
      event.type.endsWith('StateExited')
    )
      continue;
    const root = rootOf.get(event.previousEventId ?? -1);
    if (root === undefined) continue;
    rootOf.set(id, root);
    const task = open.get(root);
    if (!task) continue;
    if (event.type === 'TaskSubmitted') task.submittedOutput = event.taskSubmittedEventDetails?.output;
    if (TASK_ENDS.has(event.type)) open.delete(root);
  }
  return [...open.values()];
}

/** An ECS RunTask response's task (Step Functions shows it PascalCased). */
function ecsTaskOf(output: string | undefined): { cluster: string; taskArn: string } | undefined {
  const parsed = parseJson(output) as
    | {
        Tasks?: { TaskArn?: string; ClusterArn?: string }[];
        tasks?: { taskArn?: string; clusterArn?: string }[];
      }
    | undefined;
  const task = parsed?.Tasks?.[0];
  const taskArn = task?.TaskArn ?? parsed?.tasks?.[0]?.taskArn;
  const cluster = task?.ClusterArn ?? parsed?.tasks?.[0]?.clusterArn;
  return taskArn && cluster ? { cluster, taskArn } : undefined;
}

/** The inputs the states were given, newest first. */
function enteredInputs(events: readonly HistoryEvent[]): unknown[] {
  return events
    .filter((e) => e.stateEnteredEventDetails?.input !== undefined)
    .map((e) => parseJson(e.stateEnteredEventDetails?.input))
    .reverse();
}

/** The error a Catch would have put in the state: the stop's own, or the timeout. */
export function stopError(execution: DescribeExecutionCommandOutput): CaughtError {
  if (execution.status === 'TIMED_OUT') {
    return {
      Error: execution.error || 'States.Timeout',
      Cause: execution.cause || 'the execution timed out',
    };
  }
  return {
    Error: execution.error || 'States.Aborted',
    Cause: execution.cause || 'the execution was stopped',
  };
}

export interface PlanDeps {
  /** The store the execution's input names (the deployment's). */
  store: BackupStore;
  /** The deployment's bindings: a backup's catalog name, when only its request says it. */
  deployment: Deployment;
  now?: Date;
}

/** What to clean up after `execution` (stopped or timed out), from its history (oldest first). */
export async function planStoppedCleanup(
  kind: RunKind,
  execution: DescribeExecutionCommandOutput,
  events: readonly HistoryEvent[],
  deps: PlanDeps,
): Promise<StoppedCleanup> {
  const now = (deps.now ?? new Date()).getTime();
  const open = openTasks(events);
  let settledAt = now;
  let task: StoppedCleanup['task'];
  for (const { scheduled, submittedOutput } of open) {
    const details = scheduled.taskScheduledEventDetails;
    if (details?.resourceType === 'lambda') {
      const timeout = details.timeoutInSeconds ?? 900;
      const end = (scheduled.timestamp?.getTime() ?? now) + (timeout + SETTLE_MARGIN_SECONDS) * 1000;
      settledAt = Math.max(settledAt, end);
    } else if (details?.resourceType === 'ecs') {
      task = ecsTaskOf(submittedOutput) ?? task;
    }
  }
  const plan: StoppedCleanup = {
    kind,
    waitSeconds: Math.ceil((settledAt - now) / 1000),
    ...(task ? { task } : {}),
  };
  const error = stopError(execution);
  if (kind === 'backup') {
    const attempt = await stoppedBackup(execution, events, deps);
    if (attempt && !(await completed(deps.store, attempt))) plan.backup = { ...attempt, error };
  } else if (kind === 'migrate') {
    for (const input of enteredInputs(events)) {
      const state = MigrateStateSchema.safeParse(input);
      if (state.success) {
        plan.migrate = { ...state.data, error };
        break;
      }
    }
  } else if (kind === 'restore') {
    const state = stoppedRestore(events);
    if (state) plan.restore = { ...state, error: state.error ?? error };
  }
  return plan;
}

/** The states a restore's Catch would have been run from (the task) or was running (its cleanup). */
const RESTORE_CLEANED_UP_FROM = new Set<string>([RESTORE_STATES.restore, RESTORE_STATES.cleanup]);

/**
 * The state RestoreCleanup is given after a stopped restore: the input of the state it stopped in,
 * when that was the task (Restore) or RestoreCleanup itself (which the stop cut off: run again, it
 * finds what a cleanup that timed out left, or nothing). Stopped in its preflight or its safety
 * backup, the restore has put nothing on the target; stopped in RestoreRecord, its task succeeded
 * (the restore is complete: nothing is undone) or its cleanup has run.
 */
function stoppedRestore(events: readonly HistoryEvent[]): RestoreState | undefined {
  const last = events.findLast(
    (e) => e.stateEnteredEventDetails?.input !== undefined,
  )?.stateEnteredEventDetails;
  if (!last?.name || !RESTORE_CLEANED_UP_FROM.has(last.name)) return undefined;
  const state = RestoreStateSchema.safeParse(parseJson(last.input));
  return state.success ? state.data : undefined;
}

/** The attempt a stopped backup began: from its states' inputs, else from the lease it took. */
async function stoppedBackup(
  execution: DescribeExecutionCommandOutput,
  events: readonly HistoryEvent[],
  deps: PlanDeps,
): Promise<{ store: string; database: string; backupId: string } | undefined> {
  for (const input of enteredInputs(events)) {
    const state = BackupStateSchema.safeParse(input);
    if (state.success) {
      return { store: state.data.job.store, database: state.data.database, backupId: state.data.backupId };
    }
  }
  // Stopped in Preflight: the lease it took (if it got that far) names this execution.
  const request = BackupRequestSchema.safeParse(parseJson(execution.input));
  if (!request.success || request.data.store !== deps.store.url) return undefined;
  let name: string;
  try {
    name = backupCatalogName(deps.deployment, request.data.source, request.data.name).name;
  } catch {
    return undefined; // Preflight refused it: it took nothing.
  }
  const lease = await currentLease(deps.store, name);
  if (!lease || lease.executionId !== execution.executionArn) return undefined;
  return { store: deps.store.url, database: name, backupId: lease.backupId };
}

/** Whether the attempt's manifest exists: its Record ran to its end, and it is a backup to keep. */
async function completed(
  store: BackupStore,
  attempt: { store: string; database: string; backupId: string },
): Promise<boolean> {
  if (attempt.store !== store.url) return false;
  return (await store.getJson(manifestKey(attempt.database, attempt.backupId))) !== undefined;
}

/**
 * The parts of the announcer's state (lib/run-events.ts) that say what its cleanup of a stopped
 * execution did: the plan (`cleanup`), each cleanup function's result, and the cleanup's failure.
 * Each is read on its own: a part that does not read is left out, and never keeps the run from
 * being announced.
 */
const OUTCOME_PARTS = {
  plan: z.object({
    cleanup: z.object({
      backup: z.object({ database: z.string(), backupId: z.string() }),
    }),
  }),
  services: z.object({
    cleanup: z.object({
      migrate: z.object({ steps: z.object({ ecsServices: CutoverSchema.shape.ecsServices.unwrap() }) }),
    }),
  }),
  backupCleanup: z.object({
    backupCleanup: z.object({ deletedObjects: z.number(), leaseReleased: z.boolean() }),
  }),
  migrateCleanup: z.object({
    migrateCleanup: z.object({
      // Absent from a MigrateCleanup older than it: its notes were in its cause only.
      notes: z.array(z.string()).default([]),
      left: z.array(z.string()).default([]),
      unfrozen: z.boolean().default(false),
      deletedObjects: z.number().default(0),
    }),
  }),
  restoreCleanup: z.object({ restoreCleanup: RestoreCleanupSchema }),
  cleanupError: z.object({ cleanupError: CaughtErrorSchema }),
};

/**
 * What the announcer's cleanup of a stopped execution did and left, from its state when it
 * describes the run: the backup's Cleanup (the attempt's objects removed, its lease released),
 * MigrateCleanup (its notes; the source unfrozen; incomplete backups removed; what it left) and the
 * cutover's services scaled back up, RestoreCleanup (its notes, what it left), and the cleanup's
 * own failure (`cleanupError`: a step that failed — not the announcer's `…LeftBehind`, which is
 * `left` again).
 */
export function stoppedCleanupOutcome(state: unknown): RunCleanup {
  const part = <T>(schema: z.ZodType<T>): T | undefined => {
    const parsed = schema.safeParse(state);
    return parsed.success ? parsed.data : undefined;
  };
  const outcome: RunCleanup = { notes: [], left: [] };
  const failure = part(OUTCOME_PARTS.cleanupError)?.cleanupError;
  const leftBehind = Object.values(LEFT_BEHIND_ERRORS).some((name) => name === failure?.Error);
  if (failure && !leftBehind) {
    outcome.error = { error: failure.Error, cause: readableCause(failure.Cause) ?? failure.Error };
  }

  const backup = part(OUTCOME_PARTS.backupCleanup)?.backupCleanup;
  if (backup) {
    const attempt = part(OUTCOME_PARTS.plan)?.cleanup.backup;
    const of = attempt ? ` ${attempt.backupId} of ${attempt.database}` : '';
    if (backup.deletedObjects > 0)
      outcome.notes.push(`the ${backup.deletedObjects} object(s) of the incomplete backup${of} were removed`);
    if (backup.leaseReleased)
      outcome.notes.push(`the lease it held${attempt ? ` on ${attempt.database}` : ''} was released`);
  }

  const migrate = part(OUTCOME_PARTS.migrateCleanup)?.migrateCleanup;
  if (migrate) {
    outcome.notes.push(...migrate.notes);
    if (migrate.unfrozen) outcome.notes.push('the source was unfrozen');
    if (migrate.deletedObjects > 0)
      outcome.notes.push(`the ${migrate.deletedObjects} object(s) of its incomplete backups were removed`);
    outcome.left.push(...migrate.left);
    // The services come back after MigrateCleanup; their failure is the cleanup's error.
    if (!outcome.error) {
      for (const { cluster, service, desiredCount } of part(OUTCOME_PARTS.services)?.cleanup.migrate.steps
        .ecsServices ?? []) {
        outcome.notes.push(
          `the service ${service} of cluster ${cluster} was scaled back to ${desiredCount} task(s)`,
        );
      }
    }
  }

  const restore = part(OUTCOME_PARTS.restoreCleanup)?.restoreCleanup;
  if (restore) {
    outcome.notes.push(...restore.notes);
    outcome.left.push(...restore.left);
  }
  return outcome;
}
