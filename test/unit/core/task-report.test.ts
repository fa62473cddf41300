import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { LocalStore } from '../../../core/store';
import { reportOrFailure } from '../../../core/task-report';

const ReportSchema = z.object({ status: z.enum(['passed', 'failed']), error: z.string().optional() });
const store = () => new LocalStore(mkdtempSync(path.join(tmpdir(), 'pgferry-report-')));

test('a passed report is the output, even after a caught error', async () => {
  const s = store();
  await s.putJson('r.json', { status: 'passed' });
  await expect(
    reportOrFailure(s, 'r.json', ReportSchema, 'restore', { Error: 'States.TaskFailed' }),
  ).resolves.toEqual({
    status: 'passed',
  });
});

test("a failed report fails the execution with the report's own error", async () => {
  const s = store();
  await s.putJson('r.json', { status: 'failed', error: 'pg_restore failed (1): ERROR: out of disk' });
  await expect(
    reportOrFailure(s, 'r.json', ReportSchema, 'restore', {
      Error: 'States.TaskFailed',
      Cause: '{"Containers":[]}',
    }),
  ).rejects.toThrow(/^pg_restore failed \(1\): ERROR: out of disk$/);
});

test('without a report, the caught error is passed on', async () => {
  const rejected = reportOrFailure(store(), 'r.json', ReportSchema, 'restore', {
    Error: 'ECS.AmazonECSException',
    Cause: 'No Container Instances were found',
  });
  await expect(rejected).rejects.toMatchObject({
    name: 'ECS.AmazonECSException',
    message: 'No Container Instances were found',
  });
});

test('without a report or a caught error, the report is said to be missing', async () => {
  await expect(reportOrFailure(store(), 'r.json', ReportSchema, 'verification', undefined)).rejects.toThrow(
    'the verification left no report',
  );
});
