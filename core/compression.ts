/**
 * Compression outside pg_dump: pg_dump writes uncompressed (`-Z0`) and pgferry compresses on
 * another core — zstd and gzip on libuv's thread pool, lz4 in the `lz4` tool's own process.
 * Measured ~4× faster than pg_dump's built-in gzip at a smaller size.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { Duplex, PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type { Compression } from './contracts';
import { PgferryError } from './errors';
import { ChunkedCompression, Coalesce } from './metering';
import { executableOnPath, keepStderr, runProcess } from './process';

/**
 * zstd level 1: measured on a 720 MB database here, it compresses as small as level 3 (240 vs
 * 246 MB) in about half the CPU time, and keeps up with pg_dump on one core.
 */
export const DEFAULT_COMPRESSION: Compression = { codec: 'zstd', level: 1 };

/**
 * Output buffer of the zlib streams (Node's default: 16 KiB). Each buffer is a round trip to the
 * thread pool and a chunk for the checksum and the store: measured on a 370 MB dump, 256 KiB
 * takes decompression from 2.0 to 1.3 s of CPU and compression from 2.9 to 2.5 s.
 */
const ZLIB_CHUNK_BYTES = 256 * 1024;

/** The output buffer of {@link decompressingStream}. */
const STREAMED_OUTPUT_BYTES = 512 * 1024;

/**
 * What a compressor is best fed at a time (see `Coalesce`, `ChunkedCompression`), and its output buffer: with 1 MiB in
 * and out, a 1.35 GB dump compressed in 10.1–11.0 s against 12.6 s with pipe-sized 64 KiB
 * chunks and 256 KiB buffers.
 */
export const COMPRESSOR_CHUNK_BYTES = 1024 * 1024;

const LEVELS = { zstd: [1, 19], gzip: [1, 9], lz4: [1, 12] } as const;

/** Parses `zstd`, `zstd:6`, `gzip:9`, `lz4`, `none`. */
export function parseCompression(spec: string): Compression {
  const m = /^(zstd|gzip|lz4|none)(?::(\d+))?$/.exec(spec.trim());
  if (!m)
    throw new PgferryError(
      'InvalidInput',
      `unknown compression "${spec}" (use zstd[:level], gzip[:level], lz4 or none)`,
    );
  const codec = m[1] as Compression['codec'];
  if (codec === 'none') {
    if (m[2] !== undefined) throw new PgferryError('InvalidInput', 'compression "none" takes no level');
    return { codec };
  }
  if (m[2] === undefined) return codec === 'zstd' ? DEFAULT_COMPRESSION : { codec };
  const level = Number(m[2]);
  const [min, max] = LEVELS[codec];
  if (level < min || level > max) {
    throw new PgferryError('InvalidInput', `${codec} level must be between ${min} and ${max}`);
  }
  return { codec, level };
}

export function formatCompression(c: Compression): string {
  return c.level === undefined ? c.codec : `${c.codec}:${c.level}`;
}

/** File-name suffix for a codec. */
export function compressionSuffix(c: Compression): string {
  return { zstd: '.zst', gzip: '.gz', lz4: '.lz4', none: '' }[c.codec];
}

/** A stream that compresses what is written to it; errors (e.g. a failing `lz4`) surface on it. */
export function createCompressor(c: Compression): Duplex {
  switch (c.codec) {
    case 'none':
      return new PassThrough();
    case 'zstd':
      return zlib.createZstdCompress({
        chunkSize: COMPRESSOR_CHUNK_BYTES,
        params: {
          [zlib.constants.ZSTD_c_compressionLevel]: c.level ?? 1,
          [zlib.constants.ZSTD_c_checksumFlag]: 1,
        },
      });
    case 'gzip':
      return zlib.createGzip({ level: c.level ?? 6, chunkSize: COMPRESSOR_CHUNK_BYTES });
    case 'lz4':
      return throughProcess('lz4', ['-c', `-${c.level ?? 1}`, '-']);
  }
}

/**
 * The stages that compress a stream as a backup does: zstd and gzip fed 1 MiB at a time from two
 * reused buffers (`ChunkedCompression`); lz4 after a `Coalesce` into 1 MiB chunks; none, no stage
 * at all. A `Coalesce` before none copied the whole dump into new 1 MiB buffers that outlived the
 * young generation while the store wrote them: in a migration (541 MB) that was 28–41 full
 * garbage collections, ~0.5 CPU s, against 1–3 without it.
 */
