/**
 * Coalesce: the same bytes, in chunks of at least the size asked for (the last may be smaller).
 * ChunkedCompression: a real zlib compressor fed chunks of the size from two reused buffers.
 */
import { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { createDecompressor } from '../../../core/compression';
import { ChunkedCompression, Coalesce } from '../../../core/metering';

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

/** `bytes` of a pattern zstd cannot shrink to nothing, in pipe-sized chunks of odd length. */
function input(bytes: number, chunk = 65_537): Buffer[] {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i + 4 <= bytes; i += 4) data.writeUInt32LE(((i * 2654435761) >>> 0) % 5000, i);
  const out: Buffer[] = [];
  for (let i = 0; i < bytes; i += chunk) out.push(data.subarray(i, i + chunk));
  return out;
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        // A slow consumer: the compressor's output backs up into ChunkedCompression.
        setImmediate(cb);
      },
    }),
  );
  return Buffer.concat(out);
}

test.each(['zstd', 'gzip'] as const)(
  'ChunkedCompression feeds %s 1 MiB chunks from two buffers it reuses; the output decompresses to the input',
  async (codec) => {
    const compressor = codec === 'zstd' ? zlib.createZstdCompress() : zlib.createGzip();
    const fed: Uint8Array[] = [];
    const write = compressor.write.bind(compressor) as (chunk: Buffer, cb: () => void) => boolean;
    compressor.write = ((chunk: Buffer, cb: () => void) => {
      fed.push(chunk);
      // What the compressor takes in, checked before the buffer can be reused.
      fedCopies.push(Buffer.from(chunk));
      return write(chunk, cb);
    }) as typeof compressor.write;
    const fedCopies: Buffer[] = [];
    const chunks = input(7 * 1024 * 1024 + 5);
    const compressed = await collect(
      Readable.from(chunks).pipe(new ChunkedCompression(compressor, 1024 * 1024)),
    );
    expect(fed.map((c) => c.length)).toEqual([...Array(7).fill(1024 * 1024), 5]);
    expect(new Set(fed.map((c) => c.buffer)).size).toBeLessThanOrEqual(2);
    expect(Buffer.concat(fedCopies).equals(Buffer.concat(chunks))).toBe(true);
    const restored = await collect(Readable.from([compressed]).pipe(createDecompressor({ codec })));
    expect(restored.equals(Buffer.concat(chunks))).toBe(true);
  },
);

test('ChunkedCompression fails with its compressor', async () => {
  const compressor = zlib.createZstdCompress();
  const stream = new ChunkedCompression(compressor, 1024 * 1024);
  const failing = collect(Readable.from(input(3 * 1024 * 1024)).pipe(stream));
  compressor.destroy(new Error('codec failed'));
  await expect(failing).rejects.toThrow('codec failed');
});
