/** The benchmark's pure pieces: which cores a pinned case may use, and when statistics have settled. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuList, pinnedCommand, serverCpuSeconds, settled } from '../../../../scripts/support/bench-server';
import { treeOf } from '../../../../scripts/support/measure';

test('cpuList names the first N cores as taskset takes them', () => {
  expect(cpuList(1, 2)).toBe('0');
  expect(cpuList(2, 2)).toBe('0-1');
  expect(cpuList(3, 8)).toBe('0-2');
});

test('cpuList refuses more cores than the machine has, or none', () => {
  expect(() => cpuList(2, 1)).toThrow('cannot pin to 2 cores: this machine has 1');
  expect(() => cpuList(0, 2)).toThrow('cannot pin to 0 cores');
  expect(() => cpuList(1.5, 2)).toThrow('cannot pin to 1.5 cores');
});

test('pinnedCommand runs the command under taskset, its arguments unchanged', () => {
  expect(pinnedCommand(1, 2, '/usr/bin/node', ['cli.js', 'backup', '--json'])).toEqual([
    'taskset',
    ['-c', '0', '/usr/bin/node', 'cli.js', 'backup', '--json'],
  ]);
  expect(pinnedCommand(2, 2, 'pg_restore', ['-j1'])[1].slice(0, 2)).toEqual(['-c', '0-1']);
});

test('settled returns once two readings agree, not before', async () => {
  // A backend's statistics arrive late: the counter still moves for two readings.
  const readings = [100, 150, 180, 180, 999];
  let calls = 0;
  const value = await settled(async () => readings[calls++], { intervalMs: 1 });
  expect(value).toBe(180);
  expect(calls).toBe(4);
});

test('settled gives up after its attempts with the last reading', async () => {
  let n = 0;
  const value = await settled(async () => ++n, { intervalMs: 1, attempts: 5 });
  expect(value).toBe(5);
});

test('treeOf finds every descendant, whatever the order of pids (wrap-around)', () => {
  const procs = new Map([
    [10, { ppid: 1 }],
    [5, { ppid: 20 }], // a grandchild with a lower pid than its parent
    [20, { ppid: 10 }],
    [30, { ppid: 10 }],
    [40, { ppid: 1 }],
    [3, { ppid: 5 }],
  ]);
  expect([...treeOf(10, procs)].sort((a, b) => a - b)).toEqual([3, 5, 10, 20, 30]);
  expect([...treeOf(40, procs)]).toEqual([40]);
});

test("serverCpuSeconds grows by what the postmaster's process tree spends", () => {
  // This process stands in for a postmaster: its data directory's postmaster.pid names it.
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-server-cpu-'));
  try {
    writeFileSync(join(dataDir, 'postmaster.pid'), `${process.pid}\n/data\n`);
    const before = serverCpuSeconds(dataDir);
    const own = process.cpuUsage();
    // 0.3 s of this process's CPU, however busy the machine (wall time would not say).
    const spentHere = () => {
      const { user, system } = process.cpuUsage(own);
      return (user + system) / 1e6;
    };
    while (spentHere() < 0.3);
    const spent = serverCpuSeconds(dataDir) - before;
    // Clock ticks are 10 ms; the process's other threads (its garbage collector) may add some.
    expect(spent).toBeGreaterThan(spentHere() - 0.05);
    expect(spent).toBeLessThan(spentHere() + 2);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
