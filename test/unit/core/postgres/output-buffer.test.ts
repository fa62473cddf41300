import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { withOutputBuffer } from '../../../../core/postgres/output-buffer';

/**
 * awk writes through stdio as pg_dump does: 13.9 kB printed, then it waits for its standard input
 * (kept open), then exits. Returns the bytes seen while it waited and all of them.
 */
async function printThenWait([command, args]: [string, string[]], waitMs: number) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = once(child, 'close');
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  const whileWaiting = Buffer.concat(chunks).length;
  child.stdin.end();
  const [code] = await closed;
  return { code, whileWaiting, all: Buffer.concat(chunks) };
}

const AWK = [
  'awk',
  ['BEGIN { for (i = 1; i <= 3000; i++) print i; getline line < "-"; print "end" }'],
] as const;

describe('withOutputBuffer', () => {
  it('runs the program with a 1 MiB stdio buffer on its output: the same bytes, written at its end', async () => {
    const plain = await printThenWait([AWK[0], [...AWK[1]]], 1000);
    const buffered = await printThenWait(withOutputBuffer(AWK[0], AWK[1]), 1000);
    expect(plain.code).toBe(0);
    expect(buffered.code).toBe(0);
    expect(buffered.all.equals(plain.all)).toBe(true);
    expect(plain.all.length).toBe(13_897);
    // With stdio's 4 KiB buffer for a pipe, three full buffers are written before the wait; with 1 MiB, none.
    expect(plain.whileWaiting).toBe(12_288);
    expect(buffered.whileWaiting).toBe(0);
  });

  it('runs the program as it is where stdbuf is not on the PATH', () => {
    expect(withOutputBuffer('/usr/bin/pg_dump', ['-Fc'], { PATH: '/nonexistent' })).toEqual([
      '/usr/bin/pg_dump',
      ['-Fc'],
    ]);
  });
});
