/**
 * A file being written that can be read while it grows: a restore decompresses the backup's
 * archive into its file as it downloads, and reads what has already arrived meanwhile (its TOC,
 * the tables it loads early). The writer says how far the file is written ({@link
 * GrowingFile.grown}); a reader ({@link GrowingFile.read}) reads up to there and waits for more
 * instead of stopping at the end of the file, until the file is complete (then the end is the end)
 * or the writer failed (then the reader fails with the writer's error).
 */
import { once } from 'node:events';
import { type FileHandle, open } from 'node:fs/promises';

const READ_BYTES = 1024 * 1024;

export class GrowingFile {
  /** Bytes of the file known to be written. */
  written = 0;
  private finished = false;
  private failure: Error | undefined;
  private waiters: (() => void)[] = [];

  constructor(readonly path: string) {}

  /** The file has at least `bytes` written. */
  grown(bytes: number): void {
    if (bytes <= this.written) return;
    this.written = bytes;
    this.wake();
  }

  /** The file is complete at `bytes`: readers stop at its end. */
  finish(bytes: number): void {
    this.grown(bytes);
    this.finished = true;
    this.wake();
  }

  /** The writer failed (or was stopped): readers fail with `err`, also those that would finish. */
  fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  /**
   * The file's bytes from `start`, in fresh buffers (a reader may change them), as they are
   * written; ends at the file's end once it is complete. `signal` stops a reader waiting.
   */
  async *read(start: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
    let pos = start;
    let handle: FileHandle | undefined;
    try {
      for (;;) {
        if (this.failure) throw this.failure;
        signal?.throwIfAborted();
        if (pos < this.written) {
          handle ??= await open(this.path, 'r');
          const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, this.written - pos));
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, pos);
          if (bytesRead === 0) throw new Error(`${this.path} is shorter than it was written`);
          pos += bytesRead;
          yield buffer.subarray(0, bytesRead);
        } else if (this.finished) {
          return;
        } else {
          await this.change(signal);
        }
      }
    } finally {
      await handle?.close();
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private async change(signal?: AbortSignal): Promise<void> {
    const changed = new Promise<void>((resolve) => this.waiters.push(resolve));
    if (!signal) return changed;
    const done = new AbortController();
    try {
      await Promise.race([changed, once(signal, 'abort', { signal: done.signal })]);
    } finally {
      done.abort();
    }
    signal.throwIfAborted();
  }
}
