import { open } from 'node:fs/promises';

/** The size of {@link fileChunks}' one buffer. */
const FILE_CHUNK_BYTES = 1 << 20;

/**
 * The bytes of `file`, in chunks read into one buffer reused for every read: each chunk is valid
 * only until the next is asked for, so a reader that keeps bytes must copy them. For a pass that
 * only looks at the bytes (an archive's scan for its tables' sizes, core/postgres/tools.ts). A
 * `createReadStream` allocates a buffer per chunk instead, outside V8's heap, and those dead
 * buffers pile up until a collection: reading a 77 MB archive of 30,000 large objects that way
 * held up to 36 MiB of them at once, and the runner's resident memory never came back down (its
 * allocator keeps what is freed: `RUNNER_MALLOC_TUNABLES`, cli/runner.ts).
 */
export async function* fileChunks(file: string, bytes = FILE_CHUNK_BYTES): AsyncGenerator<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafeSlow(bytes);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, bytes, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}
