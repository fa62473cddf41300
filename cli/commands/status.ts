import type { Command } from 'commander';
import { formatAge, parseDuration } from '../../core/catalog';
import { ageProblems, type StatusJson, statusReport } from '../../core/catalog-json';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { option } from '../options';
import { formatTable, printable } from '../output';
import { catalogNameOption, DATABASE_ALIAS_HELP, NAME_HELP, parseTime } from './catalog-options';
import { commandSummary } from './index';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(commandSummary('status'))
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option('--name <name>', `only this name: ${NAME_HELP}`)
    .option('--database <name>', DATABASE_ALIAS_HELP)
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
  name?: string;
  database?: string;
  /** Seconds. */
  maxAge?: number;
  /** Seconds. */
  maxVerifiedAge?: number;
  now?: Date;
  json: boolean;
}

async function statusCommand(opts: StatusOptions): Promise<void> {
  const store = openStore(normaliseStoreUrl(opts.store));
  const now = opts.now ?? new Date();
  const json = await statusReport(store, now, opts, catalogNameOption(opts), printable);
  const verdicts = json.databases;

  if (opts.json) {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else if (verdicts.length > 0) {
    const rows = verdicts.map((v) => [
      v.database,
      v.newest?.id ?? 'none',
      v.newest ? formatAge(v.newest.ageSeconds) : '-',
      v.newestVerified?.id ?? 'never',
      v.newestVerified ? formatAge(v.newestVerified.ageSeconds) : '-',
      verdictLabel(v, opts),
    ]);
    process.stdout.write(
      `${formatTable(['NAME', 'NEWEST BACKUP', 'AGE', 'NEWEST VERIFIED', 'AGE', 'STATUS'], rows)}\n`,
    );
  }

  const checking = opts.maxAge !== undefined || opts.maxVerifiedAge !== undefined;
  if (checking && verdicts.length === 0) throw new Error(`no backups in ${store.url}`);
  const failing = verdicts.filter((v) => v.problems.length > 0);
  if (failing.length > 0) {
    throw new Error(failing.map((v) => `${printable(v.database)}: ${v.problems.join(', ')}`).join('; '));
  }
  if (!checking && verdicts.length === 0 && !opts.json) process.stderr.write(`no backups in ${store.url}\n`);
}

/** The STATUS column: what is wrong, in capitals, or `ok`. */
function verdictLabel(verdict: StatusJson['databases'][number], opts: StatusOptions): string {
  const labels: string[] = [];
  if (verdict.unreadable.length > 0) labels.push('UNREADABLE BACKUP');
  if (verdict.datedAfterNow.length > 0) labels.push('DATED AFTER NOW');
  if (ageProblems(verdict, opts).length > 0) labels.push('TOO OLD');
  return labels.length > 0 ? labels.join(', ') : 'ok';
}
