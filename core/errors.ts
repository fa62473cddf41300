/**
 * Errors a user can act on. The `name` is the Step Functions error name (what `Catch`/`Retry`
 * match on, and what the console shows); the message is one line that says what to do.
 */
export type PgferryErrorCode =
  | 'InvalidInput'
  /** On AWS: a login, server, target or service the deployment's configuration does not allow. */
  | 'NotConfigured'
  /** Stopped by the progress watchdog: nothing moved for longer than the stall timeout. */
  | 'Stalled'
  | 'SourceUnreachable'
  | 'AuthenticationFailed'
  | 'DatabaseNotFound'
  | 'NoSuitablePgDump'
  | 'DumpFailed'
  | 'StoreNotWritable'
  | 'StoreUnavailable'
  | 'BackupNotFound'
  | 'BackupRunning'
  | 'BackupCorrupt'
  | 'TargetRefused'
  | 'RestoreFailed'
  | 'RecordFailed'
  | 'SchemaTestFailed'
  | 'MigrateFailed';

export class PgferryError extends Error {
  readonly code: PgferryErrorCode;

  constructor(code: PgferryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = `Pgferry.${code}`;
  }
}

/** Errors worth retrying: the store or the database was briefly unavailable. */
export const RETRYABLE_ERRORS: readonly string[] = ['Pgferry.StoreUnavailable'];

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
