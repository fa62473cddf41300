/**
 * The progress watchdog's decision (containers/pg-tools/src/watchdog.ts), on a clock of its own:
 * the runner's idle drift is no progress, a transfer is, and a server working for the run is.
 * test/e2e/watchdog.test.ts shows it stop a real backup stuck behind a lock.
 */

import {
  activityOf,
  MIN_PROGRESS_BYTES,
  ProgressWatchdog,
} from '../../../../../containers/pg-tools/src/watchdog';
import type { PgferryError } from '../../../../../core/errors';

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

/** Runs a watchdog of a 10 s stall timeout for `seconds`, its bytes moving by `bytesPerLook`. */
async function watch(
  seconds: number,
  bytesPerLook: number,
  probe?: () => Promise<{ working: true; what: string } | { working: false; why: string }>,
): Promise<PgferryError[]> {
  const stalls: PgferryError[] = [];
  let bytes = 0;
  const watchdog = new ProgressWatchdog({
    stallMs: 10_000,
    checkEveryMs: 1000,
    onStall: (e) => stalls.push(e),
    bytesMoved: async () => {
      bytes += bytesPerLook;
      return bytes;
    },
    ...(probe ? { probe } : {}),
  });
  await jest.advanceTimersByTimeAsync(seconds * 1000);
  watchdog.stop();
  return stalls;
}

test("the runner's own drift (a few hundred bytes a look) is no progress: the run is stopped once", async () => {
  const stalls = await watch(30, 600);
  expect(stalls.map((e) => [e.name, e.message])).toEqual([
    [
      'Pgferry.Stalled',
      'stopped: no progress for 10s: no bytes moved and no phase changed; the run was stopped and its tools with it, so it holds no lock any more',
    ],
  ]);
});

test('bytes moving is progress', async () => {
  expect(await watch(60, MIN_PROGRESS_BYTES)).toEqual([]);
});

test('a server working for the run is progress; one whose session waits for a lock is not', async () => {
  expect(await watch(60, 0, async () => ({ working: true, what: 'pid 1 is working' }))).toEqual([]);
  const waiting = activityOf('db:5432', [
    { pid: 7, state: 'active', waitEventType: 'Lock', waitEvent: 'relation', blockedBy: ['pid 9 (app)'] },
  ]);
  expect(waiting).toEqual({
    working: false,
    why: 'on db:5432 its session (pid 7) waits for a lock, held by pid 9 (app)',
  });
  const stalls = await watch(15, 0, async () => waiting);
  expect(stalls.map((e) => e.message)).toEqual([
    'stopped: no progress for 10s: on db:5432 its session (pid 7) waits for a lock, held by pid 9 (app); the run was stopped and its tools with it, so it holds no lock any more',
  ]);
});
