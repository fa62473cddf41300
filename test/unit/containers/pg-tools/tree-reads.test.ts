/** `treeReads` (containers/pg-tools/src/watchdog.ts): what a restore measures pg_restore's reading by. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { treeReads } from '../../../../containers/pg-tools/src/watchdog';

test('the bytes read by each process of a tree, a child and its own child included', async () => {
  // A child whose child reads 5 MB, then both wait to be read.
  const child = spawn('sh', ['-c', 'head -c 5000000 /dev/zero > /dev/null; sleep 30 & wait'], {
    stdio: 'ignore',
  });
  try {
    let reads = new Map<number, number>();
    for (let i = 0; i < 100; i++) {
      reads = await treeReads(process.pid);
      if ((reads.get(child.pid as number) ?? 0) >= 5_000_000 || reads.size > 2) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(reads.has(process.pid)).toBe(true);
    expect(reads.has(child.pid as number)).toBe(true);
    // head's reads are its own while it runs, and the shell's once it has been reaped.
    const tree = [...reads.entries()].filter(([pid]) => pid !== process.pid);
    expect(tree.reduce((sum, [, bytes]) => sum + bytes, 0)).toBeGreaterThanOrEqual(5_000_000);
  } finally {
    child.kill('SIGKILL');
    await once(child, 'close');
  }
});

test('a process that is gone reads as nothing', async () => {
  expect(await treeReads(2 ** 22 + 1)).toEqual(new Map());
});
