/**
 * What the runners (dump, restore, verify, migrate) share: the dependencies main.ts hands them,
 * how they stop when interrupted, and how they time their phases.
 */
import type { ChildProcess } from 'node:child_process';
import type { RestoreReport } from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import type { BackupStore } from '../../../core/store';
import type { TaskProgress } from '../../../core/task-progress';

export interface DumpProgress {
  /** Bytes pg_dump has written so far (uncompressed). */
  dumpedBytes: number;
  /** Bytes stored so far (compressed). */
  storedBytes: number;
}

export interface DumpDeps {
  store: BackupStore;
  env: NodeJS.ProcessEnv;
  onProgress?: (progress: DumpProgress) => void;
  /** Called with each child process started, so a signal handler can stop them. */
  onChild?: (child: ChildProcess) => void;
  /** Called before a dump is started afresh: why, and which attempt failed. */
  onRetry?: (reason: string, attempt: number) => void;
}

/** A runner that reports its phases and stops when interrupted (restore, verify, migrate). */
export type PhasedDeps = Pick<DumpDeps, 'store' | 'env' | 'onChild'> & {
  onPhase?: (phase: string) => void;
  /**
   * The bytes a long step has done (see core/task-progress.ts); called as often as they change,
   * throttled by the runner. Not progress for the watchdog: it measures the bytes moved itself.
   */
  onProgress?: (progress: TaskProgress) => void;
  /**
   * Aborted when the run is interrupted (a signal, or the CLI gone): the run stops at once and
   * undoes what it can — a database it created is dropped, its files removed — and fails with
   * the abort's reason. Its tools are stopped by whoever aborts (see main.ts).
   */
  signal?: AbortSignal;
};

/** Throws the interruption, once `signal` is aborted. */
export function stopIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw interruption(signal);
}

/** The error an interrupted run fails with: the abort's reason. */
export function interruption(signal: AbortSignal): PgferryError {
  const reason = signal.reason as unknown;
  return reason instanceof PgferryError
    ? reason
    : new PgferryError('Interrupted', `interrupted: ${errorMessage(reason)}`);
}

type Checks = RestoreReport['checks'];

/** What a restore (or a drill, or a migration's database) has done so far: its report's timings and checks, also when it fails. */
export class RestoreProgress {
  readonly timings: Record<string, number> = {};
  readonly checks: Checks = { checksums: [], rowCounts: [], analyzed: false };

  constructor(private readonly onPhase?: (phase: string) => void) {}

  async timed<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    this.onPhase?.(phase);
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      this.timings[phase] = (Date.now() - t0) / 1000;
    }
  }
}