export function compressionStages(c: Compression): Duplex[] {
  if (c.codec === 'none') return [];
  const compressor = createCompressor(c);
  return c.codec === 'zstd' || c.codec === 'gzip'
    ? [new ChunkedCompression(compressor, COMPRESSOR_CHUNK_BYTES)]
    : [new Coalesce(COMPRESSOR_CHUNK_BYTES), compressor];
}

/**
 * Reverses `createCompressor`; zstd and gzip by zlib on the thread pool, in output buffers of
 * `chunkBytes`.
 */
export function createDecompressor(c: Compression, chunkBytes = ZLIB_CHUNK_BYTES): Duplex {
  switch (c.codec) {
    case 'none':
      return new PassThrough();
    case 'zstd':
      return zlib.createZstdDecompress({ chunkSize: chunkBytes });
    case 'gzip':
      return zlib.createGunzip({ chunkSize: chunkBytes });
    case 'lz4':
      return throughProcess('lz4', ['-d', '-c', '-']);
  }
}

/**
 * `createDecompressor` for a restore that reads the archive as it downloads, in 512 KiB buffers.
 * Measured on the wide benchmark database's 206 MB dump (542 MB out, into a reader in this
 * process): zlib's zstd 0.8 CPU s in all, against 1.3 for `zstd -d` piped through (its process,
 * and the copy of everything it writes through a socket into this one); 256 KiB buffers cost 0.1 s
 * more. Each buffer is dead once the archive's reader has copied its rows out, and the dead ones
 * wait for V8's next collection: with 1 MiB buffers a streamed restore's runner peaked ~7 MiB
 * higher at the same CPU (benchmark.md, "The streamed restore's peak memory").
 */
export function decompressingStream(c: Compression): Duplex {
  return createDecompressor(c, STREAMED_OUTPUT_BYTES);
}

function throughProcess(command: string, args: string[]): Duplex {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  const stderr = keepStderr(child.stderr);
  child.on('error', (err) =>
    duplex.destroy(
      new PgferryError('DumpFailed', `cannot run ${command}: ${err.message} (install the ${command} tool)`),
    ),
  );
  child.on('close', (code, signal) => {
    if (code !== 0 && !duplex.destroyed) {
      duplex.destroy(
        new PgferryError('DumpFailed', `${command} exited with ${code ?? signal}: ${stderr().trim()}`),
      );
    }
  });
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return duplex;
}

/**
 * Decompresses the file `src` into the file `dst`. zstd and lz4 run as their own tools, reading
 * and writing the files themselves on a core of their own: on the benchmark's 1.35 GB dump,
 * `zstd -d` took 3.0 s where zlib's zstd in the runner, streaming file to file, took 8.2–9.6 s.
 * Without the `zstd` tool, zlib's. A tool's failure carries its message, and `code: 'ENOSPC'`
 * when the disk was full. Aborting `signal` stops it (the tool is killed).
 */
export async function decompressFile(
  c: Compression,
  src: string,
  dst: string,
  signal?: AbortSignal,
): Promise<void> {
  switch (c.codec) {
    case 'none':
      return copyFile(src, dst);
    case 'lz4':
      return runTool('lz4', ['-d', '-q', '-f', src, dst], signal);
    case 'zstd':
      if (onPath('zstd')) return runTool('zstd', ['-d', '-q', '-f', src, '-o', dst], signal);
  }
  await pipeline(
    createReadStream(src, { highWaterMark: ZLIB_CHUNK_BYTES }),
    createDecompressor(c),
    createWriteStream(dst),
    { signal },
  );
}

/**
 * Runs a compression tool that reads and writes files itself; its failure is an error carrying the
 * last line of its stderr (kept by core/process.ts's rule), with `code: 'ENOSPC'` for a full disk.
 */
async function runTool(command: string, args: string[], signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  const run = await runProcess(command, args, { signal, ignoreStdout: true }).catch((err: Error) => {
    if (signal?.aborted) throw signal.reason;
    throw new PgferryError(
      'RestoreFailed',
      `cannot run ${command}: ${err.message} (install the ${command} tool)`,
    );
  });
  if (run.code === 0) return;
  signal?.throwIfAborted();
  const message = run.stderr.trim().split('\n').pop() || `exited with ${run.code ?? run.signal}`;
  throw Object.assign(
    new Error(`${command}: ${message}`),
    /No space left|disk full/i.test(run.stderr) ? { code: 'ENOSPC' } : {},
  );
}

/** Whether an executable `command` is on the PATH. */
function onPath(command: string): boolean {
  return executableOnPath(command) !== undefined;
}
