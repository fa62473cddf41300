/** How often the task reports a step's bytes (core/task-progress.ts). */
import { type TaskProgress, throttled } from '../../../core/task-progress';

test('a step reports at most once a second, and always when forced (its first and last report)', () => {
  let now = 0;
  const reports: number[] = [];
  const report = throttled(
    (p: TaskProgress) => reports.push(p.doneBytes),
    1000,
    () => now,
  );
  report({ step: 'download', doneBytes: 0 }, true);
  for (now = 100; now <= 2500; now += 100) report({ step: 'download', doneBytes: now });
  report({ step: 'download', doneBytes: 9999 }, true);
  expect(reports).toEqual([0, 1000, 2000, 9999]);
});

test('without a listener, nothing is reported', () => {
  expect(() => throttled(undefined)({ step: 'dump', doneBytes: 1 }, true)).not.toThrow();
});
