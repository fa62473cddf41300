/** The run-finished event: the detail-type and detail EventBridge and the webhook carry. */
import { runFinishedEvent } from '../../../api/events';
import type { Run } from '../../../api/runs';

const base = { id: 'run-1', startedAt: '2026-12-02T00:00:00.000Z', finishedAt: '2026-12-02T00:01:00.000Z' };

test.each([
  [
    {
      ...base,
      kind: 'backup',
      status: 'succeeded',
      database: 'shop',
      result: { id: 'b1', database: 'shop' },
    },
    'Backup Succeeded',
    'backup b1 of shop is complete',
  ],
  [
    {
      ...base,
      kind: 'restore',
      status: 'failed',
      database: 'shop',
      error: { error: 'Pgferry.TargetRefused', cause: 'database shop exists' },
    },
    'Restore Failed',
    'Pgferry.TargetRefused: database shop exists',
  ],
  [{ ...base, kind: 'verify', status: 'cancelled' }, 'Verification Cancelled', 'cancelled'],
  [
    { ...base, kind: 'migrate', status: 'succeeded', result: { databases: [{}, {}] } },
    'Migration Succeeded',
    'migrated 2 databases',
  ],
] as [Run, string, string][])('%#: %s', (run, detailType, summary) => {
  const event = runFinishedEvent(run);
  expect(event).toEqual({
    source: 'pgferry',
    detailType,
    detail: { id: 'run-1', kind: run.kind, database: run.database ?? null, status: run.status, summary },
  });
});

test('a running run has no finished event', () => {
  expect(() => runFinishedEvent({ ...base, kind: 'backup', status: 'running' })).toThrow(/still running/);
});
