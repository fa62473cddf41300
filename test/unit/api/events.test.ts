/** The run-finished event: the detail-type and detail EventBridge and the webhook carry. */
import {
  boundedCleanup,
  CLEANUP_MAX_BYTES,
  CLEANUP_MAX_LINE_CHARS,
  CLEANUP_MAX_LINES,
  runFinishedEvent,
} from '../../../api/events';
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

const cancelledRestore: Run = {
  ...base,
  kind: 'restore',
  status: 'cancelled',
  database: 'shop',
  error: { error: 'pgferry.Cancelled', cause: 'cancelled through the API (DELETE /v1/runs/{id})' },
};

test('a stopped run whose cleanup ran apart from it carries that cleanup: what it did, left and its error', () => {
  const cleanup = {
    notes: ['the database shop_drill_restoring, … was dropped'],
    left: ['2 session(s) of the run … are still on the target server'],
    error: { error: 'Lambda.Unknown', cause: 'the function timed out' },
  };
  expect(runFinishedEvent(cancelledRestore, cleanup).detail).toEqual({
    id: 'run-1',
    kind: 'restore',
    database: 'shop',
    status: 'cancelled',
    summary: 'cancelled: cancelled through the API (DELETE /v1/runs/{id})',
    cleanup,
  });
  // A run that cleaned up itself (every local run, a failed run on AWS) has none: its error says it.
  expect(runFinishedEvent(cancelledRestore).detail).not.toHaveProperty('cleanup');
});

test('long lists are cut with a count of the lines left out, long lines with an ellipsis', () => {
  const notes = Array.from({ length: 45 }, (_, i) => `the database db_${i} it left incomplete was dropped`);
  const long = `the database x is left in place (${'e'.repeat(5000)})`;
  const { cleanup } = runFinishedEvent(cancelledRestore, {
    notes,
    left: [long],
    error: { error: 'pgferry.Failed', cause: 'c'.repeat(5000) },
  }).detail;
  expect(cleanup?.notes).toEqual([...notes.slice(0, CLEANUP_MAX_LINES - 1), '… and 26 more']);
  expect(cleanup?.left).toEqual([`${long.slice(0, CLEANUP_MAX_LINE_CHARS - 1)}…`]);
  expect(cleanup?.error?.cause).toHaveLength(CLEANUP_MAX_LINE_CHARS);
});

test('a cleanup stays within its byte budget, whatever its lines hold', () => {
  // Lines of 4-byte characters and of control characters (6 bytes each as JSON) at their longest.
  const wide = Array.from({ length: 100 }, () => '😀'.repeat(CLEANUP_MAX_LINE_CHARS));
  const escaped = Array.from({ length: 100 }, () => '\u0001'.repeat(CLEANUP_MAX_LINE_CHARS));
  for (const lines of [wide, escaped]) {
    const bounded = boundedCleanup({ notes: lines, left: lines, error: { error: 'e', cause: lines[0] } });
    expect(Buffer.byteLength(JSON.stringify(bounded))).toBeLessThanOrEqual(CLEANUP_MAX_BYTES);
    expect(bounded.notes.at(-1)).toMatch(/^… and \d+ more$/);
    expect(bounded.notes.length).toBeGreaterThan(1);
  }
  // A small one is kept whole.
  const small = { notes: ['a'], left: [] };
  expect(boundedCleanup(small)).toEqual(small);
});
