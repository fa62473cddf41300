/**
 * pg_dump writes its archive with stdio, whose buffer for a pipe is 4 KiB (the pipe's
 * `st_blksize`): a 541 MB dump was ~126,000 `write`s, and the runner reading the pipe woke for
 * most of them (33,000–46,000 reads where 64 KiB reads take 8,900). Run under coreutils' `stdbuf`
 * with a 1 MiB output buffer, the reader took 0.32–0.35 CPU s against 0.70–0.89 and pg_dump
 * 0.67–0.87 against 0.75–1.00 (three pairs, docs/benchmark.md). The bytes are the same.
 */
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';

/** pg_dump's stdio buffer for its standard output, under `stdbuf`. */
export const DUMP_OUTPUT_BUFFER = '1M';

const found = new Map<string, string | null>();

/** The `stdbuf` program on `PATH`, or null (looked up once per `PATH`). */
function findStdbuf(PATH = ''): string | null {
  let program = found.get(PATH);
  if (program === undefined) {
    program = null;
    for (const dir of PATH.split(path.delimiter).filter(Boolean)) {
      try {
        accessSync(path.join(dir, 'stdbuf'), constants.X_OK);
        program = path.join(dir, 'stdbuf');
        break;
      } catch {
        // not in this folder
      }
    }
    found.set(PATH, program);
  }
  return program;
}

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
  const stdbuf = findStdbuf(env.PATH);
  return stdbuf ? [stdbuf, ['-o', DUMP_OUTPUT_BUFFER, program, ...args]] : [program, [...args]];
}
