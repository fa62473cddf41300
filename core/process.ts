/**
 * Running a command-line tool as a child process, with one rule for what is kept of its standard
 * error: its last {@link STDERR_KEPT_CHARS} characters, where the error that stopped it is. The
 * PostgreSQL tools (core/postgres/tools.ts) and the compressors (core/compression.ts) run through it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { spawnable } from './byte-arguments';

/** How much of a tool's standard error is kept: its end, where the error that stopped it is. */
export const STDERR_KEPT_CHARS = 20_000;

/** How a tool run ended, what it wrote to stdout, and the end of its stderr. */
export interface ToolRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What it wrote to stdout (empty when its stdout was ignored). */
  stdout: Buffer;
  /** The last {@link STDERR_KEPT_CHARS} characters of its standard error. */
  stderr: string;
}

/** The end of what `stream` writes: a function returning its last `STDERR_KEPT_CHARS` characters. */
export function keepStderr(stream: Readable): () => string {
  let kept = '';
  stream.on('data', (d: Buffer) => {
    kept = (kept + d.toString()).slice(-STDERR_KEPT_CHARS);
  });
  return () => kept;
}

/** How to run a tool: its environment (default: this process's), input, and what stops it. */
export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to its standard input, which is closed after it; without it, stdin is /dev/null. */
  input?: string | Buffer;
  /** Aborting it kills the tool; the run then rejects (with an `AbortError`). */
  signal?: AbortSignal;
  /** Its stdout is not read (the tool writes files of its own). */
  ignoreStdout?: boolean;
  onChild?: (child: ChildProcess) => void;
}

/**
 * Runs `command` with `args` to its end. Never rejects for the tool's failure — the caller reads
 * `code` and words the error — only when it cannot be started (e.g. `ENOENT`) or `signal` aborts it.
 * An argument may be bytes other than UTF-8 (core/byte-arguments.ts).
 */
export async function runProcess(command: string, args: string[], opts: RunOptions = {}): Promise<ToolRun> {
  const run = spawnable(command, args);
  const child = spawn(run.command, run.args, {
    env: opts.env,
    signal: opts.signal,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.ignoreStdout ? 'ignore' : 'pipe', 'pipe'],
  });
  opts.onChild?.(child);
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => chunks.push(d));
  const stderr = keepStderr(child.stderr as Readable);
  if (opts.input !== undefined) child.stdin?.end(opts.input);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout: Buffer.concat(chunks), stderr: stderr() };
}

const onPath = new Map<string, string | undefined>();

/**
 * Where the executable `command` is on `PATH` (its first folder that has it), or undefined;
 * looked up once per `PATH` and command.
 */
export function executableOnPath(command: string, PATH = process.env.PATH ?? ''): string | undefined {
  const key = `${PATH}\0${command}`;
  if (!onPath.has(key)) {
    const found = PATH.split(path.delimiter)
      .filter(Boolean)
      .map((dir) => path.join(dir, command))
      .find((file) => {
        try {
          accessSync(file, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
    onPath.set(key, found);
  }
  return onPath.get(key);
}
