/**
 * AWS's limits on what the workflows hand around, which the local executor enforces, so that a run
 * that would fail on AWS fails here too — and every test that runs a workflow checks them:
 *
 * - Step Functions: 256 KiB of JSON (UTF-8) for an execution's input and output, every state's
 *   input and output, and what a task is given and returns. On AWS exceeding one fails the
 *   execution with `States.DataLimitExceeded`, which no `Catch` or `Retry` matches.
 * - ECS RunTask: 8,192 characters of container overrides, their JSON formatting included. On
 *   AWS the task state fails (and its `Catch` applies).
 */
import { MAX_EXECUTION_INPUT_BYTES } from '../core/contracts';

/** Step Functions' limit on an execution's, a state's or a task's input and output: 256 KiB. */
export const MAX_PAYLOAD_BYTES = MAX_EXECUTION_INPUT_BYTES;

/** ECS RunTask's limit on `overrides.containerOverrides`, as JSON. */
export const MAX_CONTAINER_OVERRIDES_CHARACTERS = 8192;

/** A limit AWS would refuse the run at: thrown with AWS's error name and one line naming the limit. */
export class AwsLimitExceeded extends Error {
  /** Whether a state's `Retry` may match it (aws-local-stepfunctions reads these two). */
  readonly isRetryable = false;
  /** Whether a state's `Catch` may match it: not for Step Functions' own data limit. */
  readonly isCatchable: boolean;

  constructor(name: string, message: string, catchable: boolean) {
    super(message);
    this.name = name;
    this.isCatchable = catchable;
  }
}

/** Bytes of `value` as JSON in UTF-8, as Step Functions counts them. */
export function payloadBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}

/**
 * `undefined` when `value` is within Step Functions' 256 KiB, else the error that ends the run.
 * `what` names the payload: `the output of state Record`, `the execution's output`, …
 */
export function checkPayload(what: string, value: unknown): AwsLimitExceeded | undefined {
  const bytes = payloadBytes(value);
  if (bytes <= MAX_PAYLOAD_BYTES) return undefined;
  return new AwsLimitExceeded(
    'States.DataLimitExceeded',
    `${what} is ${bytes} bytes of JSON, more than the ${MAX_PAYLOAD_BYTES} (256 KiB) Step Functions allows for a state's or an execution's input or output`,
    false,
  );
}

/** Characters of a RunTask's container overrides, as ECS counts them (the JSON, formatting included). */
export function containerOverridesCharacters(containerOverrides: unknown): number {
  return (JSON.stringify(containerOverrides) ?? '').length;
}

/** `undefined` when the container overrides are within ECS's 8,192 characters, else the task's error. */
export function checkContainerOverrides(containerOverrides: unknown): AwsLimitExceeded | undefined {
  const characters = containerOverridesCharacters(containerOverrides);
  if (characters <= MAX_CONTAINER_OVERRIDES_CHARACTERS) return undefined;
  return new AwsLimitExceeded(
    'ECS.InvalidParameterException',
    `the ECS task's container overrides are ${characters} characters, more than the ${MAX_CONTAINER_OVERRIDES_CHARACTERS} ECS RunTask allows (JSON formatting included)`,
    true,
  );
}
