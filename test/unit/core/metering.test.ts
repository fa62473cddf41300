/** Coalesce: the same bytes, in chunks of at least the size asked for (the last may be smaller). */
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Coalesce } from '../../../core/metering';

/** The chunks as a pipe hands them on ('data' events: reading would join them again). */
async function chunksOf(input: Buffer[], bytes: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const coalesced = Readable.from(input).pipe(new Coalesce(bytes));
  coalesced.on('data', (chunk: Buffer) => out.push(chunk));
  await finished(coalesced);
  return out;
}

test('joins small chunks into chunks of at least the size, in order', async () => {
  const input = Array.from({ length: 10 }, (_, i) => Buffer.alloc(3, i));
  const out = await chunksOf(input, 8);
  expect(out.map((c) => c.length)).toEqual([9, 9, 9, 3]);
  expect(Buffer.concat(out).equals(Buffer.concat(input))).toBe(true);
});

test('passes a chunk at least the size as it is, and nothing for no input', async () => {
  const big = Buffer.alloc(20, 1);
  expect(await chunksOf([big], 8)).toEqual([big]);
  expect(await chunksOf([], 8)).toEqual([]);
});
