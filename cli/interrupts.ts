/**
 * Ctrl-C (SIGINT), SIGTERM and SIGHUP during a local run: the run is told (its task gets the
 * signal, see local-executor.ts) and given time to clean up — drop the database it created,
 * remove its files, stop verify's server, store its failed report, and let the workflow's own
 * cleanup steps run (a failed backup's Cleanup) — then the command prints one line and exits
 * 128 + the signal's number. It waits at most {@link CLI_STOP_SECONDS}; a second signal stops the
 * wait at once (the task goes on cleaning up by itself, within its own limit).
 */
import { constants } from 'node:os';
import { errorMessage, PgferryError } from '../core/errors';
import { printable } from './output';

/**
 * How long the CLI waits for an interrupted run: the task has 20 s to clean up (see the runner's
 * main.ts), the workflow's record and cleanup steps a few more.
 */
export const CLI_STOP_SECONDS = 30;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The reason a run was aborted: the signal the CLI received. */
export class Interruption extends PgferryError {
  constructor(readonly signal: NodeJS.Signals) {
    super('Interrupted', `interrupted by ${signal}`);
  }
}

/** The error an interrupted command ends with: one line, and the shell's exit status for the signal. */
export class InterruptedCommand extends PgferryError {
  readonly exitCode: number;

  constructor(message: string, signal: NodeJS.Signals) {
    super('Interrupted', message);
    this.exitCode = exitStatus(signal);
  }
}

function exitStatus(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 15);
}

/**
 * Runs `run` (a local workflow), handing it a signal that is aborted on SIGINT, SIGTERM or SIGHUP.
 * Interrupted, it fails with the run's own account of what it stopped and cleaned up.
 */
export async function interruptible<T>(what: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let deadline: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.stderr.write(
        `pgferry: ${what} interrupted again (${signal}): not waiting for its cleanup; the next run names what is left\n`,
      );
      process.exit(exitStatus(signal));
    }
    controller.abort(new Interruption(signal));
    deadline = setTimeout(() => {
      process.stderr.write(
        `pgferry: ${what} interrupted by ${signal}: its cleanup did not finish within ${CLI_STOP_SECONDS}s; ` +
          'the next run names what is left\n',
      );
      process.exit(exitStatus(signal));
    }, CLI_STOP_SECONDS * 1000);
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  try {
    return await run(controller.signal);
  } catch (err) {
    const reason = controller.signal.reason as Interruption | undefined;
    if (!reason) throw err;
    const account = errorMessage(err);
    throw new InterruptedCommand(
      account.startsWith(reason.message) ? `${what} ${account}` : `${what} ${reason.message}: ${account}`,
      reason.signal,
    );
  } finally {
    clearTimeout(deadline);
    for (const signal of SIGNALS) process.off(signal, onSignal);
  }
}

/** Prints a run's notice (see `LocalRunOptions.onNotice`) as one line on stderr. */
export function printNotice(line: string): void {
  process.stderr.write(`pgferry: ${printable(line)}\n`);
}

/** What a local run shows on stderr while it runs (see `LocalRunOptions`). */
export interface RunDisplay {
  onNotice: (line: string) => void;
  onPhase: (phase: string) => void;
  onTaskLog?: (line: string) => void;
}

/**
 * How `command`'s local run is shown on stderr: its notices as lines, the task's phase on one line
 * rewritten in place (on a terminal only; `clearPhaseLine` ends it), and with `verbose` every log
 * line of the task.
 */
export function runDisplay(command: string, verbose: boolean): RunDisplay {
  return {
    onNotice: printNotice,
    onPhase: (phase) => {
      if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${command}: ${phase}…`);
    },
    onTaskLog: verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
  };
}

/** Clears the phase line `runDisplay` wrote (on a terminal). */
export function clearPhaseLine(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}
