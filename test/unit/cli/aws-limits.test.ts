/**
 * The local executor enforces AWS's limits (cli/aws-limits.ts) as AWS would: a state, a task's
 * input or result, or the execution's output over Step Functions' 256 KiB ends the run with
 * `States.DataLimitExceeded` (no Catch applies, nothing after it runs); ECS container overrides
 * over 8,192 characters fail the task state (its Catch applies). Each is one line naming the
 * limit. Tiny state machines run by the real interpreter: no database involved.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import {
  checkContainerOverrides,
  checkPayload,
  containerOverridesCharacters,
  MAX_CONTAINER_OVERRIDES_CHARACTERS,
  MAX_PAYLOAD_BYTES,
  payloadBytes,
} from '../../../cli/aws-limits';
import { runDefinition, runPgToolsTask } from '../../../cli/local-executor';

/** A JSON string value of exactly `bytes` bytes of JSON (quotes included). */
const jsonOfBytes = (bytes: number) => 'x'.repeat(bytes - 2);

describe('the checks', () => {
  test('a payload of 256 KiB of JSON passes, one byte more is refused, naming the limit and what exceeded it', () => {
    expect(payloadBytes(jsonOfBytes(MAX_PAYLOAD_BYTES))).toBe(262_144);
    expect(checkPayload('the output of state X', jsonOfBytes(MAX_PAYLOAD_BYTES))).toBeUndefined();
    const error = checkPayload('the output of state X', jsonOfBytes(MAX_PAYLOAD_BYTES + 1));
    expect(error).toMatchObject({
      name: 'States.DataLimitExceeded',
      message:
        "the output of state X is 262145 bytes of JSON, more than the 262144 (256 KiB) Step Functions allows for a state's or an execution's input or output",
      isCatchable: false,
      isRetryable: false,
    });
  });

  test('payloads are counted in bytes of UTF-8, as Step Functions counts them', () => {
    expect(payloadBytes({ name: 'Ünïcødé' })).toBe(JSON.stringify({ name: 'Ünïcødé' }).length + 4);
    const characters = (MAX_PAYLOAD_BYTES - 2) / 2; // 2-byte characters: under the limit in characters, at it in bytes
    expect(checkPayload('x', 'é'.repeat(characters))).toBeUndefined();
    expect(checkPayload('x', 'é'.repeat(characters + 1))).toBeDefined();
  });

  test('container overrides are counted as their JSON, formatting included; over 8,192 characters is refused', () => {
    const overrides = (value: string) => [{ Name: 'pg-tools', Environment: [{ Name: 'V', Value: value }] }];
    const frame = containerOverridesCharacters(overrides(''));
    expect(frame).toBe(JSON.stringify(overrides('')).length);
    expect(
      checkContainerOverrides(overrides('x'.repeat(MAX_CONTAINER_OVERRIDES_CHARACTERS - frame))),
    ).toBeUndefined();
    expect(
      checkContainerOverrides(overrides('x'.repeat(MAX_CONTAINER_OVERRIDES_CHARACTERS - frame + 1))),
    ).toMatchObject({
      name: 'ECS.InvalidParameterException',
      message:
        "the ECS task's container overrides are 8193 characters, more than the 8192 ECS RunTask allows (JSON formatting included)",
      isCatchable: true,
    });
  });
});

describe('the local executor enforces them', () => {
  const big = jsonOfBytes(MAX_PAYLOAD_BYTES + 1);
  const task = (next: Record<string, unknown>) => ({
    Type: 'Task',
    Resource: 'arn:aws:states:::lambda:invoke',
    ...next,
  });
  const run = (definition: object, handlers: Record<string, (input: unknown) => Promise<unknown>>) =>
    runDefinition(new StateMachine(definition as never), 'test', {}, {}, handlers).then(
      (output) => ({ output }),
      (error: Error) => ({ error }),
    );

  test("a state's output over 256 KiB ends the run before the next task starts", async () => {
    const called: string[] = [];
    const result = await run(
      {
        StartAt: 'Big',
        States: {
          Big: { Type: 'Pass', Result: big, Next: 'After' },
          After: task({ End: true }),
        },
      },
      { After: async () => called.push('After') },
    );
    expect(result).toEqual({ error: expect.objectContaining({ name: 'States.DataLimitExceeded' }) });
    expect((result as { error: Error }).error.message).toMatch(
      /^the output of state Big is 262145 bytes of JSON, more than/,
    );
    expect(called).toEqual([]);
  });

  test("a task's result over 256 KiB ends the run: no Catch applies, as on AWS", async () => {
    const called: string[] = [];
    const result = await run(
      {
        StartAt: 'Large',
        States: {
          Large: task({ Next: 'Done', Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }] }),
          Caught: task({ End: true }),
          Done: { Type: 'Succeed' },
        },
      },
      {
        Large: async () => big,
        Caught: async () => called.push('Caught'),
      },
    );
    expect((result as { error: Error }).error).toMatchObject({
      name: 'States.DataLimitExceeded',
      message: expect.stringMatching(/^the result of task Large is 262145 bytes of JSON, more than/),
    });
    expect(called).toEqual([]);
  });

  test("the execution's output over 256 KiB fails the run", async () => {
    const result = await run(
      { StartAt: 'Last', States: { Last: { Type: 'Pass', Result: big, End: true } } },
      {},
    );
    expect((result as { error: Error }).error).toMatchObject({ name: 'States.DataLimitExceeded' });
  });

  test('payloads within the limits pass, and each task is recorded with its parameters', async () => {
    const events: { type: string; state?: string }[] = [];
    const output = await runDefinition(
      new StateMachine({
        StartAt: 'Near',
        States: {
          Near: { Type: 'Pass', Result: jsonOfBytes(MAX_PAYLOAD_BYTES), Next: 'Task' },
          Task: task({ Parameters: { 'size.$': "States.StringToJson('1')" }, End: true }),
        },
      } as never),
      'test',
      {},
      { onEvent: (e) => events.push(e as { type: string }) },
      { Task: async () => ({ ok: true }) },
    );
    expect(output).toEqual({ ok: true });
    expect(events.filter((e) => e.type === 'TaskScheduled')).toEqual([
      expect.objectContaining({ state: 'Task', parameters: { size: 1 } }),
    ]);
  });

  test("ECS container overrides over 8,192 characters fail the task before it starts; the state's Catch applies", async () => {
    const params = {
      Overrides: {
        ContainerOverrides: [
          { Name: 'pg-tools', Environment: [{ Name: 'PGFERRY_ACTION', Value: 'x'.repeat(8200) }] },
        ],
      },
    };
    await expect(runPgToolsTask(params)).rejects.toMatchObject({
      name: 'ECS.InvalidParameterException',
      message: expect.stringMatching(
        /^the ECS task's container overrides are 82\d\d characters, more than the 8192/,
      ),
    });
    const output = await runDefinition(
      new StateMachine({
        StartAt: 'Dump',
        States: {
          Dump: task({
            Next: 'Done',
            Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Done' }],
          }),
          Done: { Type: 'Succeed' },
        },
      } as never),
      'test',
      {},
      {},
      { Dump: () => runPgToolsTask(params) },
    );
    expect(output).toEqual({
      error: { Error: 'ECS.InvalidParameterException', Cause: expect.stringMatching(/8192/) },
    });
  });
});
