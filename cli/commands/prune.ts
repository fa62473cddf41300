import type { Command } from 'commander';
import { formatAge } from '../../core/catalog';
import { executePrune, type PruneAction, planPrune } from '../../core/prune';
import {
  describeReason,
  formatRetentionPolicy,
  type RetentionPolicy,
  retentionPolicy,
  retentionPolicyFromEnv,
  SHORT_LIVED_ORIGINS,
} from '../../core/retention';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { option } from '../options';
import { formatBytes, formatTable, printable } from '../output';
import { catalogNameOption, DATABASE_ALIAS_HELP, NAME_HELP, parseCount, parseTime } from './catalog-options';
import { commandSummary } from './index';

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description(commandSummary('prune'))
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option('--name <name>', `only backups filed under this name: ${NAME_HELP}`)
    .option('--database <name>', DATABASE_ALIAS_HELP)
    .option('--keep-last <n>', 'keep the newest N backups (at least 1; default 7)', option(parseCount))
    .option(
      '--keep-daily <n>',
      'keep the newest backup of each of the last N days with one (default 7)',
      option(parseCount),
    )
    .option(
      '--keep-weekly <n>',
      'keep the newest backup of each of the last N ISO weeks with one (default 4)',
      option(parseCount),
    )
    .option(
      '--keep-monthly <n>',
      'keep the newest backup of each of the last N months with one (default 12)',
      option(parseCount),
    )
    .option(
      '--keep-yearly <n>',
      'keep the newest backup of each of the last N years with one (default 2)',
      option(parseCount),
    )
    .option(
      '--keep-safety-days <days>',
      'keep safety and migration backups this many days (they count toward no other rule; default 30)',
      option(parseCount),
    )
    .option('--now <time>', 'apply the policy as at this time (ISO 8601) instead of now', option(parseTime))
    .option('--dry-run', 'print what would be deleted, delete nothing', false)
    .option('--json', 'print what was kept and deleted as JSON', false)
    .action(async (opts: PruneOptions) => pruneCommand(opts));
}

interface PruneOptions {
  store: string;
  name?: string;
  database?: string;
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  keepSafetyDays?: number;
  now?: Date;
  dryRun: boolean;
  json: boolean;
}

async function pruneCommand(opts: PruneOptions): Promise<void> {
  const store = openStore(normaliseStoreUrl(opts.store));
  const flags: Partial<RetentionPolicy> = {
    keepLast: opts.keepLast,
    keepDaily: opts.keepDaily,
    keepWeekly: opts.keepWeekly,
    keepMonthly: opts.keepMonthly,
    keepYearly: opts.keepYearly,
    keepSafetyDays: opts.keepSafetyDays,
  };
  // The flags given, over PGFERRY_RETENTION, over the defaults.
  const policy = retentionPolicy({
    ...retentionPolicyFromEnv(process.env),
    ...Object.fromEntries(Object.entries(flags).filter(([, value]) => value !== undefined)),
  });
  const now = opts.now ?? new Date();
  const plan = await planPrune(store, policy, now, catalogNameOption(opts));
  const deleted = opts.dryRun ? 0 : await executePrune(store, plan);

  if (opts.json) {
    // Every key present: an absent tier or problem is null.
    const json = {
      store: store.url,
      dryRun: opts.dryRun,
      ...plan,
      backups: plan.backups.map((b) => ({ ...b, tier: b.tier ?? null })),
      incomplete: plan.incomplete.map((f) => ({ ...f, problem: f.problem ?? null })),
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  const deleteLabel = opts.dryRun ? 'would delete' : 'delete';
  if (plan.backups.length > 0) {
    const rows = plan.backups.map((b) => [
      b.action === 'keep' ? 'keep' : deleteLabel,
      b.database,
      b.id,
      b.tier ?? '-',
      why(b, policy),
    ]);
    process.stdout.write(`${formatTable(['ACTION', 'NAME', 'BACKUP', 'TIER', 'WHY'], rows)}\n`);
  }
  for (const folder of plan.incomplete) {
    const reason = folder.problem ? `unreadable: ${folder.problem}` : folder.reason;
    process.stdout.write(
      `incomplete ${printable(folder.database)} ${folder.backupId}: ${printable(reason)}, ${folder.objects} objects (${formatBytes(folder.bytes)}), ` +
        `started ${formatAge((now.getTime() - Date.parse(folder.startedAt)) / 1000)} ago; left alone\n`,
    );
  }
  const kept = plan.backups.length - plan.backups.filter((b) => b.action === 'delete').length;
  process.stdout.write(
    `${opts.dryRun ? 'dry run: ' : ''}kept ${kept}, ${opts.dryRun ? 'would delete' : 'deleted'} ` +
      `${opts.dryRun ? plan.backups.length - kept : deleted} of ${plan.backups.length} backups in ${store.url} ` +
      `(policy ${formatRetentionPolicy(policy)}, now ${now.toISOString()})\n`,
  );
}

function why(action: PruneAction, policy: RetentionPolicy): string {
  if (action.afterNow) return 'newer than --now: left alone';
  if (action.pinned) return 'pinned';
  if (SHORT_LIVED_ORIGINS.has(action.origin)) {
    return action.action === 'delete'
      ? `${action.origin} backup older than ${policy.keepSafetyDays} days`
      : `${action.origin} backup, kept ${policy.keepSafetyDays} days`;
  }
  if (action.action === 'delete') return 'kept by no rule';
  return action.reasons.map(describeReason).join(', ');
}
