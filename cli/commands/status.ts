import type { Command } from 'commander';
import { backupStatus, type DatabaseStatus, formatAge, parseDuration } from '../../core/catalog';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { option } from '../options';
import { formatTable } from '../output';
import { parseTime } from './catalog-options';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'Show, per database, the age of the newest complete and of the newest verified backup; exit 1 when too old',
    )
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option('--database <name>', 'only this database')
    .option(
      '--max-age <duration>',
      'fail when the newest complete backup is older than this (90m, 36h, 2d, 1w)',
      option(parseDuration),
    )
    .option(
      '--max-verified-age <duration>',
      'fail when the newest verified backup is older than this (or there is none)',
      option(parseDuration),
    )
    .option('--now <time>', 'measure ages at this time instead of now (ISO 8601)', option(parseTime))
    .option('--json', 'print the status as JSON', false)
    .action(async (opts: StatusOptions) => statusCommand(opts));
}

interface StatusOptions {
  store: string;
  database?: string;
  /** Seconds. */
  maxAge?: number;
  /** Seconds. */
  maxVerifiedAge?: number;
  now?: Date;
  json: boolean;
}

interface DatabaseVerdict extends DatabaseStatus {
  /** Why this database fails the thresholds; empty when it does not. */
  problems: string[];
}

async function statusCommand(opts: StatusOptions): Promise<void> {
  const store = openStore(normaliseStoreUrl(opts.store));
  const now = opts.now ?? new Date();
  const statuses = await backupStatus(store, now, opts.database);
  const verdicts: DatabaseVerdict[] = statuses.map((status) => ({
    ...status,
    problems: problemsOf(status, opts),
  }));

  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ store: store.url, now: now.toISOString(), databases: verdicts }, null, 2)}\n`,
    );
  } else if (verdicts.length > 0) {
    const rows = verdicts.map((v) => [
      v.database,
      v.newest?.id ?? 'none',
      v.newest ? formatAge(v.newest.ageSeconds) : '-',
      v.newestVerified?.id ?? 'never',
      v.newestVerified ? formatAge(v.newestVerified.ageSeconds) : '-',
      v.problems.length > 0 ? 'TOO OLD' : 'ok',
    ]);
    process.stdout.write(
      `${formatTable(['DATABASE', 'NEWEST BACKUP', 'AGE', 'NEWEST VERIFIED', 'AGE', 'STATUS'], rows)}\n`,
    );
  }

  const checking = opts.maxAge !== undefined || opts.maxVerifiedAge !== undefined;
  if (checking && verdicts.length === 0) throw new Error(`no backups in ${store.url}`);
  const failing = verdicts.filter((v) => v.problems.length > 0);
  if (failing.length > 0) {
    throw new Error(failing.map((v) => `${v.database}: ${v.problems.join(', ')}`).join('; '));
  }
  if (!checking && verdicts.length === 0 && !opts.json) process.stderr.write(`no backups in ${store.url}\n`);
}

function problemsOf(status: DatabaseStatus, opts: StatusOptions): string[] {
  const problems: string[] = [];
  if (opts.maxAge !== undefined) {
    if (!status.newest) problems.push('no complete backup');
    else if (status.newest.ageSeconds > opts.maxAge) {
      problems.push(
        `newest backup is ${formatAge(status.newest.ageSeconds)} old (max ${formatAge(opts.maxAge)})`,
      );
    }
  }
  if (opts.maxVerifiedAge !== undefined) {
    if (!status.newestVerified) problems.push('no verified backup');
    else if (status.newestVerified.ageSeconds > opts.maxVerifiedAge) {
      problems.push(
        `newest verified backup is ${formatAge(status.newestVerified.ageSeconds)} old (max ${formatAge(opts.maxVerifiedAge)})`,
      );
    }
  }
  return problems;
}
