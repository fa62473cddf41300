/**
 * Starting an execution of a deployed state machine and following it to its end: progress from
 * its event history on stderr, its output (or its error) as the result.
 */
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { readableCause } from '../../core/errors';
import { type WorkflowName, wasStopped } from '../../core/workflows';
import type { AwsClients } from './clients';

export interface FollowOptions {
  /** Milliseconds between two polls. */
  pollIntervalMs: number;
  /**
   * The workflow the execution runs: when it is stopped or times out, its error says where what
   * the announcer's cleanup did after it will show (its run, `<kind>-<execution name>`).
   */
  workflow?: WorkflowName;
  /** One line of progress (without its newline). */
  onProgress: (line: string) => void;
}

/** Failed, timed out or aborted: the execution's error and cause, as Step Functions reports them. */
export class ExecutionFailed extends Error {
  constructor(
    readonly status: string,
    error: string,
    cause: string,
  ) {
    super(`${error}: ${cause}`);
    this.name = 'ExecutionFailed';
  }
}

/** Starts an execution with `input` and resolves with its output (parsed JSON) once it succeeded. */
export async function runExecution(
  clients: AwsClients,
  stateMachineArn: string,
  input: unknown,
  options: FollowOptions,
): Promise<unknown> {
  const { executionArn } = await clients.sfn.send(
    new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(input) }),
  );
  if (!executionArn) throw new Error(`Step Functions started no execution of ${stateMachineArn}`);
  options.onProgress(`execution ${executionArn}`);
  return followExecution(clients, executionArn, options);
}

/** Polls an execution until it ends, reporting each state entered and exited once. */
export async function followExecution(
  clients: AwsClients,
  executionArn: string,
  options: FollowOptions,
): Promise<unknown> {
  let lastEventId = 0;
  for (;;) {
    // Described before the history is read, so a finished execution's history is complete.
    const execution = await clients.sfn.send(new DescribeExecutionCommand({ executionArn }));
    for await (const event of newEvents(clients, executionArn, lastEventId)) {
      lastEventId = event.id ?? lastEventId;
      const line = progressLine(event);
      if (line) options.onProgress(line);
    }
    switch (execution.status) {
      case 'SUCCEEDED':
        return execution.output === undefined ? undefined : JSON.parse(execution.output);
      case 'FAILED':
      case 'TIMED_OUT':
      case 'ABORTED':
        throw failure(execution, options.workflow);
      default: // RUNNING, PENDING_REDRIVE
        await new Promise((resolve) => setTimeout(resolve, options.pollIntervalMs));
    }
  }
}

/** The history's events after `afterId`, oldest first, across every page. */
async function* newEvents(
  clients: AwsClients,
  executionArn: string,
  afterId: number,
): AsyncGenerator<HistoryEvent> {
  let nextToken: string | undefined;
  do {
    const page = await clients.sfn.send(
      new GetExecutionHistoryCommand({ executionArn, reverseOrder: false, maxResults: 1000, nextToken }),
    );
    for (const event of page.events ?? []) if ((event.id ?? 0) > afterId) yield event;
    nextToken = page.nextToken;
  } while (nextToken);
}

/** Choice, Pass, Succeed and Fail states decide, they do no work worth a line. */
const SILENT_STATES = /^(Choice|Pass|Succeed|Fail)State/;

/** `Dump … running` when a state is entered, `Dump … done` when it is left. */
export function progressLine(event: HistoryEvent): string | undefined {
  if (SILENT_STATES.test(event.type ?? '')) return undefined;
  if (event.stateEnteredEventDetails?.name) return `${event.stateEnteredEventDetails.name} … running`;
  if (event.stateExitedEventDetails?.name) return `${event.stateExitedEventDetails.name} … done`;
  return undefined;
}

const DEFAULT_FAILURES: Record<string, [string, string]> = {
  FAILED: ['States.Failed', 'the execution failed'],
  TIMED_OUT: ['States.Timeout', 'the execution timed out'],
  ABORTED: ['States.Aborted', 'the execution was aborted'],
};

/**
 * The execution's error and cause; after a stop or a timeout — which skip the workflow's own
 * cleanup, run after it by the stack's announcer (lib/run-events.ts) — where what that cleanup did
 * and left will show: the run (`GET /v1/runs/{id}`) and its `… Cancelled` or `… Failed` event.
 */
function failure(execution: DescribeExecutionCommandOutput, workflow?: WorkflowName): ExecutionFailed {
  const status = execution.status ?? 'FAILED';
  const [defaultError, defaultCause] = DEFAULT_FAILURES[status] ?? DEFAULT_FAILURES.FAILED;
  const stopped = wasStopped(status) && workflow && execution.name;
  return new ExecutionFailed(
    status,
    execution.error || defaultError,
    `${readableCause(execution.cause) ?? defaultCause}${
      stopped
        ? `; its cleanup runs after it, apart: once done, GET /v1/runs/${workflow}-${execution.name} and the run's event say what it did and left`
        : ''
    }`,
  );
}
