/**
 * The progress watchdog's decision (containers/pg-tools/src/watchdog.ts), on a clock of its own:
 * the runner's idle drift is no progress, a transfer is, and a server working for the run is.
 * test/e2e/watchdog.test.ts shows it stop a real backup stuck behind a lock.
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  activityOf,
  MIN_PROGRESS_BYTES,
  ProgressWatchdog,
  treeReads,
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

// `treeReads`: what a restore measures pg_restore's reading by.
test('the bytes read by each process of a tree, a child and its own child included', async () => {
  // Real timers: the waits below are for a real process (under fake ones the first wait, when
  // head has not read it all yet, as on a loaded machine, never ends).
  jest.useRealTimers();
  // A child whose child reads 5 MB, then both wait to be read.
  const child = spawn('sh', ['-c', 'head -c 5000000 /dev/zero > /dev/null; sleep 30 & wait'], {
    stdio: 'ignore',
  });
  try {
    // head's reads are its own while it runs, and the shell's once it has been reaped.
    const treeBytes = (reads: Map<number, number>) =>
      [...reads.entries()].filter(([pid]) => pid !== process.pid).reduce((sum, [, bytes]) => sum + bytes, 0);
    let reads = new Map<number, number>();
    // Until head has read it all (a look while head is still reading sees less).
    for (let i = 0; i < 100; i++) {
      reads = await treeReads(process.pid);
      if (treeBytes(reads) >= 5_000_000) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(reads.has(process.pid)).toBe(true);
    expect(reads.has(child.pid as number)).toBe(true);
    expect(treeBytes(reads)).toBeGreaterThanOrEqual(5_000_000);
  } finally {
    child.kill('SIGKILL');
    await once(child, 'close');
  }
});

test('a process that is gone reads as nothing', async () => {
  expect(await treeReads(2 ** 22 + 1)).toEqual(new Map());
});
