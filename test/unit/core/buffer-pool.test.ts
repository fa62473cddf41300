/**
 * BufferPool: a stream's chunks copied into a fixed set of reused buffers, each lent out when full;
 * a fill waits while every buffer is lent out (back-pressure), fails once the pool has failed, and
 * ChunkedCompression, built on it, stops on an error or a destroy while it waits.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { BufferPool } from '../../../core/buffer-pool';
import { ChunkedCompression } from '../../../core/metering';

/** `n` bytes counting up from `from` (mod 256). */
const bytes = (n: number, from = 0) => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) % 256));

test('lends each buffer when full, the rest last, and reuses the buffers given back', () => {
  const pool = new BufferPool(4, 2);
  const lent: { buffer: Buffer; copy: Buffer }[] = [];
  const full = (buffer: Buffer, n: number) => {
    lent.push({ buffer, copy: Buffer.from(buffer.subarray(0, n)) });
    pool.release(buffer);
  };
  expect(pool.fill(bytes(3), full)).toBeUndefined();
  expect(pool.fill(bytes(6, 3), full)).toBeUndefined();
  expect(pool.fill(bytes(4, 9), full)).toBeUndefined();
  expect(lent.map((l) => [...l.copy])).toEqual([
    [0, 1, 2, 3],
    [4, 5, 6, 7],
    [8, 9, 10, 11],
  ]);
  const rest = pool.takeRest();
  expect(rest && [...rest.buffer.subarray(0, rest.bytes)]).toEqual([12]);
  expect(pool.takeRest()).toBeUndefined();
  expect(new Set(lent.map((l) => l.buffer)).size).toBe(1);
  expect(pool.allocated).toBe(1);
});

test('waits while every buffer is lent out, and goes on when one comes back', async () => {
  const pool = new BufferPool(4, 2);
  const lent: Buffer[] = [];
  const full = (buffer: Buffer) => {
    lent.push(buffer);
  };
  // 8 bytes fill both buffers; the ninth needs one back.
  const pending = pool.fill(bytes(10), full);
  expect(pending).toBeInstanceOf(Promise);
  let done = false;
  void pending?.then(() => {
    done = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  expect(done).toBe(false);
  expect(lent).toHaveLength(2);
  expect(pool.allocated).toBe(2);
  pool.release(lent[0]);
  await pending;
  expect(pool.takeRest()).toEqual({ buffer: lent[0], bytes: 2 });
  expect([...lent[0].subarray(0, 2)]).toEqual([8, 9]);
  expect(pool.allocated).toBe(2);
});

test('waits for what `full` returns before filling on', async () => {
  const pool = new BufferPool(2, 4);
  const order: string[] = [];
  let releaseFirst: () => void = () => undefined;
  const full = (buffer: Buffer) => {
    order.push(`full ${buffer[0]}`);
    return order.length === 1 ? new Promise<void>((resolve) => (releaseFirst = resolve)) : undefined;
  };
  const pending = pool.fill(bytes(5), full);
  await new Promise((resolve) => setImmediate(resolve));
  expect(order).toEqual(['full 0']);
  releaseFirst();
  await pending;
  expect(order).toEqual(['full 0', 'full 2']);
});

test('a failure rejects the fill waiting for a buffer and every later one', async () => {
  const pool = new BufferPool(4, 1);
  const pending = pool.fill(bytes(6), () => undefined);
  pool.fail(new Error('part 1 failed'));
  pool.fail(new Error('a later error'));
  await expect(pending).rejects.toThrow('part 1 failed');
  await expect(pool.fill(bytes(1), () => undefined)).rejects.toThrow('part 1 failed');
});

test('a failing `full` fails the fill', async () => {
  const pool = new BufferPool(4, 2);
  await expect(pool.fill(bytes(5), () => Promise.reject(new Error('upload failed')))).rejects.toThrow(
    'upload failed',
  );
});

test('refuses sizes and counts that are not positive integers', () => {
  expect(() => new BufferPool(0, 2)).toThrow(RangeError);
  expect(() => new BufferPool(4, 1.5)).toThrow(RangeError);
});

test('ChunkedCompression destroyed while its write waits for a buffer ends with the error, not a hang', async () => {
  const compressor = zlib.createZstdCompress();
  // The compressor never finishes with its input: every buffer stays lent out.
  compressor.write = ((_chunk: Buffer, _cb: () => void) => true) as typeof compressor.write;
  const stream = new ChunkedCompression(compressor, 1024, 2);
  const input = Readable.from(Array.from({ length: 10 }, () => bytes(1000)));
  const done = pipeline(input, stream, new Writable({ write: (_c, _e, cb) => cb() }));
  await new Promise((resolve) => setTimeout(resolve, 20));
  stream.destroy(new Error('aborted'));
  await expect(done).rejects.toThrow('aborted');
});
