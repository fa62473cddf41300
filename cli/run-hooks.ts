/**
 * `--on-success <command>` / `--on-failure <command>`: a shell command run once a workflow's run
 * has ended, told the outcome in its environment (`PGFERRY_OUTCOME`, `PGFERRY_COMMAND`,
 * `PGFERRY_BACKUP_ID`, `PGFERRY_DATABASE`, `PGFERRY_ERROR`, …) and never a password. The hook
 * reports; it does not decide: its own failure is one line on stderr and leaves the run's exit
 * status as it was (a backup that was stored is not made to look failed by a notification
 * service being down, and a failed one keeps its own status for cron and systemd).
 */
import { spawn } from 'node:child_process';
import { parseConnectionUrl, parseServerUrl } from '../core/connection';
import { errorMessage } from '../core/errors';
import type { DocumentLocation } from '../core/outcomes';
import { InterruptedCommand } from './interrupts';
import { printable } from './output';
import type { HookedCommand } from './profile';

/** What a command's options say about hooks and the run (after the profile filled them in). */
export interface HookOptions {
  onSuccess?: string;
  onFailure?: string;
  store?: string;
  source?: string;
  target?: string;
  name?: string;
  database?: string;
}

/** What a successful run tells its hook: its outcome in brief, as the workflow returned it. */
export type RunOutcome = DocumentLocation & {
  backupId?: string;
  database?: string;
  databases?: { database: string; backupId: string }[];
};

/**
 * Wraps a command's action so that its hooks run after it: `--on-success` once it resolved with
 * its outcome, `--on-failure` once it threw (the error is thrown on, unchanged).
 */
export function withRunHooks<O extends HookOptions>(
  command: HookedCommand,
  action: (opts: O) => Promise<RunOutcome>,
  env: NodeJS.ProcessEnv = process.env,
): (opts: O) => Promise<void> {
  return async (opts) => {
    let outcome: RunOutcome;
    try {
      outcome = await action(opts);
    } catch (err) {
      if (opts.onFailure !== undefined) {
        const exitStatus = err instanceof InterruptedCommand ? err.exitCode : 1;
        await runHook(
          '--on-failure',
          opts.onFailure,
          hookEnvironment(env, command, opts, { err, exitStatus }),
        );
      }
      throw err;
    }
    if (opts.onSuccess !== undefined) {
      await runHook('--on-success', opts.onSuccess, hookEnvironment(env, command, opts, { outcome }));
    }
  };
}

/**
 * The hook's environment: this process's, without any password (`PGPASSWORD`, pgferry's password
 * variables, the password of a `PGFERRY_SOURCE` URL), plus the run's outcome. Every value set here
 * is scrubbed of the passwords this process knows, so not even an error line can carry one.
 */
export function hookEnvironment(
  env: NodeJS.ProcessEnv,
  command: HookedCommand,
  opts: HookOptions,
  result: { outcome: RunOutcome } | { err: unknown; exitStatus: number },
): NodeJS.ProcessEnv {
  const secrets = [
    env.PGPASSWORD,
    env.PGFERRY_SOURCE_PASSWORD,
    env.PGFERRY_TARGET_PASSWORD,
    urlPassword(env.PGFERRY_SOURCE),
    urlPassword(opts.source),
    urlPassword(opts.target),
  ].filter((s): s is string => s !== undefined && s !== '');
  const scrub = (text: string) => secrets.reduce((t, secret) => t.split(secret).join('***'), text);

  const out: NodeJS.ProcessEnv = { ...env };
  for (const key of ['PGPASSWORD', 'PGFERRY_SOURCE_PASSWORD', 'PGFERRY_TARGET_PASSWORD']) delete out[key];
  delete out.PGFERRY_SOURCE;
  const keep = (key: string, value: string | undefined) => {
    if (value !== undefined) out[key] = scrub(value);
  };
  // What the run was given, without passwords: a nested `pgferry status` finds the same store.
  keep('PGFERRY_STORE', opts.store);
  keep('PGFERRY_SOURCE', opts.source === undefined ? undefined : withoutPassword(opts.source));
  // As --on-cutover is told it; pgferry reads no target from the environment.
  keep('PGFERRY_TARGET_URL', opts.target === undefined ? undefined : withoutPassword(opts.target));
  keep('PGFERRY_COMMAND', command);
  if ('outcome' in result) {
    const { outcome } = result;
    const databases = outcome.databases ?? [];
    keep('PGFERRY_OUTCOME', 'success');
    keep('PGFERRY_EXIT_STATUS', '0');
    keep('PGFERRY_BACKUP_ID', outcome.backupId ?? databases.map((d) => d.backupId).join(' '));
    keep('PGFERRY_DATABASE', outcome.database ?? databases.map((d) => d.database).join(' '));
    keep('PGFERRY_STORE', outcome.store);
    keep('PGFERRY_DOCUMENT_URL', `${outcome.store.replace(/\/$/, '')}/${outcome.key}`);
    keep('PGFERRY_OUTCOME_JSON', JSON.stringify(outcome));
  } else {
    keep('PGFERRY_OUTCOME', 'failure');
    keep('PGFERRY_EXIT_STATUS', String(result.exitStatus));
    keep(
      'PGFERRY_ERROR',
      printable(
        errorMessage(result.err)
          .replace(/\s*\n\s*/g, ' ')
          .trim(),
      ),
    );
    keep('PGFERRY_DATABASE', opts.name ?? opts.database ?? databaseOf(opts.source));
  }
  return out;
}

/**
 * Runs `command` through `/bin/sh -c`, its stdout sent to stderr (stdout stays the run's: a
 * backup id, or JSON). A hook that fails or cannot start is one line on stderr, never a throw.
 */
export async function runHook(flag: string, command: string, env: NodeJS.ProcessEnv): Promise<void> {
  const status = await new Promise<string | undefined>((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', process.stderr, 'inherit'] });
    child.on('error', (err) => resolve(errorMessage(err)));
    child.on('close', (code, signal) =>
      resolve(code === 0 ? undefined : signal ? `killed by ${signal}` : `exit status ${code}`),
    );
  });
  if (status !== undefined) {
    process.stderr.write(
      `pgferry: the ${flag} command failed (${status}); the run's exit status is its own\n`,
    );
  }
}

function urlPassword(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    // A server's URL (a set's) names no database: its password is scrubbed all the same.
    return parseServerUrl(url).password;
  } catch {
    return undefined;
  }
}

/** `url` without its password (or nothing, if it is not a URL pgferry reads). */
function withoutPassword(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    return parsed.toString();
  } catch {
    return undefined;
  }
}

function databaseOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    return parseConnectionUrl(url).connection.database;
  } catch {
    return undefined;
  }
}
