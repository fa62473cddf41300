/**
 * pg_dump writes its archive with stdio, whose buffer for a pipe is 4 KiB (the pipe's
 * `st_blksize`): a 541 MB dump was ~126,000 `write`s, and the runner reading the pipe woke for
 * most of them (33,000–46,000 reads where 64 KiB reads take 8,900). Run under coreutils' `stdbuf`
 * with a 1 MiB output buffer, the reader took 0.32–0.35 CPU s against 0.70–0.89 and pg_dump
 * 0.67–0.87 against 0.75–1.00 (three pairs, docs/benchmark.md). The bytes are the same.
 */
import { executableOnPath } from '../process';

/** pg_dump's stdio buffer for its standard output, under `stdbuf`. */
export const DUMP_OUTPUT_BUFFER = '1M';

/**
 * The command and arguments that run `program` with a 1 MiB stdio buffer on its standard output
 * (`stdbuf -o 1M program …`, which then runs as `program` itself in the same process), or the
 * program as it is where `stdbuf` is missing.
 */
export function withOutputBuffer(
  program: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): [string, string[]] {
  const stdbuf = executableOnPath('stdbuf', env.PATH ?? '');
  return stdbuf ? [stdbuf, ['-o', DUMP_OUTPUT_BUFFER, program, ...args]] : [program, [...args]];
}
