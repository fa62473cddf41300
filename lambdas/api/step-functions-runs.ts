/**
 * The API's runs on AWS: each run is one execution of one of the stack's four state machines.
 * Step Functions keeps everything (no table of runs): the execution name is the run's name (the
 * caller's `Idempotency-Key`, or a new run id), its input the request, its history the state it
 * is in, its output the document it stored.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  type ExecutionListItem,
  type ExecutionStatus,
  GetExecutionHistoryCommand,
  type GetExecutionHistoryCommandInput,
  type HistoryEvent,
  ListExecutionsCommand,
  type SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import {
  compareRuns,
  DEFAULT_RUN_LIMIT,
  decodeRunCursor,
  IdempotencyConflict,
  MAX_RUN_LIMIT,
  pageOf,
  RUN_KINDS,
  type Run,
  type RunCursor,
  type RunFilter,
  type RunHost,
  type RunKind,
  type RunList,
  type RunStatus,
  runDatabase,
  type StartRun,
} from '../../api/runs';
import { PgferryError, readableCause } from '../../core/errors';
import type { BackupStore } from '../../core/store';
import { newBackupId } from '../../core/store-keys';
import { MIGRATE_STATES, wasStopped } from '../../core/workflows';
import { readRunCleanup } from './run-cleanup';

export interface StepFunctionsRunsOptions {
  /** The Step Functions client (a seam: tests give recorded responses). */
  sfn: Pick<SFNClient, 'send'>;
  /** Each kind's state machine. */
  stateMachineArns: Record<RunKind, string>;
  /** The deployment's store: every request is given it, and results are read from it. */
  store: BackupStore;
  /**
   * At most this many runs per `list` unless its filter says otherwise (newest first).
   * @default 100
   */
  listLimit?: number;
}

/**
 * The states of a migration's cutover: once the target secret has been pointed at the target,
 * the failure path's undoing (the source unfrozen, the services restarted) is no longer a return
 * to before, so the API does not cancel such a migration.
 */
const MIGRATE_CUTOVER_STATES = [
  MIGRATE_STATES.updateSecret,
  MIGRATE_STATES.cutoverCommand,
  MIGRATE_STATES.scaleUp,
  MIGRATE_STATES.finish,
] as const;

/** The error and cause a cancelled execution stops with (StopExecution). */
export const CANCELLED = {
  error: 'pgferry.Cancelled',
  cause: 'cancelled through the API (DELETE /v1/runs/{id})',
};

const STATUS_OF: Record<ExecutionStatus, RunStatus> = {
  RUNNING: 'running',
  // A failed execution waiting to be redriven has not ended for good.
  PENDING_REDRIVE: 'running',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
  TIMED_OUT: 'failed',
  ABORTED: 'cancelled',
};

/** The execution statuses a run status lists (ListExecutions filters by one at a time). */
const EXECUTION_STATUSES: Record<RunStatus, ExecutionStatus[]> = {
  running: ['RUNNING', 'PENDING_REDRIVE'],
  succeeded: ['SUCCEEDED'],
  failed: ['FAILED', 'TIMED_OUT'],
  cancelled: ['ABORTED'],
};

/**
 * A run's id is `<kind>-<execution name>`: the kind names the state machine (kinds hold no dash),
 * the name the execution in it. Names are 1–80 characters of `[A-Za-z0-9_-]` (the API's
 * idempotency keys, or a new run id such as `20261202T051500Z-3fa9c1`).
 */
export function runId(kind: RunKind, executionName: string): string {
  return `${kind}-${executionName}`;
}

/** The kind and execution name of a run id; undefined for an id no run can have. */
export function parseRunId(id: string): { kind: RunKind; name: string } | undefined {
  const match = /^([a-z]+)-([A-Za-z0-9_-]{1,80})$/.exec(id);
  if (!match || !(RUN_KINDS as readonly string[]).includes(match[1])) return undefined;
  return { kind: match[1] as RunKind, name: match[2] };
}

