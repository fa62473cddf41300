/**
 * There is one workflow definition: the ASL the CLI runs locally is the one synthesized from
 * lib/ (the build writes it to dist/asl/; this checks it is not stale or hand-edited).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { synthesizeWorkflowDefinitions } from '../../../lib/asl';
import { REPO } from '../../support/cli';

const synthesized = synthesizeWorkflowDefinitions();

test('the ASL the CLI runs equals the ASL synthesized from the CDK app', () => {
  const built = JSON.parse(readFileSync(path.join(REPO, 'dist', 'asl', 'backup.asl.json'), 'utf8'));
  expect(built).toEqual(synthesized.backup);
});

test('the migrate ASL the CLI runs equals the synthesized one', () => {
  const built = JSON.parse(readFileSync(path.join(REPO, 'dist', 'asl', 'migrate.asl.json'), 'utf8'));
  expect(built).toEqual(synthesized.migrate);
});

test('the server-backup ASL the CLI runs (backup --all-databases) equals the synthesized one', () => {
  const built = JSON.parse(readFileSync(path.join(REPO, 'dist', 'asl', 'server-backup.asl.json'), 'utf8'));
  expect(built).toEqual(synthesized['server-backup']);
});

test('the CLI loads its definition from the generated file', async () => {
  const { loadDefinition } = await import('../../../cli/local-executor');
  expect(loadDefinition('backup')).toEqual(synthesized.backup);
});

test('the backup workflow runs Preflight → Dump → Record, and Cleanup → BackupFailed on failure', () => {
  const states = synthesized.backup.States as Record<
    string,
    { Next?: string; End?: boolean; Catch?: { Next: string }[] }
  >;
  expect(synthesized.backup.StartAt).toBe('Preflight');
  expect(states.Preflight.Next).toBe('Dump');
  expect(states.Dump.Next).toBe('Record');
  expect(states.Record.End).toBe(true);
  expect(states.Dump.Catch?.map((c) => c.Next)).toEqual(['Cleanup']);
  expect(states.Record.Catch?.map((c) => c.Next)).toEqual(['Cleanup']);
  expect(states.Cleanup.Next).toBe('BackupFailed');
});

test("Preflight is given the execution's id, so that a retry of it gets its own lease back", () => {
  // With payloadResponseOnly, the state's Parameters are the Lambda's payload.
  const states = synthesized.backup.States as Record<string, { Parameters?: unknown }>;
  expect(states.Preflight.Parameters).toEqual({
    'request.$': '$',
    'executionId.$': '$$.Execution.Id',
  });
});

test.each([
  ['backup', 'Dump'],
  ['restore', 'Restore'],
  ['verify', 'Verify'],
  ['migrate', 'Migrate'],
  ['migrate', 'SchemaTest'],
] as const)("the %s workflow's task is sized per run by preflight (CPU, memory, disk)", (workflow, state) => {
  const task = (synthesized[workflow].States as Record<string, { Parameters: { Overrides: unknown } }>)[
    state
  ];
  expect(task.Parameters.Overrides).toMatchObject({
    'Cpu.$': '$.taskSize.cpu',
    'Memory.$': '$.taskSize.memoryMiB',
    EphemeralStorage: { 'SizeInGiB.$': '$.taskSize.ephemeralStorageGiB' },
  });
});
