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
  | 'MigrateFailed'
  /** Stopped by a signal (SIGINT, SIGTERM) or because the CLI that started the run died. */
  | 'Interrupted';

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

/**
 * The most of a server error's message kept: PostgreSQL quotes a value it rejects whole
 * (`invalid input syntax for type bigint: "…"`), and a row's value can be megabytes — which would
 * then be a failure's one line, in a report, a log and a state's output (whose size Step
 * Functions limits). What says why comes first; a tool's stderr lines are cut alike (`collectTail`).
 */
const MAX_SERVER_MESSAGE_CHARS = 1000;

/**
 * An error's message; for a server error (node-postgres), with the server's HINT, which often
 * says what to do ("You might need to increase max_locks_per_transaction."), its message cut at
 * {@link MAX_SERVER_MESSAGE_CHARS}.
 */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const { hint, severity } = err as { hint?: unknown; severity?: unknown };
    let message = err.message;
    if (typeof severity === 'string' && message.length > MAX_SERVER_MESSAGE_CHARS) {
      message = `${message.slice(0, MAX_SERVER_MESSAGE_CHARS)}… (${message.length - MAX_SERVER_MESSAGE_CHARS} more characters)`;
    }
    return typeof hint === 'string' && hint && !message.includes(hint)
      ? `${message} (HINT: ${hint})`
      : message;
  }
  return String(err);
}

/** `text` on one line: its line breaks, and the blanks around them, made one space. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * A Step Functions cause on one line: a Lambda error's `errorMessage` (its cause is that error as
 * JSON, stack trace included), an ECS task's stopped reason, else the text as it is.
 */
export function readableCause(cause: string | undefined): string | undefined {
  if (!cause) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(cause);
  } catch {
    return oneLine(cause);
  }
  const fields = (parsed ?? {}) as { errorMessage?: unknown; StoppedReason?: unknown };
  if (typeof fields.errorMessage === 'string') return oneLine(fields.errorMessage);
  if (typeof fields.StoppedReason === 'string') return oneLine(fields.StoppedReason);
  return oneLine(cause);
}
