/**
 * A stand-in for the Step Functions control plane (the one thing the API's tests mock), built on
 * recorded executions (`test/fixtures/aws/api-executions.json`: DescribeExecution responses and
 * their histories as AWS returned them). It keeps Step Functions' rules that the API depends on:
 * an execution name is unique per state machine — StartExecution with the name of a running
 * execution and the same input returns it, anything else is `ExecutionAlreadyExists` — and
 * StopExecution aborts. Reached in-process (`send`, the SDK client's seam) or over HTTP
 * (`listen`: the AWS JSON protocol, for a bundled Lambda pointed at it by
 * `AWS_ENDPOINT_URL_SFN`). Every request is recorded in `sent`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { RunKind } from '../../api/runs';

/** DescribeExecution's response, and the history's events oldest first, as recorded (dates as ISO strings). */
interface RecordedExecution {
  describe: Record<string, unknown> & { executionArn: string; stateMachineArn: string; name: string };
  history: Record<string, unknown>[];
}

interface Fixture {
  stateMachineArns: Record<RunKind, string>;
  executions: RecordedExecution[];
}

export interface RecordedStepFunctions {
  stateMachineArns: Record<RunKind, string>;
  /** Every request, in order: the operation (`StartExecution`) and its input. */
  sent: { operation: string; input: Record<string, unknown> }[];
  /** The SDK client seam: answers a command as the SDK would (dates as `Date`s, errors by name). */
  send(command: object): Promise<unknown>;
  /** The history (oldest first) of the execution named `name`, to move it on. */
  historyOf(name: string): Record<string, unknown>[];
  /** Serves the AWS JSON protocol on a local port; resolves with its endpoint URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export const API_EXECUTIONS_FIXTURE = path.join(__dirname, '..', 'fixtures', 'aws', 'api-executions.json');

class ServiceError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

const DATE_FIELDS = new Set(['startDate', 'stopDate', 'timestamp', 'redriveDate']);

/** The store the recorded executions name in their inputs and outputs. */
export const RECORDED_STORE_URL = 's3://pgferry-storebucket-1a2b3c4d5e6f/backups';

/**
 * The recorded executions of `fixtureFile` (a fresh copy: StartExecution and StopExecution change
 * it); `storeUrl` replaces the recorded store in their inputs and outputs (a store the test holds).
 */
export function recordedStepFunctions({
  storeUrl,
  fixtureFile = API_EXECUTIONS_FIXTURE,
}: {
  storeUrl?: string;
  fixtureFile?: string;
} = {}): RecordedStepFunctions {
  const text = readFileSync(fixtureFile, 'utf8');
  const fixture = JSON.parse(storeUrl ? text.replaceAll(RECORDED_STORE_URL, storeUrl) : text) as Fixture;
  const executions = fixture.executions;
  const sent: RecordedStepFunctions['sent'] = [];
  let server: Server | undefined;

  const find = (executionArn: unknown): RecordedExecution => {
    const found = executions.find((e) => e.describe.executionArn === executionArn);
    if (!found)
      throw new ServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    return found;
  };
  const now = () => new Date().toISOString();

  const operations: Record<string, (input: Record<string, unknown>) => Record<string, unknown>> = {
    DescribeExecution: (input) => find(input.executionArn).describe,
    GetExecutionHistory: (input) => {
      const { history } = find(input.executionArn);
      const events = input.reverseOrder ? [...history].reverse() : history;
      const start = Number(input.nextToken ?? 0);
      const size = Number(input.maxResults ?? 100) || 100;
      const page = events.slice(start, start + size);
      return start + size < events.length
        ? { events: page, nextToken: String(start + size) }
        : { events: page };
    },
    StartExecution: (input) => {
      const stateMachineArn = String(input.stateMachineArn);
      const name = String(input.name);
      const executionArn = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
      const existing = executions.find((e) => e.describe.executionArn === executionArn);
      if (existing) {
        if (existing.describe.status === 'RUNNING' && existing.describe.input === input.input) {
          return { executionArn, startDate: existing.describe.startDate };
        }
        throw new ServiceError('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
      }
      const startDate = now();
      executions.push({
        describe: { executionArn, stateMachineArn, name, status: 'RUNNING', startDate, input: input.input },
        history: [{ id: 1, previousEventId: 0, type: 'ExecutionStarted', timestamp: startDate }],
      });
      return { executionArn, startDate };
    },
    StopExecution: (input) => {
      const execution = find(input.executionArn);
      if (execution.describe.status !== 'RUNNING') {
        throw new ServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${input.executionArn}'`);
      }
      const stopDate = now();
      Object.assign(execution.describe, {
        status: 'ABORTED',
        stopDate,
        error: input.error,
        cause: input.cause,
      });
      execution.history.push({
        id: execution.history.length + 1,
        previousEventId: execution.history.length,
        type: 'ExecutionAborted',
        timestamp: stopDate,
        executionAbortedEventDetails: { error: input.error, cause: input.cause },
      });
      return { stopDate };
    },
    ListExecutions: (input) => {
      const listed = executions
        .map((e) => e.describe)
        .filter((d) => d.stateMachineArn === input.stateMachineArn)
        .filter((d) => input.statusFilter === undefined || d.status === input.statusFilter)
        .sort((a, b) => String(b.startDate).localeCompare(String(a.startDate)))
        .map(({ executionArn, stateMachineArn, name, status, startDate, stopDate }) => ({
          executionArn,
          stateMachineArn,
          name,
          status,
          startDate,
          ...(stopDate ? { stopDate } : {}),
        }));
      const start = Number(input.nextToken ?? 0);
      const size = Number(input.maxResults ?? 100) || 100;
      const page = listed.slice(start, start + size);
      return start + size < listed.length
        ? { executions: page, nextToken: String(start + size) }
        : { executions: page };
    },
  };

  const answer = (operation: string, input: Record<string, unknown>): Record<string, unknown> => {
    sent.push({ operation, input });
    const handle = operations[operation];
    if (!handle) throw new ServiceError('UnknownOperationException', `not recorded: ${operation}`);
    return structuredClone(handle(input));
  };

  return {
    stateMachineArns: fixture.stateMachineArns,
    sent,
    historyOf(name: string) {
      const execution = executions.find((e) => e.describe.name === name);
      if (!execution) throw new Error(`no recorded execution ${name}`);
      return execution.history;
    },
    async send(command: object) {
      const operation = command.constructor.name.replace(/Command$/, '');
      const input = (command as { input: Record<string, unknown> }).input;
      return reviveDates(answer(operation, input));
    },
    listen() {
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        req.on('end', () => {
          const operation = String(req.headers['x-amz-target'] ?? '').replace(/^AWSStepFunctions\./, '');
          res.setHeader('content-type', 'application/x-amz-json-1.0');
          try {
            res.end(JSON.stringify(epochDates(answer(operation, JSON.parse(body || '{}')))));
          } catch (err) {
            const { name, message } = err as Error;
            res.statusCode = 400;
            res.end(JSON.stringify({ __type: name, message }));
          }
        });
      });
      const listening = server;
      return new Promise((resolve) => {
        listening.listen(0, '127.0.0.1', () => {
          resolve(`http://127.0.0.1:${(listening.address() as AddressInfo).port}`);
        });
      });
    },
    close: () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
  };
}

/** ISO strings of date fields → `Date`s, as the SDK deserializes them. */
function reviveDates(value: unknown): unknown {
  return mapDates(value, (iso) => new Date(iso));
}

/** ISO strings of date fields → epoch seconds, as the AWS JSON protocol sends them. */
function epochDates(value: unknown): unknown {
  return mapDates(value, (iso) => Date.parse(iso) / 1000);
}

function mapDates(value: unknown, convert: (iso: string) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => mapDates(v, convert));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        DATE_FIELDS.has(k) && typeof v === 'string' ? convert(v) : mapDates(v, convert),
      ]),
    );
  }
  return value;
}
