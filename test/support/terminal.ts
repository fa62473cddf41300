/**
 * Running the real `pgferry` CLI on a pseudo-terminal, as a user at a terminal runs it: its stdout
 * and stderr are the terminal (so `isTTY` holds and the progress line is drawn). Node has no pty of
 * its own; util-linux's `script` (Debian's `bsdutils`, an essential package: on every machine)
 * makes one, and `stty` gives it the width the test asks for.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { cliEnv, REPO } from './cli';

const BIN = path.join(REPO, 'bin', 'pgferry.js');

/** `text` as one word of a POSIX shell command. */
function shellWord(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

export interface TerminalResult {
  code: number | null;
  /** Everything the CLI wrote to the terminal, stdout and stderr together, escapes included. */
  output: string;
}

/** Runs `pgferry <args>` on a terminal `columns` wide; never rejects. */
export function runCliOnTerminal(
  args: string[],
  options: {
    columns?: number;
    env?: Record<string, string>;
    /** Told everything written so far, each time more arrives. */
    onOutput?: (output: string) => void;
  } = {},
): Promise<TerminalResult> {
  const command = [process.execPath, BIN, ...args].map(shellWord).join(' ');
  const shell = `stty cols ${options.columns ?? 100} rows 24 && exec ${command}`;
  return new Promise((resolve, reject) => {
    // -q: no "Script started" lines; -e: its exit status is the command's; /dev/null: no typescript file.
    const child = spawn('script', ['-q', '-e', '-c', shell, '/dev/null'], {
      env: cliEnv(options.env),
      cwd: REPO,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      options.onOutput?.(output);
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      child.stdin.destroy();
      resolve({ code, output });
    });
  });
}

/**
 * The lines a terminal showed one after another: every `\r` or `\r\x1b[K` rewrite of a line, and
 * every line, apart (the escapes removed).
 */
export function drawnLines(output: string): string[] {
  return output
    .split(/\r\n|\n|\r/)
    .map((line) => line.replaceAll('\x1b[K', ''))
    .filter((line) => line.trim() !== '');
}