/** `arn:…:stateMachine:<machine>` → `arn:…:execution:<machine>:<name>`. */
export function executionArnOf(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

function isNamed(err: unknown, name: string): boolean {
  return err instanceof Error && err.name === name;
}

/**
 * The `RunHost` of the API's Lambda. Idempotency is Step Functions' own: a Standard workflow
 * refuses a second execution of one name for 90 days after the first closed (then the name, and
 * so the key, may start a new run).
 */
export class StepFunctionsRuns implements RunHost {
  private readonly sfn: Pick<SFNClient, 'send'>;
  private readonly listLimit: number;

  constructor(private readonly options: StepFunctionsRunsOptions) {
    this.sfn = options.sfn;
    this.listLimit = options.listLimit ?? DEFAULT_RUN_LIMIT;
  }

  /**
   * Starts an execution named by the idempotency key (else a new run id) with the request and the
   * store. A key already used — by an execution of any kind — returns that run when its input is
   * this one, and is a conflict otherwise: checked before starting, and again when Step Functions
   * answers `ExecutionAlreadyExists` (a concurrent POST with the same key started it first, or
   * the execution closed), so two concurrent POSTs with one key start one execution.
   */
  async start({ kind, request, idempotencyKey }: StartRun): Promise<{ run: Run; created: boolean }> {
    const input = { ...(request as Record<string, unknown>), store: this.options.store.url };
    const name = idempotencyKey ?? newBackupId();
    if (idempotencyKey) {
      const earlier = await this.findKey(idempotencyKey);
      if (earlier) return { run: await this.replay(earlier, kind, input, idempotencyKey), created: false };
    }
    const stateMachineArn = this.options.stateMachineArns[kind];
    try {
      const started = await this.sfn.send(
        new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }),
      );
      const run: Run = {
        id: runId(kind, name),
        kind,
        status: 'running',
        startedAt: (started.startDate ?? new Date()).toISOString(),
      };
      const database = runDatabase(kind, input);
      return { run: database === undefined ? run : { ...run, database }, created: true };
    } catch (err) {
      if (!idempotencyKey || !isNamed(err, 'ExecutionAlreadyExists')) throw err;
      const execution = await this.describe(executionArnOf(stateMachineArn, name));
      if (!execution) throw err;
      return { run: await this.replay({ kind, execution }, kind, input, idempotencyKey), created: false };
    }
  }

  async get(id: string): Promise<Run | undefined> {
    const parsed = parseRunId(id);
    if (!parsed) return undefined;
    const execution = await this.describe(
      executionArnOf(this.options.stateMachineArns[parsed.kind], parsed.name),
    );
    return execution && this.runOf(parsed.kind, execution);
  }

  /**
   * Newest first, across the kinds asked for: ListExecutions per state machine and status, each
   * read from its newest past the page's cursor (the last run of the page before) until `since`
   * or one more than the limit, then merged. Step Functions' own nextToken belongs to one list,
   * so the page's token is the cursor, as locally. Listed runs carry no state, result or error
   * (`get` has them).
   */
  async list(filter: RunFilter): Promise<RunList> {
    const kinds = filter.kind ? [filter.kind] : [...RUN_KINDS];
    const statuses: (ExecutionStatus | undefined)[] = filter.status
      ? EXECUTION_STATUSES[filter.status]
      : [undefined];
    const since = filter.since ? Date.parse(filter.since) : undefined;
    const limit = Math.min(filter.limit ?? this.listLimit, MAX_RUN_LIMIT);
    const cursor = filter.next === undefined ? undefined : decodeRunCursor(filter.next);
    const lists = await Promise.all(
      kinds.flatMap((kind) =>
        statuses.map((status) => this.listExecutions(kind, status, since, cursor, limit + 1)),
      ),
    );
    return pageOf(lists.flat().sort(compareRuns), { limit, next: filter.next });
  }

  /**
   * Stops the execution (StopExecution, with `pgferry.Cancelled`). Step Functions skips a stopped
   * execution's Catch steps, so the announcer (lib/run-events.ts) runs them when it hears the
   * execution stopped: it stops the pg-tools task (whose runner cleans up what it made, as on
   * SIGTERM) and runs the workflow's cleanup (a backup's Cleanup, MigrateCleanup), then announces
   * the run. A migration whose cutover has begun is refused (`InvalidInput`).
   */
  async cancel(id: string): Promise<Run | undefined> {
    const parsed = parseRunId(id);
    if (!parsed) return undefined;
    const executionArn = executionArnOf(this.options.stateMachineArns[parsed.kind], parsed.name);
    const execution = await this.describe(executionArn);
    if (!execution) return undefined;
    if (execution.status === 'RUNNING' || execution.status === 'PENDING_REDRIVE') {
      if (parsed.kind === 'migrate') await this.refuseCancelInCutover(id, executionArn);
      try {
        await this.sfn.send(new StopExecutionCommand({ executionArn, ...CANCELLED }));
      } catch (err) {
        // It ended between the two calls: it is what it is.
        if (!isNamed(err, 'ExecutionDoesNotExist')) throw err;
      }
      return this.get(id);
    }
    return this.runOf(parsed.kind, execution);
  }

  /**
   * A migration in its cutover (the target secret pointed at the target, the cutover command,
   * the services scaled back up, the finish) is not cancelled: its cleanup would unfreeze a
   * source that the applications have already left.
   */
  private async refuseCancelInCutover(id: string, executionArn: string): Promise<void> {
    const entered = await this.enteredStates(executionArn);
    const begun = MIGRATE_CUTOVER_STATES.filter((state) => entered.has(state));
    if (begun.length > 0) {
      throw new PgferryError(
        'InvalidInput',
        `run ${id} has entered ${begun.join(', ')}: its cutover has begun, and cancelling it would unfreeze a source the applications have left; let it finish or fail`,
      );
    }
  }

  /** Every state the execution has entered. */
  private async enteredStates(executionArn: string): Promise<Set<string>> {
    const entered = new Set<string>();
    for await (const event of historyEvents(this.sfn, {
      executionArn,
      maxResults: 1000,
      includeExecutionData: false,
    })) {
      if (event.stateEnteredEventDetails?.name) entered.add(event.stateEnteredEventDetails.name);
    }
    return entered;
  }

  /** The execution named `name` in any state machine (kinds asked in parallel). */
  private async findKey(
    name: string,
  ): Promise<{ kind: RunKind; execution: DescribeExecutionCommandOutput } | undefined> {
    const found = await Promise.all(
      RUN_KINDS.map(async (kind) => {
        const execution = await this.describe(executionArnOf(this.options.stateMachineArns[kind], name));
        return execution && { kind, execution };
      }),
    );
    return found.find((f) => f !== undefined);
  }

  /** The run an idempotency key already started, when it was started with this very request. */
  private async replay(
    earlier: { kind: RunKind; execution: DescribeExecutionCommandOutput },
    kind: RunKind,
    input: unknown,
    key: string,
  ): Promise<Run> {
    const sameInput =
      earlier.kind === kind &&
      earlier.execution.input !== undefined &&
      isDeepStrictEqual(JSON.parse(earlier.execution.input), input);
    if (!sameInput) throw new IdempotencyConflict(key);
    return this.runOf(kind, earlier.execution);
  }

  private async describe(executionArn: string): Promise<DescribeExecutionCommandOutput | undefined> {
    try {
      return await this.sfn.send(new DescribeExecutionCommand({ executionArn }));
    } catch (err) {
      if (isNamed(err, 'ExecutionDoesNotExist')) return undefined;
      throw err;
    }
  }

  /** A described execution as the API shows it. */
  private async runOf(kind: RunKind, execution: DescribeExecutionCommandOutput): Promise<Run> {
    const status = STATUS_OF[execution.status ?? 'RUNNING'] ?? 'running';
    const input = parseJson(execution.input);
    const database = runDatabase(kind, input);
    const entered = await this.lastEnteredState(execution.executionArn ?? '');
    const state = entered?.state;
    const run: Run = {
      id: runId(kind, execution.name ?? ''),
      kind,
      status,
      startedAt: (execution.startDate ?? new Date(0)).toISOString(),
      ...(execution.stopDate ? { finishedAt: execution.stopDate.toISOString() } : {}),
      ...(database === undefined ? {} : { database }),
      ...(state ? { state } : {}),
      // What the history says of a running run's progress: the state, and since when. The task's
      // bytes are in its logs, not in the history.
      ...(status === 'running' && entered ? { progress: entered } : {}),
    };
    if (status === 'succeeded') {
      const result = await this.resultOf(parseJson(execution.output));
      if (result !== undefined) run.result = result;
    } else if (status !== 'running') {
      run.error = {
        error: execution.error || (status === 'cancelled' ? 'States.Aborted' : 'States.Failed'),
        cause:
          readableCause(execution.cause) ??
          (execution.status === 'TIMED_OUT' ? 'the execution timed out' : `the execution ${status}`),
      };
    }
    // A stopped (or timed-out) execution skipped its cleanup: the announcer ran it, and recorded
    // what it did and left (lib/run-events.ts) once it had ended.
    if (wasStopped(execution.status)) {
      const cleanup = await readRunCleanup(this.options.store, run.id);
      if (cleanup) run.cleanup = cleanup;
    }
    return run;
  }

  /** The last state the execution entered, and when (its history, newest first). */
  private async lastEnteredState(
    executionArn: string,
  ): Promise<{ state: string; enteredAt: string } | undefined> {
    for await (const event of historyEvents(this.sfn, {
      executionArn,
      reverseOrder: true,
      maxResults: 50,
      includeExecutionData: false,
    })) {
      const name = event.stateEnteredEventDetails?.name;
      if (name) return { state: name, enteredAt: (event.timestamp ?? new Date(0)).toISOString() };
    }
    return undefined;
  }

  /**
   * A succeeded execution's result: the document its output names (the manifest, the restore,
   * verification or migration report) read from the store, else the output itself.
   */
  private async resultOf(output: unknown): Promise<unknown> {
    const at = output as { store?: unknown; key?: unknown } | undefined;
    if (at && at.store === this.options.store.url && typeof at.key === 'string') {
      const document = await this.options.store.getJson(at.key);
      if (document !== undefined) return document;
    }
    return output;
  }

  /** One state machine's executions (of one status) after `cursor`: `want` of them at most. */
  private async listExecutions(
    kind: RunKind,
    statusFilter: ExecutionStatus | undefined,
    since: number | undefined,
    cursor: RunCursor | undefined,
    want: number,
  ): Promise<Run[]> {
    const runs: Run[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.sfn.send(
        new ListExecutionsCommand({
          stateMachineArn: this.options.stateMachineArns[kind],
          statusFilter,
          // Past a cursor, whole pages are passed over: the largest page costs one call per 1,000.
          maxResults: cursor ? 1000 : Math.min(want, 1000),
          nextToken,
        }),
      );
      for (const item of page.executions ?? []) {
        // Newest first: the first one older than `since` ends this list.
        if (since !== undefined && (item.startDate?.getTime() ?? 0) < since) return runs;
        const run = listedRun(kind, item);
        if (cursor && compareRuns(cursor, run) >= 0) continue; // on an earlier page
        runs.push(run);
        if (runs.length >= want) return runs;
      }
      nextToken = page.nextToken;
    } while (nextToken);
    return runs;
  }
}

function listedRun(kind: RunKind, item: ExecutionListItem): Run {
  return {
    id: runId(kind, item.name ?? ''),
    kind,
    status: STATUS_OF[item.status ?? 'RUNNING'] ?? 'running',
    startedAt: (item.startDate ?? new Date(0)).toISOString(),
    ...(item.stopDate ? { finishedAt: item.stopDate.toISOString() } : {}),
  };
}

/**
 * An execution's history events, fetched a page at a time as they are read (Step Functions'
 * `nextToken` followed to the end, or until the reader stops).
 */
export async function* historyEvents(
  sfn: Pick<SFNClient, 'send'>,
  input: Omit<GetExecutionHistoryCommandInput, 'nextToken'>,
): AsyncGenerator<HistoryEvent> {
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ ...input, nextToken }));
    yield* page.events ?? [];
    nextToken = page.nextToken;
  } while (nextToken);
}

/** `text` parsed as JSON; undefined when it is absent or not JSON. */
export function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
