import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Passes bytes through unchanged while counting them and, optionally, hashing them (SHA-256). */
export class Meter extends Transform {
  bytes = 0;
  private readonly hash: Hash | undefined;

  constructor(options: { sha256?: boolean; onBytes?: (total: number) => void } = {}) {
    super();
    this.hash = options.sha256 ? createHash('sha256') : undefined;
    this.onBytes = options.onBytes;
  }

  private readonly onBytes: ((total: number) => void) | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    this.onBytes?.(this.bytes);
    callback(null, chunk);
  }

  /** The hex digest; call once, after the stream has ended. */
  digest(): string {
    if (!this.hash) throw new Error('this meter does not hash');
    return this.hash.digest('hex');
  }
}

/**
 * Passes bytes through in chunks of at least `bytes` (the last may be smaller). A pipe from a
 * child delivers 64 KiB at a time; handing zlib 1 MiB at a time instead took a 1.35 GB dump's
 * compression from 12.6 to 10.6–11.1 s, with a fifth less of the main thread (measured in the
 * runner's pipeline: pg_dump's output → zstd → SHA-256).
 */
export class Coalesce extends Transform {
  private chunks: Buffer[] = [];
  private length = 0;

  constructor(private readonly bytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
    if (this.length < this.bytes) callback();
    else callback(null, this.drain());
  }

  override _flush(callback: TransformCallback): void {
    callback(null, this.length ? this.drain() : undefined);
  }

  private drain(): Buffer {
    const out = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.length);
    this.chunks = [];
    this.length = 0;
    return out;
  }
}
