/** The progress line: its words, sizes, rate, time left and width (cli/progress.ts). */
import {
  formatClock,
  formatProgress,
  ProgressDisplay,
  type ProgressView,
  phaseWords,
  RateMeter,
  secondsLeft,
  stepWords,
} from '../../../cli/progress';
import { taskProgressOf } from '../../../core/task-progress';

const restoring: ProgressView = {
  command: 'restore',
  words: 'restoring tables',
  doneBytes: 1_200_000_000,
  totalBytes: 3_400_000_000,
  bytesPerSecond: 45_000_000,
  elapsedSeconds: 26,
};

test.each([
  [0, '0:00'],
  [0.4, '0:00'],
  [7, '0:07'],
  [59.6, '1:00'],
  [725, '12:05'],
  [3723, '1:02:03'],
  [-3, '0:00'],
])('%s seconds read %s', (seconds, clock) => {
  expect(formatClock(seconds)).toBe(clock);
});

test('the time left is what remains at the rate, and unknown without a total, a rate, or past the total', () => {
  expect(secondsLeft(restoring)).toBeCloseTo(2_200_000_000 / 45_000_000);
  expect(secondsLeft({ ...restoring, totalBytes: undefined })).toBeUndefined();
  expect(secondsLeft({ ...restoring, bytesPerSecond: undefined })).toBeUndefined();
  expect(secondsLeft({ ...restoring, bytesPerSecond: 0 })).toBeUndefined();
  expect(secondsLeft({ ...restoring, doneBytes: 4_000_000_000 })).toBeUndefined();
});

test('a step with a known total shows bytes of the total, its share, the rate and the time left', () => {
  expect(formatProgress(restoring, 100)).toBe(
    'restore: restoring tables  1.2 GB of 3.4 GB (35%)  45.0 MB/s  ETA 0:49',
  );
});

test('an estimated total is marked with ~, has no share, and its time left is marked too', () => {
  const dumping: ProgressView = {
    command: 'backup',
    words: 'dumping',
    doneBytes: 3_400_000_000,
    totalBytes: 5_100_000_000,
    estimated: true,
    bytesPerSecond: 45_000_000,
    storedBytes: 900_000_000,
    elapsedSeconds: 75,
  };
  expect(formatProgress(dumping, 120)).toBe(
    'backup: dumping  3.4 GB of ~5.1 GB  45.0 MB/s  ETA ~0:38  900.0 MB stored',
  );
});

test('before a rate is known, bytes alone; a step without bytes shows its time', () => {
  expect(formatProgress({ ...restoring, bytesPerSecond: undefined }, 100)).toBe(
    'restore: restoring tables  1.2 GB of 3.4 GB (35%)',
  );
  expect(
    formatProgress({ command: 'verify', words: 'starting a throwaway server', elapsedSeconds: 12.2 }, 100),
  ).toBe('verify: starting a throwaway server  0:12');
});

test('on a narrow terminal the line drops the bytes stored, then the rate, the time left, the bytes; then it is cut', () => {
  const line: ProgressView = {
    command: 'backup',
    words: 'dumping',
    doneBytes: 3_400_000_000,
    bytesPerSecond: 45_000_000,
    storedBytes: 900_000_000,
    totalBytes: 5_100_000_000,
    estimated: true,
    elapsedSeconds: 1,
  };
  const full = 'backup: dumping  3.4 GB of ~5.1 GB  45.0 MB/s  ETA ~0:38  900.0 MB stored';
  expect(formatProgress(line, full.length + 1)).toBe(full);
  expect(formatProgress(line, full.length)).toBe('backup: dumping  3.4 GB of ~5.1 GB  45.0 MB/s  ETA ~0:38');
  expect(formatProgress(line, 50)).toBe('backup: dumping  3.4 GB of ~5.1 GB  ETA ~0:38');
  expect(formatProgress(line, 40)).toBe('backup: dumping  3.4 GB of ~5.1 GB');
  expect(formatProgress(line, 30)).toBe('backup: dumping');
  expect(formatProgress(line, 11)).toBe('backup: d…');
  for (const columns of [1, 2, 5, 20, 33, 47, 80]) {
    expect(formatProgress(line, columns).length).toBeLessThanOrEqual(Math.max(1, columns - 1));
  }
});

test('the rate is measured over the last ten seconds of reports', () => {
  const rate = new RateMeter(10_000);
  rate.add(0, 0);
  expect(rate.bytesPerSecond()).toBeUndefined();
  rate.add(200, 1_000_000);
  expect(rate.bytesPerSecond()).toBeUndefined(); // too close together to tell
  rate.add(1000, 10_000_000);
  expect(rate.bytesPerSecond()).toBe(10_000_000);
  // Fast at first, then slow: after the window, only the slow part counts.
  for (let t = 2000; t <= 30_000; t += 1000) rate.add(t, 10_000_000 + ((t - 1000) / 1000) * 1_000_000);
  expect(rate.bytesPerSecond()).toBeCloseTo(1_000_000, -3);
});

