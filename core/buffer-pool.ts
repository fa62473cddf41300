/**
 * A fixed set of equal buffers that a stream's chunks are copied into, one buffer at a time, each
 * lent out when it is full and reused once it comes back — what a compressor fed 1 MiB at a time
 * (`ChunkedCompression`, core/metering.ts) and an S3 multipart upload (`uploadInParts`,
 * core/store/s3-multipart.ts) both need. The memory is `count × bytes`, allocated on first use
 * and never more, whatever the stream's length: a new buffer per piece instead leaves a copy of
 * the whole stream in dead buffers outside V8's heap until its next collection, which put the
 * runner's peak resident memory 15–50 MiB higher (measured on the backup's pipelines).
 */
export class BufferPool {
  private readonly spare: Buffer[] = [];
  private made = 0;
  private current: Buffer | undefined;
  private filled = 0;
  /** A `fill` waiting for a buffer to come back. */
  private waiting: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  private failure: { error: unknown } | undefined;

  constructor(
    /** Each buffer's size: every buffer lent out by `fill` is full. */
    readonly bytes: number,
    /** How many buffers at most; `fill` waits while all of them are lent out. */
    readonly count: number,
  ) {
    if (!Number.isInteger(bytes) || bytes < 1)
      throw new RangeError(`buffer size must be a positive integer (got ${bytes})`);
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`buffer count must be a positive integer (got ${count})`);
  }

  /** Buffers allocated so far (at most `count`). */
  get allocated(): number {
    return this.made;
  }

  /**
   * Copies `chunk` into the buffer being filled, lending each buffer that fills up to `full`,
   * which owns it until it hands it back with `release`. Returns `undefined` when the whole chunk
   * was copied at once — the common case, with no promise — or a promise that settles once it
   * has been: after a buffer came back (every one was lent out) or `full`'s own promise settled.
   * Rejects once `fail` has been called. One call at a time: the next only once this one is done.
   */
  fill(
    chunk: Buffer,
    full: (buffer: Buffer, bytes: number) => void | Promise<void>,
  ): Promise<void> | undefined {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.failure) return Promise.reject(this.failure.error);
      if (this.current === undefined) {
        const next = this.spare.pop() ?? (this.made < this.count ? this.allocate() : undefined);
        if (next === undefined) {
          const rest = chunk.subarray(offset);
          return new Promise<void>((resolve, reject) => {
            this.waiting = { resolve, reject };
          }).then(() => this.fill(rest, full));
        }
        this.current = next;
        this.filled = 0;
      }
      const copied = chunk.copy(this.current, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === this.bytes) {
        const buffer = this.current;
        this.current = undefined;
        const pending = full(buffer, this.bytes);
        if (pending) {
          const rest = chunk.subarray(offset);
          return pending.then(() => this.fill(rest, full));
        }
      }
    }
    return undefined;
  }

  /**
   * The buffer being filled, lent out with the bytes it holds (the stream's last piece, shorter
   * than the others); `undefined` when it holds nothing.
   */
  takeRest(): { buffer: Buffer; bytes: number } | undefined {
    const buffer = this.current;
    if (buffer === undefined || this.filled === 0) return undefined;
    this.current = undefined;
    return { buffer, bytes: this.filled };
  }

  /** Hands a lent buffer back: a waiting `fill` goes on with it. */
  release(buffer: Buffer): void {
    this.spare.push(buffer);
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve();
  }

  /** Fails a waiting `fill` and every later one with `error` (the first error is kept). */
  fail(error: unknown): void {
    this.failure ??= { error };
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(this.failure.error);
  }

  private allocate(): Buffer {
    this.made += 1;
    // Outside Node's shared slab: each buffer is large and lives as long as the pool.
    return Buffer.allocUnsafeSlow(this.bytes);
  }
}
