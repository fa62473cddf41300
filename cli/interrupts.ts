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
import type { TaskProgress } from '../core/task-progress';
import { printable } from './output';
import { ProgressDisplay, type RunCommand } from './progress';

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
async function interruptible<T>(what: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
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

/** What a local run shows on stderr while it runs (see `LocalRunOptions`), and how it ends. */
export interface RunDisplay {
  onNotice: (line: string) => void;
  onPhase: (phase: string) => void;
  onProgress: (progress: TaskProgress) => void;
  onTaskLog?: (line: string) => void;
  /** Clears the progress line: call before printing the run's result or its error. */
  close: () => void;
}

/**
 * How `command`'s local run is shown on stderr: its notices as lines, and on a terminal the
 * progress line (./progress.ts); with `verbose` every log line of the task instead of the progress
 * line, which would be torn by them.
 */
function runDisplay(command: RunCommand, verbose: boolean): RunDisplay {
  const display = new ProgressDisplay(command, { enabled: !verbose && Boolean(process.stderr.isTTY) });
  return {
    onNotice: (line) => display.line(`pgferry: ${printable(line)}`), // one line: a run's notice
    onPhase: (phase) => display.phase(phase),
    onProgress: (progress) => display.progress(progress),
    onTaskLog: verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
    close: () => display.close(),
  };
}

/**
 * Runs `command`'s workflow locally as every command does: interruptible by the terminal's signals
 * (`interruptible`), shown by its `RunDisplay`, whose progress line is cleared however the run ends
 * — before its result or its error is printed.
 */
export async function runLocally<T>(
  command: RunCommand,
  verbose: boolean,
  run: (signal: AbortSignal, display: RunDisplay) => Promise<T>,
): Promise<T> {
  const display = runDisplay(command, verbose);
  try {
    return await interruptible(command, (signal) => run(signal, display));
  } finally {
    display.close();
  }
}