test('phases and steps read as words, a migration naming its database; unknown ones as they are, printable', () => {
  expect(phaseWords('restore', 'pgRestore')).toBe('restoring tables');
  expect(phaseWords('verify', 'startServer')).toBe('starting a throwaway server');
  expect(phaseWords('restore', 'download')).toBe('downloading and checking');
  expect(phaseWords('restore', 'load')).toBe('downloading and loading the tables');
  expect(phaseWords('restore', 'postData')).toBe('building indexes and constraints');
  expect(phaseWords('migrate', 'data shop')).toBe('copying shop');
  expect(phaseWords('migrate', 'postData shop')).toBe('building indexes and constraints: shop');
  expect(phaseWords('migrate', 'globals shop')).toBe('storing the roles of shop');
  expect(phaseWords('migrate', 'retry shop (server closed the connection)')).toBe(
    'retrying shop (server closed the connection)',
  );
  expect(phaseWords('restore', 'somethingNew')).toBe('somethingNew');
  expect(phaseWords('migrate', 'data sh\nop')).toBe('copying sh\\nop');
  expect(stepWords('backup', { step: 'dump', doneBytes: 0 })).toBe('dumping');
  expect(stepWords('restore', { step: 'dump', doneBytes: 0 })).toBe('backing up the target first');
  expect(stepWords('migrate', { step: 'copy', doneBytes: 0, database: 'shop' })).toBe('copying shop');
  expect(stepWords('restore', { step: 'postData', doneBytes: 0 })).toBe('building indexes and constraints');
});

test("a task's progress log line becomes a report; a line without one does not", () => {
  expect(
    taskProgressOf({
      message: 'progress',
      step: 'dump',
      doneBytes: 10,
      totalBytes: 20,
      estimated: true,
      storedBytes: 4,
    }),
  ).toEqual({ step: 'dump', doneBytes: 10, totalBytes: 20, estimated: true, storedBytes: 4 });
  expect(taskProgressOf({ message: 'progress', step: 'restore', doneBytes: 5, totalBytes: 'many' })).toEqual({
    step: 'restore',
    doneBytes: 5,
  });
  // A runner of an older version logged a dump's bytes only.
  expect(taskProgressOf({ message: 'progress', dumpedBytes: 10, storedBytes: 4 })).toBeUndefined();
  expect(taskProgressOf({ message: 'progress', step: 'dump', doneBytes: -1 })).toBeUndefined();
});

/** A stream that records what is written, as a terminal `columns` wide. */
function terminal(columns: number) {
  const written: string[] = [];
  const stream = { columns, isTTY: true, write: (text: string) => written.push(text) };
  return { written, stream: stream as unknown as NodeJS.WriteStream };
}

test('the display rewrites one line in place, prints lines above it, and clears it at the end', () => {
  let now = 0;
  const { written, stream } = terminal(100);
  const display = new ProgressDisplay('restore', { stream, now: () => now });
  display.phase('download');
  display.progress({ step: 'download', doneBytes: 0, totalBytes: 100_000_000 });
  now = 1000;
  display.progress({ step: 'download', doneBytes: 50_000_000, totalBytes: 100_000_000 });
  display.line('pgferry: removed a dead run');
  display.close();
  expect(written).toEqual([
    '\r\x1b[Krestore: downloading and checking  0:00',
    '\r\x1b[Krestore: downloading and checking  0 B of 100.0 MB (0%)',
    '\r\x1b[Krestore: downloading and checking  50.0 MB of 100.0 MB (50%)  50.0 MB/s  ETA 0:01',
    '\r\x1b[K',
    'pgferry: removed a dead run\n',
    '\r\x1b[Krestore: downloading and checking  50.0 MB of 100.0 MB (50%)  50.0 MB/s  ETA 0:01',
    '\r\x1b[K',
  ]);
});

test('a new step starts its rate afresh; building indexes shows its time, not bytes', () => {
  let now = 0;
  const { written, stream } = terminal(100);
  const display = new ProgressDisplay('restore', { stream, now: () => now });
  display.progress({ step: 'download', doneBytes: 0, totalBytes: 10_000_000 });
  now = 1000;
  display.progress({ step: 'download', doneBytes: 10_000_000, totalBytes: 10_000_000 });
  display.progress({ step: 'restore', doneBytes: 0, totalBytes: 40_000_000 });
  now = 2000;
  display.progress({ step: 'restore', doneBytes: 40_000_000, totalBytes: 40_000_000 });
  display.progress({ step: 'postData', doneBytes: 40_000_000, totalBytes: 40_000_000 });
  now = 14_000;
  display.progress({ step: 'postData', doneBytes: 40_000_000, totalBytes: 40_000_000 });
  display.close();
  expect(written.slice(2, 6)).toEqual([
    '\r\x1b[Krestore: restoring tables  0 B of 40.0 MB (0%)',
    '\r\x1b[Krestore: restoring tables  40.0 MB of 40.0 MB (100%)  40.0 MB/s  ETA 0:00',
    '\r\x1b[Krestore: building indexes and constraints  0:00',
    '\r\x1b[Krestore: building indexes and constraints  0:12',
  ]);
});

test('off a terminal the display writes nothing', () => {
  const written: string[] = [];
  const stream = {
    isTTY: false,
    write: (text: string) => written.push(text),
  } as unknown as NodeJS.WriteStream;
  const display = new ProgressDisplay('backup', { stream });
  display.phase('download');
  display.progress({ step: 'dump', doneBytes: 5, storedBytes: 2 });
  display.close();
  expect(written).toEqual([]);
});
